"""deploybench-smac: space translation, the cost rule, and the optimizer on crash-prone spaces."""

from __future__ import annotations

import os
import subprocess
import sys

import ConfigSpace as CS
import numpy as np
import pytest

from deploybench import (Categorical, Condition, Constraint, EvalContext, Float, Integer, Objective,
                         OptimizerContext, Ordinal, Outcome, SearchSpace, Status)
from deploybench.tasks.synthetic import CrashyBranin, HierarchicalRosenbrock
from deploybench_smac import SMACOptimizer
from deploybench_smac.configspace import SpaceTranslation
from deploybench_smac.costs import trial_costs


def mixed_space() -> SearchSpace:
    return SearchSpace([
        Categorical("backend", choices=("eager", "compile", "onnx")),
        Ordinal("batch", values=(1, 2, 4, 8, 16, 32), log=True),
        Integer("threads", low=1, high=8, condition=Condition("backend", ("eager", "onnx"))),
        Integer("width", low=1, high=256, log=True),
        Float("lr", low=1e-4, high=1e-1, log=True, condition=Condition("backend", ("compile",))),
        Categorical("flag", choices=("1", 1, 2.5)),  # str() labels collide: index labels
    ])


def run(opt, task, n, seed=0):
    configs = []
    for i in range(n):
        config = opt.ask()
        task.space.validate(config)
        opt.tell(config, task.evaluate(config, EvalContext(seed=seed, trial=i)))
        configs.append(task.space.key(config))
    return configs


# -- translation ----------------------------------------------------------------------------------------
def test_every_kind_and_condition_becomes_its_configspace_counterpart():
    cs = SpaceTranslation(mixed_space(), seed=0).configspace
    assert isinstance(cs["backend"], CS.CategoricalHyperparameter)
    assert isinstance(cs["batch"], CS.OrdinalHyperparameter)
    assert list(cs["batch"].sequence) == ["1", "2", "4", "8", "16", "32"]
    assert isinstance(cs["width"], CS.UniformIntegerHyperparameter) and cs["width"].log
    assert isinstance(cs["lr"], CS.UniformFloatHyperparameter) and cs["lr"].log
    conditions = {c.child.name: c for c in cs.conditions}
    assert isinstance(conditions["threads"], CS.InCondition)
    assert set(conditions["threads"].values) == {"eager", "onnx"}
    assert isinstance(conditions["lr"], CS.EqualsCondition) and conditions["lr"].value == "compile"


