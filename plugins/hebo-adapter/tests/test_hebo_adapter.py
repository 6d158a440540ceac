"""deploybench-hebo: space translation, what HEBO is told (crashes, constraints), duplicates,
reproducibility, the conformance suite and an end-to-end CLI run.

A model-based HEBO ask takes seconds (pymoo's NSGA-II over 100 × 100 candidates), so the tests keep
``n_initial`` small and budgets short: they check behaviour, not optimisation quality.
"""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from deploybench import (Categorical, Condition, Constraint, EvalContext, Float, Integer, Objective,
                         OptimizerContext, Ordinal, Outcome, SearchSpace, Status)
from deploybench.results import iter_case_files, read_case_file
from deploybench.tasks.synthetic import CrashyBranin, HierarchicalRosenbrock
from deploybench.testing import parametrize_with_checks
from deploybench_hebo import HEBOOptimizer
from deploybench_hebo.scores import general_outputs, penalised_scores
from deploybench_hebo.space import DesignTranslation


def mixed_space() -> SearchSpace:
    return SearchSpace([
        Categorical("backend", choices=("eager", "compile", "onnx")),
        Ordinal("batch", values=(1, 2, 4, 8, 16, 32), log=True),
        Integer("threads", low=1, high=8, condition=Condition("backend", ("eager", "onnx"))),
        Integer("width", low=1, high=256, log=True),
        Float("lr", low=1e-4, high=1e-1, log=True, condition=Condition("backend", ("compile",))),
        Float("x", low=-1.0, high=1.0),
        Categorical("flag", choices=("1", 1, 2.5)),  # str() labels collide: index labels
        Ordinal("device", values=("cpu",)),  # one value: nothing to search
    ])


def drive(opt: HEBOOptimizer, task, n: int, seed: int = 0) -> list[str]:
    keys = []
    for i in range(n):
        config = opt.ask()
        task.space.validate(config)
        opt.tell(config, task.evaluate(config, EvalContext(seed=seed, trial=i)))
        keys.append(task.space.key(config))
    return keys


def context(task, budget: int = 10, seed: int = 0) -> OptimizerContext:
    return OptimizerContext(task.space, task.objective, constraints=task.constraints, budget=budget, seed=seed)


# -- space translation ----------------------------------------------------------------------------------
def test_every_kind_becomes_its_hebo_parameter_and_conditions_become_a_union():
    spec = {item["name"]: item for item in DesignTranslation(mixed_space()).spec}
    assert list(spec) == ["backend", "batch", "threads", "width", "lr", "x", "flag"]  # "device" has one value
    assert spec["backend"] == {"name": "backend", "type": "cat", "categories": ["eager", "compile", "onnx"]}
    assert spec["batch"] == {"name": "batch", "type": "int", "lb": 0, "ub": 5}  # the ordinal's index
    assert spec["threads"]["type"] == "int" and (spec["threads"]["lb"], spec["threads"]["ub"]) == (1, 8)
    assert spec["width"]["type"] == "pow_int" and spec["lr"]["type"] == "pow" and spec["x"]["type"] == "num"
    assert spec["flag"]["categories"] == ["0:'1'", "1:1", "2:2.5"]


def test_configs_round_trip_with_their_own_values_and_types():
    space = mixed_space()
    translation = DesignTranslation(space)
    rng = np.random.default_rng(0)
    for _ in range(100):
        config = space.sample(rng)
        back = translation.to_config(translation.to_row(config))
        space.validate(back)
        assert back == config
        assert [type(v) for v in back.values()] == [type(v) for v in config.values()]


def test_inactive_parameters_of_a_row_are_dropped_and_values_clipped():
    translation = DesignTranslation(mixed_space())
    row = {"backend": "compile", "batch": 5.4, "threads": 3, "width": 300, "lr": 0.5, "x": -0.25, "flag": "1:1"}
    config = translation.to_config(row)
    assert "threads" not in config and config["lr"] == 0.1  # inactive dropped; clipped to the range
    assert config["batch"] == 32 and config["width"] == 256 and config["flag"] == 1 and config["device"] == "cpu"


# -- what HEBO is told ------------------------------------------------------------------------------------
def ok(v, metrics=None):
    return Outcome(Status.OK, objective=v, metrics=metrics or {})


