"""deploybench-optuna: the space mapping, what each sampler is told, sampler lookup, conformance and
the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from deploybench import (Categorical, Condition, Constraint, EvalContext, Float, Integer, Objective,
                         OptimizerContext, Ordinal, Outcome, SearchSpace, Status)
from deploybench.plugins import create_plugin_manager
from deploybench.results import iter_case_files, read_case_file
from deploybench.tasks.synthetic import CrashyBranin, HierarchicalRosenbrock
from deploybench.testing import parametrize_with_checks
from deploybench_optuna import OptunaCmaEs, OptunaGP, OptunaSampler
from deploybench_optuna.samplers import known_samplers
from deploybench_optuna.space import distribution, suggest_config, to_optuna

# a small GP start keeps the conformance checks fast (each GP ask refits the model)
GP_FAST = {"n_startup_trials": 4}


def deployment_like() -> tuple[SearchSpace, tuple[Constraint, ...]]:
    space = SearchSpace([
        Categorical("backend", choices=("eager", "onnx")),
        Ordinal("batch", values=(1, 2, 4, 8, 16, 32), log=True),
        Integer("threads", low=1, high=8, condition=Condition("backend", ("eager",))),
        Float("scale", low=0.1, high=10.0, log=True),
    ])
    return space, (Constraint("latency_ms", 20.0), Constraint("memory_mb", 512.0))


def context(cls_space=None, *, seed=0, budget=20) -> OptimizerContext:
    space, constraints = cls_space or deployment_like()
    return OptimizerContext(space, Objective("accuracy", "maximize"), constraints=constraints, budget=budget, seed=seed)


def drive(opt, task, n, seed=0):
    keys = []
    for i in range(n):
        config = opt.ask()
        task.space.validate(config)
        opt.tell(config, task.evaluate(config, EvalContext(seed=seed, trial=i)))
        keys.append(task.space.key(config))
    return keys


# -- conformance ----------------------------------------------------------------------------------------
@parametrize_with_checks([OptunaSampler, (OptunaSampler, {"sampler": "RandomSampler"}),
                          (OptunaSampler, {"sampler": "QMCSampler"}), OptunaCmaEs])
def test_conformance(optimizer, check):
    check(optimizer)


@parametrize_with_checks([(OptunaGP, GP_FAST)], budget=8)
def test_conformance_gp(optimizer, check):
    check(optimizer)


# -- registration and sampler lookup -----------------------------------------------------------------------
def test_three_optimizers_are_registered_by_import_path():
    pm = create_plugin_manager()
    specs = pm.optimizer_specs()
    assert {"optuna", "optuna_gp", "optuna_cmaes"} <= set(specs)
    assert specs["optuna"].import_path == "deploybench_optuna.optimizer:OptunaSampler"
    assert pm.get_optimizer_class("optuna_gp") is OptunaGP
    assert pm.get_optimizer_class("optuna_cmaes") is OptunaCmaEs
    assert OptunaSampler.shorthand_param == "sampler"


def test_unknown_sampler_fails_at_construction_with_the_known_names_and_the_closest():
    with pytest.raises(ValueError) as err:
        OptunaSampler(context(), sampler="GPSampeler")
    message = str(err.value)
    assert "unknown Optuna sampler 'GPSampeler'" in message
    for name in ("TPESampler", "GPSampler", "CmaEsSampler", "RandomSampler", "QMCSampler"):
        assert name in message
    assert "did you mean 'GPSampler'?" in message
    assert "BaseSampler" not in known_samplers() and "BaseGASampler" not in known_samplers()


def test_a_wrong_sampler_is_a_usage_error_when_cases_are_collected():
    """Before any case runs: exit code 2 with the closest name, not an errored case."""
    from deploybench.plugins import create_plugin_manager
    from deploybench.errors import UsageError
    from deploybench.collection import collect

    pm = create_plugin_manager()
    with pytest.raises(UsageError, match="did you mean 'GPSampler'"):
        collect(pm, tasks=["crashy_branin"], optimizers=["optuna:GPSamplr"])
    with pytest.raises(UsageError, match="did you mean 'n_startup_trials'"):
        collect(pm, tasks=["crashy_branin"], optimizers=["optuna"],
                optimizer_params={"optuna": {"sampler_kwargs": {"n_startup_trial": 3}}})
    cases = collect(pm, tasks=["crashy_branin"], optimizers=["optuna:GPSampler", "optuna:QMCSampler"])
    assert [dict(c.optimizer_params)["sampler"] for c in cases] == ["GPSampler", "QMCSampler"]


def test_import_paths_and_bad_kwargs_get_clear_messages():
    opt = OptunaSampler(context(), sampler="optuna.samplers:RandomSampler")
    assert isinstance(opt.study.sampler, optuna.samplers.RandomSampler)
    with pytest.raises(ValueError, match="cannot be imported"):
        OptunaSampler(context(), sampler="no_such_module_xyz:Sampler")
    with pytest.raises(ValueError, match="not an optuna.samplers.BaseSampler subclass"):
        OptunaSampler(context(), sampler="deploybench:Optimizer")
    with pytest.raises(ValueError, match="the case seed"):
        OptunaSampler(context(), sampler="RandomSampler", sampler_kwargs={"seed": 3})
    with pytest.raises(ValueError, match="did you mean 'n_startup_trials'"):
        OptunaSampler(context(), sampler="TPESampler", sampler_kwargs={"n_startup_trial": 3})


@pytest.mark.parametrize("sampler", ["RandomSampler", "QMCSampler"])
def test_generic_adapter_runs_the_named_sampler_with_the_case_seed(sampler):
    """The adapter's suggestions are exactly those of the Optuna sampler built with the case seed."""
    ctx = context(seed=7)
    opt = OptunaSampler(ctx, sampler=sampler)
    assert type(opt.study.sampler) is getattr(optuna.samplers, sampler)
    reference = optuna.create_study(direction="maximize", sampler=getattr(optuna.samplers, sampler)(seed=7))
    for _ in range(5):
        config = opt.ask()
        trial = reference.ask()
        assert suggest_config(trial, ctx.space) == config
        outcome = Outcome(Status.OK, objective=1.0, metrics={"latency_ms": 10.0, "memory_mb": 100.0})
        opt.tell(config, outcome)
        reference.tell(trial, 1.0)