def test_configs_round_trip_with_their_own_values_and_types():
    space = mixed_space()
    translation = SpaceTranslation(space, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(50):
        config = space.sample(rng)
        back = translation.to_config(translation.to_configuration(config))
        space.validate(back)
        assert list(back) == list(config)
        for name, value in config.items():  # ConfigSpace keeps floats to ~1e-11
            assert back[name] == (pytest.approx(value, rel=1e-9) if isinstance(value, float) else value)
        assert [type(v) for v in back.values()] == [type(v) for v in config.values()]


# -- cost rule ---------------------------------------------------------------------------------------------
def ok(v):
    return Outcome(Status.OK, objective=v)


def infeasible(v, violation=0.5, early=False):
    return Outcome(Status.INFEASIBLE, objective=v, violation={} if early else {"g": violation}, early_stopped=early)


def test_costs_order_feasible_below_infeasible_below_crash_and_grow_with_violation():
    history = [ok(-3.0), ok(-1.0), infeasible(5.0, 0.1), infeasible(5.0, 2.0), infeasible(None, early=True),
               Outcome.crashed("oom", "boom"), Outcome.timed_out("slow", 1.0)]
    costs = trial_costs(history, sign=+1.0)
    assert costs[:2] == [3.0, 1.0]                    # maximised objective → cost = -objective
    worst_ok, scale = 3.0, 8.0                        # ran costs: 3, 1, -5, -5 → spread 8
    assert costs[2] == pytest.approx(worst_ok + scale * 0.1)   # better objective than every ok, still worse
    assert costs[3] == pytest.approx(worst_ok + scale * 2.0)
    assert costs[4] == pytest.approx(worst_ok + scale * 1.0)   # early stop without violation counts V = 1
    assert costs[5] == costs[6] == pytest.approx(max(costs[:5]) + scale)
    assert all(np.isfinite(costs))


def test_minimised_objective_and_fixed_crash_cost():
    costs = trial_costs([ok(2.0), ok(5.0), Outcome.crashed("runtime", "x")], sign=-1.0, crash_cost=100.0)
    assert costs == [2.0, 5.0, 100.0]


def test_crashes_before_anything_ran_have_a_finite_cost():
    assert trial_costs([Outcome.crashed("runtime", "x")] * 2, sign=1.0) == [1.0, 1.0]


# -- optimizer ----------------------------------------------------------------------------------------------
def test_suggestions_are_valid_on_a_conditional_space_and_reproducible():
    task = HierarchicalRosenbrock()
    context = OptimizerContext(task.space, task.objective, constraints=task.constraints, budget=14, seed=3)
    first = run(SMACOptimizer(context, n_initial=4), task, 14, seed=3)
    second = run(SMACOptimizer(context, n_initial=4), task, 14, seed=3)
    assert first == second
    assert len(set(first)) == len(first)  # SMAC never proposes a configuration twice


def test_earlier_crash_costs_are_reimputed_as_the_worst_cost_grows():
    task = CrashyBranin()
    opt = SMACOptimizer(OptimizerContext(task.space, objective=task.objective, constraints=task.constraints,
                                         budget=10, seed=0))
    c1 = opt.ask()
    opt.tell(c1, Outcome.crashed("runtime", "x"))
    c2 = opt.ask()
    opt.tell(c2, Outcome(Status.OK, objective=-1.0, metrics={"neg_branin": -1.0}))
    c3 = opt.ask()
    opt.tell(c3, Outcome(Status.OK, objective=-50.0, metrics={"neg_branin": -50.0}))
    costs = {float(v.cost) for v in opt._facade.runhistory.values()}
    assert costs == {1.0, 50.0, 50.0 + 49.0}  # the crash now costs worst (50) + spread (49)


def test_optimizer_params_are_stored_unchanged():
    task = CrashyBranin()
    opt = SMACOptimizer(OptimizerContext(task.space, objective=task.objective, constraints=task.constraints),
                        challengers=200, crash_cost=1e3)
    assert opt.get_params()["challengers"] == 200 and opt.get_params()["crash_cost"] == 1e3
    assert opt.get_params()["n_initial"] is None


def test_same_suggestions_in_processes_with_different_hash_seeds():
    """SMAC's local search orders its start points through a set; the adapter makes that order canonical."""
    script = (
        "from deploybench import EvalContext\n"
        "from deploybench.tasks.synthetic import CrashyBranin\n"
        "from deploybench_smac import SMACOptimizer\n"
        "t = CrashyBranin()\n"
        "from deploybench import OptimizerContext\n"
        "ctx = OptimizerContext(t.space, objective=t.objective, constraints=t.constraints, budget=8, seed=1)\n"
        "o = SMACOptimizer(ctx, n_initial=3)\n"
        "keys = []\n"
        "for i in range(8):\n"
        "    c = o.ask(); o.tell(c, t.evaluate(c, EvalContext(seed=1, trial=i))); keys.append(t.space.key(c))\n"
        "print('|'.join(keys))\n"
    )
    outputs = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        outputs.add(proc.stdout)
    assert len(outputs) == 1


def test_finite_space_exhaustion_falls_back_to_sampling():
    space = SearchSpace([Categorical("a", choices=("x", "y")), Ordinal("b", values=(1, 2))])
    opt = SMACOptimizer(OptimizerContext(space, Objective("v"), constraints=(Constraint("m", 1.0),), budget=8, seed=0),
                        n_initial=2)
    for _ in range(8):
        config = opt.ask()
        space.validate(config)
        opt.tell(config, Outcome(Status.OK, objective=float(config["b"])))


def test_passes_the_deploybench_conformance_suite():
    testing = pytest.importorskip("deploybench.testing", reason="deploybench.testing is not in this deploybench")
    # a cheaper acquisition search keeps this under a minute; the checks are about behaviour, not quality
    testing.check_optimizer(SMACOptimizer, {"challengers": 200, "local_search_iterations": 1}, budget=10)