def infeasible(v, violation=0.5, early=False, metrics=None):
    return Outcome(Status.INFEASIBLE, objective=v, violation={} if early else {"g": violation}, early_stopped=early,
                   metrics=metrics or {})


def test_penalised_scores_order_feasible_below_infeasible_below_crash():
    history = [ok(-3.0), ok(-1.0), infeasible(5.0, 0.1), infeasible(5.0, 2.0), infeasible(None, early=True),
               Outcome.crashed("oom", "boom"), Outcome.timed_out("slow", 1.0)]
    scores = penalised_scores(history, sign=+1.0)
    assert scores[:2] == [3.0, 1.0]  # a maximised objective is minimised as -objective
    worst_ok, spread = 3.0, 8.0  # scores of the trials that ran: 3, 1, -5, -5
    assert scores[2] == pytest.approx(worst_ok + spread * 0.1)  # a better objective, still worse than every ok
    assert scores[3] == pytest.approx(worst_ok + spread * 2.0)
    assert scores[4] == pytest.approx(worst_ok + spread * 1.0)  # an early stop without violation counts 1
    assert scores[5] == scores[6] == pytest.approx(max(scores[:5]) + spread)
    assert penalised_scores([Outcome.crashed("runtime", "x")] * 2, sign=1.0) == [1.0, 1.0]


def test_general_outputs_are_signed_scaled_constraints_with_pessimistic_imputation():
    constraints = (Constraint("lat", 20.0), Constraint("g", 0.0, scale=2.0))
    history = [ok(0.9, {"lat": 10.0, "g": -1.0}),
               Outcome(Status.INFEASIBLE, objective=0.95, violation={"lat": 0.5}, metrics={"lat": 30.0, "g": -3.0}),
               Outcome(Status.INFEASIBLE, objective=None, violation={"lat": 1.5}, early_stopped=True, metrics={}),
               Outcome.crashed("oom", "boom")]
    out = general_outputs(history, sign=+1.0, constraints=constraints)
    assert out.shape == (4, 3) and np.isfinite(out).all()
    np.testing.assert_allclose(out[:2], [[-0.9, -0.5, -0.5], [-0.95, 0.5, -1.5]])
    spread_obj, spread_lat, spread_g = 0.05, 1.5 - (-0.5), 1.0  # lat: -0.5, 0.5 and the early stop's 1.5
    assert out[2, 0] == pytest.approx(-0.9 + spread_obj)  # objective missing: worst + spread
    assert out[2, 1] == 1.5  # the recorded violation of the early stop
    assert out[2, 2] == pytest.approx(0.0 + spread_g)  # unmeasured: violated (max(worst, 0) + spread)
    assert out[3, 1] == pytest.approx(1.5 + spread_lat) and out[3, 2] > 0  # a crash violates every constraint


def test_earlier_crash_scores_are_reimputed_as_the_worst_grows():
    task = CrashyBranin()
    opt = HEBOOptimizer(context(task), n_initial=5)  # Sobol phase only: no model fit needed
    for outcome in (Outcome.crashed("runtime", "x"), ok(-1.0), ok(-50.0)):
        opt.tell(opt.ask(), outcome)
    assert opt._hebo.y.ravel().tolist() == [50.0 + 49.0, 1.0, 50.0]  # the crash: worst (50) + spread (49)


def test_infeasible_trials_score_above_every_feasible_one_in_hebo():
    task = CrashyBranin()
    opt = HEBOOptimizer(context(task), n_initial=5)
    opt.tell(opt.ask(), Outcome(Status.OK, objective=-4.0))
    opt.tell(opt.ask(), Outcome(Status.INFEASIBLE, objective=-1.0, violation={"g1": 0.5}))
    y = opt._hebo.y.ravel()
    assert y[1] > y[0]  # a better objective, but infeasible


def test_general_mode_tells_generalbo_each_constraint_as_an_output():
    task = CrashyBranin()
    opt = HEBOOptimizer(context(task), n_initial=5, constraint_handling="general")
    config = opt.ask()
    outcome = task.evaluate(config)
    opt.tell(config, outcome)
    assert type(opt._hebo).__name__ == "GeneralBO" and opt._hebo.num_constr == 2
    if outcome.failed:
        assert np.isfinite(opt._hebo.y).all()
    else:
        expected = [-outcome.objective, outcome.metrics["g1"], outcome.metrics["g2"]]  # caps 0, scales 1
        np.testing.assert_allclose(opt._hebo.y[0], expected)