def test_sampler_kwargs_reach_the_sampler_and_stay_as_given():
    opt = OptunaSampler(context(), sampler="TPESampler", sampler_kwargs={"n_startup_trials": 3, "multivariate": True})
    assert opt.study.sampler._n_startup_trials == 3 and opt.study.sampler._multivariate
    assert opt.get_params()["sampler_kwargs"] == {"n_startup_trials": 3, "multivariate": True}
    gp = OptunaGP(context(), n_startup_trials=6)
    assert gp.study.sampler._n_startup_trials == 6


# -- space mapping -----------------------------------------------------------------------------------------
def test_each_kind_maps_to_its_distribution():
    space, _ = deployment_like()
    assert distribution(space["backend"]) == CategoricalDistribution(["eager", "onnx"])
    assert distribution(space["batch"]) == IntDistribution(0, 5)  # the index: order kept
    assert distribution(space["threads"]) == IntDistribution(1, 8)
    assert distribution(space["scale"]) == FloatDistribution(0.1, 10.0, log=True)
    assert distribution(Integer("w", low=1, high=256, log=True)) == IntDistribution(1, 256, log=True)


def test_choices_optuna_cannot_store_go_by_index_and_come_back_as_themselves():
    space = SearchSpace([Categorical("shape", choices=("flat", (1, 2), None))])
    assert distribution(space["shape"]) == CategoricalDistribution([0, 1, 2])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(30):
        config = suggest_config(study.ask(), space)
        space.validate(config)
        seen.append(config["shape"])
        assert space["shape"].choices[to_optuna(space, config)[0]["shape"]] == config["shape"]
    assert (1, 2) in seen and None in seen and "flat" in seen
    plain = SearchSpace([Categorical("p", choices=("fp32", 16, 2.5, True, None))])
    assert distribution(plain["p"]) == CategoricalDistribution(["fp32", 16, 2.5, True, None])


