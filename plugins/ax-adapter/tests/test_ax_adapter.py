"""deploybench-ax: space translation, what Ax is told, repeats, reproducibility, conformance, the CLI.

Asks in Ax's initialisation (the centre and Sobol points, the first five trials that did not fail) take
milliseconds; every ask after it fits GPs and optimises the acquisition function (seconds to tens of
seconds on a shared CPU). Tests that reach that phase are marked ``slow``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deploybench import (Categorical, Condition, Constraint, EvalContext, Float, Integer, Objective,
                         OptimizerContext, Ordinal, Outcome, SearchSpace, Status)
from deploybench.tasks.synthetic import CrashyBranin, HierarchicalRosenbrock
from deploybench.testing import parametrize_with_checks, toy_task
from deploybench_ax import AxOptimizer
from deploybench_ax.metrics import MetricNames, ax_metric_name
from deploybench_ax.space import SpaceTranslation

from ax.core.outcome_constraint import ComparisonOp
from ax.core.parameter import ChoiceParameter, FixedParameter, RangeParameter
from ax.core.trial_status import TrialStatus


def mixed_space() -> SearchSpace:
    return SearchSpace([
        Categorical("backend", choices=("eager", "compile", "onnx")),
        Ordinal("batch", values=(1, 2, 4, 8, 16, 32), log=True),
        Ordinal("scale", values=(0.25, 0.5, 1.0)),
        Integer("threads", low=1, high=8, condition=Condition("backend", ("eager", "onnx"))),
        Integer("width", low=1, high=256, log=True),
        Float("lr", low=1e-4, high=1e-1, log=True, condition=Condition("backend", ("compile",))),
        Float("x", low=-1.0, high=1.0),
        Categorical("flag", choices=("1", 1, 2.5)),  # str() labels collide: index labels
        Categorical("only", choices=("one",)),
    ])


def make(space: SearchSpace, *, objective: Objective = Objective("score", "maximize"),
         constraints: tuple[Constraint, ...] = (Constraint("load", 1.0),), budget: int = 10, seed: int = 0,
         **params) -> AxOptimizer:
    return AxOptimizer(OptimizerContext(space, objective, constraints=constraints, budget=budget, seed=seed), **params)


def drive(opt: AxOptimizer, task, n: int, seed: int = 0) -> list[str]:
    keys = []
    for i in range(n):
        config = opt.ask()
        task.space.validate(config)
        opt.tell(config, task.evaluate(config, EvalContext(seed=seed, trial=i)))
        keys.append(task.space.key(config))
    return keys


# -- space translation ------------------------------------------------------------------------------------
def test_each_kind_becomes_its_ax_parameter():
    opt = make(mixed_space())
    params = opt.client._experiment.search_space.parameters
    backend = params["backend"]
    assert isinstance(backend, ChoiceParameter) and not backend.is_ordered
    assert backend.values == ["eager", "compile", "onnx"]
    batch = params["batch"]
    assert isinstance(batch, ChoiceParameter) and batch.is_ordered and batch.values == [1, 2, 4, 8, 16, 32]
    assert isinstance(params["scale"], ChoiceParameter) and params["scale"].is_ordered
    assert params["scale"].values == [0.25, 0.5, 1.0]
    width = params["width"]
    assert isinstance(width, RangeParameter) and width.log_scale and (width.lower, width.upper) == (1, 256)
    assert width.parameter_type.name == "INT"
    lr = params["lr"]
    assert isinstance(lr, RangeParameter) and lr.log_scale and lr.parameter_type.name == "FLOAT"
    assert isinstance(params["x"], RangeParameter) and not params["x"].log_scale
    assert isinstance(params["only"], FixedParameter)
    # conditional parameters are in the union: Ax sees every parameter
    assert set(params) == set(mixed_space().names)
    assert not opt.client._experiment.search_space.is_hierarchical


def test_configs_round_trip_with_their_own_values_and_types_and_drop_inactive_parameters():
    space = mixed_space()
    translation = SpaceTranslation(space)
    rng, fill = np.random.default_rng(0), np.random.default_rng(1)
    for _ in range(50):
        config = space.sample(rng)
        parameters = translation.to_parameters(config, fill)
        assert set(parameters) == set(space.names)  # Ax needs the union
        back = translation.to_config(parameters)
        space.validate(back)
        assert back == config and list(back) == list(config)
        assert [type(v) for v in back.values()] == [type(v) for v in config.values()]
    eager = translation.to_config({**parameters, "backend": "eager"})
    assert "threads" in eager and "lr" not in eager
    compiled = translation.to_config({**parameters, "backend": "compile"})
    assert "lr" in compiled and "threads" not in compiled


def test_out_of_bounds_numbers_from_ax_are_clipped():
    space = SearchSpace([Integer("n", low=1, high=8), Float("x", low=0.0, high=1.0)])
    assert SpaceTranslation(space).to_config({"n": 9, "x": 1.0 + 1e-12}) == {"n": 8, "x": 1.0}


# -- what Ax is told ---------------------------------------------------------------------------------------
def test_metric_names_ax_would_reject_are_sanitised():
    assert ax_metric_name("latency_p95_ms") == "latency_p95_ms"
    assert ax_metric_name("latency.p95-ms") == "m_latency_p95_ms"
    assert ax_metric_name("95th pct") == "m_95th_pct"
    assert ax_metric_name("E") == "m_E"            # SymPy's Euler number
    assert ax_metric_name("beta") == "m_beta"      # a SymPy function
    assert ax_metric_name("lambda") == "m_lambda"  # a Python keyword
    assert ax_metric_name("a__dot__b") == "m_a_dot_b"  # Ax would turn it into "a.b"
    assert ax_metric_name("a.b", taken=["m_a_b"]) == "m_a_b_2"


def test_every_constraint_reaches_ax_as_an_outcome_constraint_on_its_metric():
    task = CrashyBranin()
    opt = AxOptimizer(OptimizerContext.for_task(task, budget=10, seed=0))
    config = opt.client._experiment.optimization_config
    assert config.objective.metric_names == ["neg_branin"] and not config.objective.minimize
    constraints = {c.metric_names[0]: c for c in config.outcome_constraints}
    assert set(constraints) == {"g1", "g2"}
    for c in constraints.values():
        assert c.op is ComparisonOp.LEQ and c.bound == 0.0 and not c.relative


def test_odd_metric_names_and_a_constraint_on_the_objective_are_accepted_by_ax():
    objective = Objective("latency.p95-ms", "minimize")
    constraints = (Constraint("latency.p95-ms", 20.0), Constraint("E", 512.0))
    opt = make(SearchSpace([Float("x", low=0.0, high=1.0)]), objective=objective, constraints=constraints)
    config = opt.client._experiment.optimization_config
    assert config.objective.metric_names == ["m_latency_p95_ms"] and config.objective.minimize
    bounds = {c.metric_names[0]: c.bound for c in config.outcome_constraints}
    assert bounds == {"m_latency_p95_ms_constraint": 20.0, "m_E": 512.0}
    names = MetricNames(objective, constraints)
    data = names.raw_data(Outcome(Status.INFEASIBLE, objective=25.0, metrics={"latency.p95-ms": 25.0, "E": 100.0},
                                  violation={"latency.p95-ms": 0.25, "E": 0.0}))
    assert data == {"m_latency_p95_ms": 25.0, "m_latency_p95_ms_constraint": 25.0, "m_E": 100.0}


def test_raw_data_recovers_a_violated_metric_from_the_violation_and_skips_unknown_ones():
    names = MetricNames(Objective("score"), (Constraint("load", 2.0), Constraint("g", 0.0, scale=4.0)))
    # no metrics recorded: load from its violation (cap + v * cap), g was met so its value is unknown
    data = names.raw_data(Outcome(Status.INFEASIBLE, objective=1.5, violation={"load": 0.5, "g": 0.0}))
    assert data == {"score": 1.5, "load": 3.0}
    data = names.raw_data(Outcome(Status.INFEASIBLE, objective=None, violation={"g": 0.25}))
    assert data == {"g": 1.0}


def test_each_outcome_kind_reaches_ax_as_the_trial_status_ax_documents():
    space = SearchSpace([Float("x", low=0.0, high=1.0), Float("y", low=0.0, high=1.0)])
    opt = make(space, constraints=(Constraint("load", 1.0),), budget=8)
    outcomes = [
        Outcome(Status.OK, objective=0.5, metrics={"score": 0.5, "load": 0.4}, violation={"load": 0.0}),
        Outcome(Status.INFEASIBLE, objective=0.9, metrics={"score": 0.9, "load": 1.5}, violation={"load": 0.5}),
        Outcome.crashed("oom", "out of memory at batch 32", cost_s=1.0),
        Outcome.timed_out("slower than the time limit", cost_s=5.0),
        Outcome(Status.INFEASIBLE, objective=None, metrics={"load": 6.0}, violation={"load": 5.0}, early_stopped=True),
        Outcome(Status.INFEASIBLE, objective=None, metrics={"early_stop_estimate_ms": 200.0}, early_stopped=True),
    ]
    for outcome in outcomes:  # all in Ax's initialisation: no GP is fitted
        opt.tell(opt.ask(), outcome)
    experiment = opt.client._experiment
    trials = experiment.trials
    assert [trials[i].status for i in range(6)] == [
        TrialStatus.COMPLETED, TrialStatus.COMPLETED, TrialStatus.FAILED, TrialStatus.FAILED,
        TrialStatus.EARLY_STOPPED, TrialStatus.ABANDONED]
    assert trials[2].status_reason == "oom: out of memory at batch 32"
    assert trials[3].status_reason.startswith("timeout:")
    df = experiment.lookup_data().df
    told = {(int(r.trial_index), r.metric_name): float(r["mean"]) for _, r in df.iterrows()}
    assert told == {(0, "score"): 0.5, (0, "load"): 0.4, (1, "score"): 0.9, (1, "load"): 1.5, (4, "load"): 6.0}
    # crashes carry no data at all: no constant stands in for a value they never produced
    assert not df[df.trial_index.isin([2, 3, 5])].shape[0]
    assert opt.fallbacks == [] and opt.repeats_answered == 0


def test_a_crashed_configuration_suggested_again_is_answered_from_memory_not_measured():
    space = SearchSpace([Categorical("a", choices=("x", "y", "z"))])
    opt = make(space, budget=6)
    seen = []
    for _ in range(3):
        config = opt.ask()
        seen.append(space.key(config))
        opt.tell(config, Outcome.crashed("oom", "boom"))
    assert len(set(seen)) == 3  # every configuration measured once before any repeat
    statuses = [t.status for t in opt.client._experiment.trials.values()]
    assert statuses.count(TrialStatus.FAILED) == 3
    # Ax re-suggested failed arms ("FAILED trials may be re-suggested"); each repeat was closed as ABANDONED
    assert statuses.count(TrialStatus.ABANDONED) == opt.repeats_answered
    config = opt.ask()  # an exhausted finite space: a repeat, with the reason recorded
    space.validate(config)
    assert opt.fallbacks


def test_a_configuration_ax_did_not_generate_is_attached_to_the_experiment():
    task = HierarchicalRosenbrock()
    opt = AxOptimizer(OptimizerContext.for_task(task, budget=10, seed=0))
    opt.ask()
    config = task.space.sample(np.random.default_rng(5))
    opt.tell(config, task.evaluate(config, EvalContext(seed=0, trial=0)))
    trials = opt.client._experiment.trials
    assert trials[0].status is TrialStatus.ABANDONED  # the suggestion that was never told
    attached = trials[1].arm.parameters
    assert set(attached) == set(task.space.names)
    assert opt._translation.to_config(attached) == config


def test_params_are_stored_unchanged_and_bad_values_are_refused():
    opt = make(SearchSpace([Float("x", low=0.0, high=1.0)]), duplicate_retries=1, torch_threads=2)
    assert opt.get_params() == {"duplicate_retries": 1, "torch_threads": 2}
    with pytest.raises(ValueError, match="duplicate_retries must be an integer >= 0"):
        make(SearchSpace([Float("x", low=0.0, high=1.0)]), duplicate_retries=-1)
    with pytest.raises(ValueError, match="torch_threads must be an integer >= 1"):
        make(SearchSpace([Float("x", low=0.0, high=1.0)]), torch_threads=0)


def test_torch_threads_are_restored_after_each_call():
    import torch

    before = torch.get_num_threads()
    opt = make(SearchSpace([Float("x", low=0.0, high=1.0)]), torch_threads=1)
    opt.tell(opt.ask(), Outcome(Status.OK, objective=1.0, metrics={"load": 0.5}))
    assert torch.get_num_threads() == before


# -- the model-based phase -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_gp_phase_on_a_conditional_space_is_valid_and_reproducible():
    """Ax is bit-reproducible for a seed on this machine (torch single-threaded, Client(random_seed))."""
    task = HierarchicalRosenbrock()
    context = OptimizerContext.for_task(task, budget=8, seed=3)
    first_opt = AxOptimizer(context)
    first = drive(first_opt, task, 8, seed=3)
    assert first_opt.client._generation_strategy.current_node_name == "MBM"  # reached the GP
    second = drive(AxOptimizer(context), task, 8, seed=3)
    assert first == second
    assert len(set(first)) == len(first)


@pytest.mark.slow
def test_same_suggestions_in_processes_with_different_hash_seeds():
    script = (
        "from deploybench import EvalContext, OptimizerContext\n"
        "from deploybench.testing import toy_task\n"
        "from deploybench_ax import AxOptimizer\n"
        "t = toy_task()\n"
        "o = AxOptimizer(OptimizerContext.for_task(t, budget=7, seed=1))\n"
        "keys = []\n"
        "for i in range(7):\n"
        "    c = o.ask(); o.tell(c, t.evaluate(c, EvalContext(seed=1, trial=i))); keys.append(t.space.key(c))\n"
        "print('|'.join(keys))\n"
    )
    outputs = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=900)
        assert proc.returncode == 0, proc.stderr
        outputs.add(proc.stdout)
    assert len(outputs) == 1


@parametrize_with_checks([AxOptimizer], budget=5)
def test_conformance_in_ax_initialisation(optimizer, check):
    # budget 5: the centre and four Sobol points; every check runs in milliseconds
    check(optimizer)


@pytest.mark.slow
@parametrize_with_checks([AxOptimizer], budget=7)
def test_conformance_through_the_gp_phase(optimizer, check):
    # budget 7: the centre, four Sobol points, then GP-based asks wherever five trials ran
    check(optimizer)


@pytest.mark.slow
def test_end_to_end_cli_run(tmp_path: Path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "deploybench.cli.main", "run", "-o", "ax", "-t", "crashy_branin", "--seeds", "1",
         "--budget", "6", "--out", str(out)],
        capture_output=True, text=True, timeout=1200, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = list(out.rglob("seed_*.jsonl"))
    assert [r.relative_to(out).as_posix() for r in records] == ["crashy_branin/ax/seed_0.jsonl"]
    lines = [json.loads(line) for line in records[0].read_text().splitlines() if line.strip()]
    assert len(lines) >= 6
    assert "crashy_branin[analytic]::ax[seed=0]" in proc.stdout
    assert "[INFO" not in proc.stdout + proc.stderr  # Ax's logging stays quiet