# -- the optimizer ----------------------------------------------------------------------------------------
def test_same_seed_same_model_based_suggestions_and_no_trace_on_global_state():
    task = HierarchicalRosenbrock()
    np.random.seed(7)
    torch.manual_seed(7)
    random.seed(7)
    threads = torch.get_num_threads()
    before = (np.random.get_state()[1].copy(), torch.get_rng_state().clone(), random.getstate())
    first = drive(HEBOOptimizer(context(task, 4, seed=3), n_initial=2), task, 4, seed=3)
    second = drive(HEBOOptimizer(context(task, 4, seed=3), n_initial=2), task, 4, seed=3)
    assert first == second  # two of the four asks fit HEBO's GP and run its evolution
    assert len(set(first)) == len(first)
    after = (np.random.get_state()[1], torch.get_rng_state(), random.getstate())
    assert np.array_equal(before[0], after[0]) and torch.equal(before[1], after[1]) and before[2] == after[2]
    assert torch.get_num_threads() == threads


def test_importing_the_adapter_keeps_the_torch_thread_count():
    """``hebo.optimizers.hebo`` calls ``torch.set_num_threads(1)`` on import; the adapter undoes it."""
    script = ("import torch; torch.set_num_threads(3)\n"
              "import deploybench_hebo.optimizer\n"
              "import hebo.optimizers.hebo\n"
              "print(torch.get_num_threads())\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "3"


def test_no_repeats_on_a_finite_space_until_it_is_exhausted():
    space = SearchSpace([Categorical("a", choices=("x", "y")), Ordinal("b", values=(1, 2))])
    opt = HEBOOptimizer(OptimizerContext(space, Objective("v"), constraints=(Constraint("m", 1.0),), budget=5, seed=0),
                        n_initial=2, duplicate_retries=1)
    keys = []
    for _ in range(5):  # the fifth ask finds the space exhausted and repeats a configuration
        config = opt.ask()
        space.validate(config)
        keys.append(space.key(config))
        opt.tell(config, Outcome(Status.OK, objective=float(config["b"])))
    assert len(set(keys[:4])) == 4  # all four configurations before any repeat


def test_a_space_with_nothing_to_search_returns_its_one_configuration():
    space = SearchSpace([Categorical("a", choices=("x",))])
    opt = HEBOOptimizer(OptimizerContext(space, Objective("v"), budget=2))
    for _ in range(2):
        assert opt.ask() == {"a": "x"}
        opt.tell({"a": "x"}, Outcome(Status.OK, objective=1.0))


@pytest.mark.parametrize("params, message", [
    ({"constraint_handling": "ehvi"}, "'penalty', 'general'"),
    ({"n_initial": 0}, "n_initial must be None or an integer >= 1"),
    ({"duplicate_retries": -1}, "duplicate_retries must be an integer >= 0"),
])
def test_bad_parameters_name_what_is_allowed(params, message):
    with pytest.raises(ValueError, match=message):
        HEBOOptimizer(context(CrashyBranin()), **params)


def test_parameters_are_stored_unchanged():
    opt = HEBOOptimizer(context(CrashyBranin()), constraint_handling="general")
    assert opt.get_params() == {"constraint_handling": "general", "duplicate_retries": 2, "n_initial": None}


# -- conformance ------------------------------------------------------------------------------------------
@parametrize_with_checks([(HEBOOptimizer, {"n_initial": 2})], budget=3)
def test_conformance(optimizer, check):
    check(optimizer)


@pytest.mark.slow
@parametrize_with_checks([(HEBOOptimizer, {"n_initial": 2, "constraint_handling": "general"})], budget=3)
def test_conformance_general(optimizer, check):
    check(optimizer)


# -- end to end -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_run_on_crashy_branin(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "deploybench.cli.main", "run", "-o", "hebo", "-t", "crashy_branin",
                           "--seeds", "1", "--budget", "6", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = list(iter_case_files(out / "crashy_branin" / "hebo"))
    assert len(files) == 1
    case = read_case_file(files[0])
    assert case.end is not None and len(case.trials) == 6