def test_only_active_parameters_are_suggested_on_a_conditional_space():
    task = HierarchicalRosenbrock()
    for cls in (OptunaGP, OptunaCmaEs, OptunaSampler):
        opt = cls(OptimizerContext(task.space, task.objective, constraints=task.constraints, budget=12, seed=2),
                  **(GP_FAST if cls is OptunaGP else {}))
        drive(opt, task, 12, seed=2)
        for trial in opt.study.trials:
            if "repeat_of" in trial.user_attrs["deploybench"]:
                continue
            config = {name: trial.params[name] for name in trial.params}
            assert sorted(trial.params) == sorted(task.space.active_names(config))


# -- what the sampler is told ----------------------------------------------------------------------------
def ok(accuracy=0.7, latency=10.0, memory=256.0):
    return Outcome(Status.OK, objective=accuracy, metrics={"accuracy": accuracy, "latency_ms": latency,
                                                             "memory_mb": memory}, cost_s=2.0)


def infeasible(accuracy=0.9, latency=30.0, memory=256.0):
    return Outcome(Status.INFEASIBLE, objective=accuracy,
                   metrics={"accuracy": accuracy, "latency_ms": latency, "memory_mb": memory},
                   violation={"latency_ms": (latency - 20.0) / 20.0, "memory_mb": 0.0}, cost_s=2.0)


def last(opt) -> optuna.trial.FrozenTrial:
    return opt.study.trials[-1]


@pytest.mark.parametrize("cls, params", [(OptunaGP, GP_FAST), (OptunaSampler, {}),
                                         (OptunaSampler, {"sampler": "NSGAIISampler"})])
def test_infeasible_trials_are_complete_with_positive_constraint_values(cls, params):
    opt = cls(context(), **params)
    opt.tell(opt.ask(), ok())
    feasible = last(opt)
    assert feasible.state is TrialState.COMPLETE and feasible.value == 0.7
    assert feasible.constraints == {"latency_ms": pytest.approx(-0.5), "memory_mb": pytest.approx(-0.5)}
    opt.tell(opt.ask(), infeasible(latency=30.0, memory=256.0))
    trial = last(opt)
    assert trial.state is TrialState.COMPLETE and trial.value == 0.9
    # (measured - cap) / scale per constraint: positive where violated, the slack where met
    assert trial.constraints == {"latency_ms": pytest.approx(0.5), "memory_mb": pytest.approx(-0.5)}
    assert trial.user_attrs["deploybench"]["status"] == "infeasible"


@pytest.mark.parametrize("cls, params", [(OptunaGP, GP_FAST), (OptunaCmaEs, {}), (OptunaSampler, {}),
                                         (OptunaSampler, {"sampler": "RandomSampler"})])
def test_crashes_and_timeouts_are_told_as_fail(cls, params):
    """Optuna's FAQ: a trial that raised is FAIL; samplers ignore FAIL trials. No value, no constraint."""
    opt = cls(context(), **params)
    opt.tell(opt.ask(), Outcome.crashed("oom", "out of memory", cost_s=1.5))
    crash = last(opt)
    assert crash.state is TrialState.FAIL and crash.value is None and crash.constraints == {}
    assert crash.user_attrs["deploybench"]["error_kind"] == "oom"  # kept for inspection only
    opt.tell(opt.ask(), Outcome.timed_out("too slow", cost_s=60.0))
    assert last(opt).state is TrialState.FAIL and last(opt).value is None
    opt.tell(opt.ask(), Outcome(Status.INFEASIBLE, objective=None, metrics={"latency_ms": 30.0, "memory_mb": 10.0},
                                violation={"latency_ms": 0.5, "memory_mb": 0.0}))
    assert last(opt).state is TrialState.FAIL  # ran without an objective: Optuna's NaN case


def test_cmaes_is_told_infeasible_trials_as_fail_and_no_constraints():
    opt = OptunaCmaEs(context())
    opt.tell(opt.ask(), ok())
    assert last(opt).state is TrialState.COMPLETE and last(opt).constraints == {}
    opt.tell(opt.ask(), infeasible())
    assert last(opt).state is TrialState.FAIL and last(opt).constraints == {}
    assert last(opt).user_attrs["deploybench"]["constraints"]["latency_ms"] == pytest.approx(0.5)


@pytest.mark.parametrize("cls, params", [(OptunaGP, GP_FAST), (OptunaCmaEs, {}), (OptunaSampler, {})])
def test_early_stops_are_pruned_with_what_was_measured(cls, params):
    opt = cls(context(), **params)
    # cut short with a partial objective and the latency measured, memory not
    opt.tell(opt.ask(), Outcome(Status.INFEASIBLE, objective=0.6, metrics={"latency_ms": 70.0}, early_stopped=True,
                                violation={"latency_ms": 2.5}))
    trial = last(opt)
    assert trial.state is TrialState.PRUNED and trial.intermediate_values == {0: 0.6}
    expected = {} if cls is OptunaCmaEs else {"latency_ms": pytest.approx(2.5)}
    assert trial.constraints == expected
    # the deployment tasks' early stop: no objective, no capped metric
    opt.tell(opt.ask(), Outcome(Status.INFEASIBLE, objective=None, metrics={"early_stop_estimate_ms": 90.0},
                                early_stopped=True))
    assert last(opt).state is TrialState.PRUNED and last(opt).intermediate_values == {}
    assert last(opt).constraints == {}
    # ran to the end, but a capped metric is missing: not a complete record
    opt.tell(opt.ask(), Outcome(Status.INFEASIBLE, objective=0.8, metrics={"latency_ms": 30.0},
                                violation={"latency_ms": 0.5}))
    if cls is OptunaCmaEs:
        assert last(opt).state is TrialState.FAIL
    else:
        assert last(opt).state is TrialState.PRUNED and last(opt).intermediate_values == {0: 0.8}
        assert last(opt).constraints == {"latency_ms": pytest.approx(0.5)}


def test_an_unconstrained_task_sets_no_constraints():
    space, _ = deployment_like()
    opt = OptunaGP(OptimizerContext(space, Objective("accuracy", "maximize"), budget=5, seed=0), **GP_FAST)
    opt.tell(opt.ask(), ok())
    assert last(opt).state is TrialState.COMPLETE and last(opt).constraints == {}


def test_cmaes_generation_fills_with_feasible_trials_only():
    """A FAIL trial is replaced by a new sample of the same generation (Hansen's resampling)."""
    space = SearchSpace([Float("x", low=-5.0, high=5.0), Float("y", low=-5.0, high=5.0)])
    ctx = OptimizerContext(space, Objective("f", "minimize"), constraints=(Constraint("g", 0.0, scale=1.0),),
                           budget=40, seed=0)
    opt = OptunaCmaEs(ctx, popsize=4)
    for _ in range(40):
        config = opt.ask()
        g = config["x"] + config["y"] - 2.0  # feasible below the line x + y = 2
        f = (config["x"] - 3.0) ** 2 + (config["y"] - 3.0) ** 2
        status = Status.OK if g <= 0 else Status.INFEASIBLE
        opt.tell(config, Outcome(status, objective=f, metrics={"g": g}, violation={"g": max(0.0, g)}))
    generations = {}
    for trial in opt.study.trials:
        generation = next((v for k, v in trial.system_attrs.items() if k.endswith(":generation")), None)
        if generation is not None and trial.state is TrialState.COMPLETE:
            generations[generation] = generations.get(generation, 0) + 1
    full = [g for g, n in generations.items() if n >= 4]
    assert len(full) >= 2  # CMA-ES moved on from generation to generation on COMPLETE trials alone
    assert any(t.state is TrialState.FAIL for t in opt.study.trials)


# -- repeats and reproducibility -------------------------------------------------------------------------
def test_repeats_of_complete_trials_are_answered_from_the_record_as_optuna_faq_does():
    space = SearchSpace([Categorical("a", choices=("x", "y")), Ordinal("b", values=(1, 2))])
    ctx = OptimizerContext(space, Objective("v", "maximize"), budget=4, seed=0)
    opt = OptunaSampler(ctx, sampler="RandomSampler", max_retries=50)
    keys = []
    for _ in range(4):
        config = opt.ask()
        keys.append(space.key(config))
        opt.tell(config, Outcome(Status.OK, objective=float(config["b"])))
    assert len(set(keys)) == 4  # every configuration measured once
    repeats = [t for t in opt.study.trials if "repeat_of" in t.user_attrs["deploybench"]]
    assert repeats, "four random draws from four configurations repeated nothing"
    for t in repeats:
        original = opt.study.trials[t.user_attrs["deploybench"]["repeat_of"]]
        assert t.params == original.params and t.value == original.value and t.state is original.state

    crashing = OptunaSampler(ctx, sampler="RandomSampler", max_retries=50)
    keys = []
    for _ in range(6):  # a failed configuration is measured again when proposed again
        config = crashing.ask()
        keys.append(space.key(config))
        crashing.tell(config, Outcome.crashed("runtime", "boom"))
    assert len(set(keys)) < len(keys) and len(crashing.study.trials) == 6

    plain = OptunaSampler(ctx, sampler="RandomSampler", avoid_duplicates=False)
    keys = []
    for _ in range(8):
        config = plain.ask()
        keys.append(space.key(config))
        plain.tell(config, Outcome(Status.OK, objective=1.0))
    assert len(set(keys)) < len(keys) and len(plain.study.trials) == 8


@pytest.mark.parametrize("cls, params", [(OptunaGP, GP_FAST), (OptunaCmaEs, {}), (OptunaSampler, {}),
                                         (OptunaSampler, {"sampler": "QMCSampler"})])
def test_same_seed_same_configs(cls, params):
    task = CrashyBranin()
    ctx = OptimizerContext(task.space, task.objective, constraints=task.constraints, budget=10, seed=4)
    first = drive(cls(ctx, **params), task, 10, seed=4)
    second = drive(cls(ctx, **params), task, 10, seed=4)
    assert first == second
    other = drive(cls(OptimizerContext(task.space, task.objective, constraints=task.constraints, budget=10, seed=5),
                      **params), task, 10, seed=5)
    assert other != first


def test_params_are_stored_unchanged():
    opt = OptunaCmaEs(context(), popsize=6, with_margin=True)
    assert opt.get_params() == {"avoid_duplicates": True, "consider_pruned_trials": False, "max_retries": 10,
                                "n_startup_trials": 1, "popsize": 6, "with_margin": True}
    json.dumps(OptunaSampler(context(), sampler="GPSampler", sampler_kwargs={"n_startup_trials": 3}).get_params())


# -- command line -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_runs_a_sampler_by_shorthand(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "deploybench.cli.main", "run", "-o", "optuna:RandomSampler",
                           "-t", "crashy_branin", "--seeds", "1", "--budget", "5", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cases = [read_case_file(p) for p in iter_case_files(tmp_path)]
    assert len(cases) == 1
    case = cases[0]
    assert case.header["optimizer"] == "optuna"
    params = case.header["optimizer_params"]
    assert params["sampler"] == "RandomSampler" and params["sampler_kwargs"] is None
    assert case.completed and len(case.trials) == 5
    assert {t["outcome"]["status"] for t in case.trials} <= {"ok", "infeasible", "crashed", "timeout"}
