"""Behaviour of the built-in optimizers: crash policy, handoff, blacklisting, dedup, early stops."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deploybench import (Categorical, Integer, Constraint, ErrorKind, EvalContext, Objective, OptimizerContext, Ordinal,
                         Outcome, SearchSpace,
                         Status, Task, TaskMetadata)
from deploybench.plugins import create_plugin_manager
from deploybench.tasks.synthetic import CrashyBranin
from deploybench_optimizers.optuna_policy import CRASH_CONSTRAINT, constraint_value
from deploybench_optimizers.subspace import SubspaceTracker
from deploybench_optimizers.tba import TBA
from deploybench_optimizers.tba_tpe import TBATPE
from deploybench_optimizers.tpe import TPE

CLASSES = create_plugin_manager().optimizer_classes()
FAST: dict[str, dict] = {}  # every built-in is fast enough to test with its defaults


class GridTask(Task):
    """A finite space (3 × 3 × 6 × 8 = 432 configs) where backend 'broken' always crashes."""

    def __init__(self):
        space = SearchSpace([
            Categorical("model", choices=("m1", "m2", "m3")),
            Categorical("backend", choices=("fast", "slow", "broken")),
            Ordinal("batch", values=(1, 2, 4, 8, 16, 32), log=True),
            Integer("threads", low=1, high=8),
        ])
        super().__init__(name="grid", version="1", space=space, objective=Objective("acc", "maximize"),
                         constraints=(Constraint("latency", 20.0),), default_budget=30,
                         metadata=TaskMetadata(kind="analytic", family_param="model"))

    def evaluate(self, config, context=None):
        if config["backend"] == "broken":
            return Outcome.crashed(ErrorKind.UNSUPPORTED, "operator not implemented", cost_s=2.0)
        latency = (1 + 1 / config["threads"]) * config["batch"] * (1.0 if config["backend"] == "fast" else 2.5) * {"m1": 0.5, "m2": 1.0, "m3": 2.0}[config["model"]]
        acc = {"m1": 0.7, "m2": 0.75, "m3": 0.8}[config["model"]] + 0.001 * config["batch"]
        return self.judge({"acc": acc, "latency": latency}, cost_s=1.0 + latency / 10)


def _run(cls, task, budget, seed=0, **params):
    opt = cls(OptimizerContext(task.space, objective=task.objective, constraints=task.constraints,
                               budget=budget, seed=seed, family_param=task.metadata.family_param), **params)
    history = []
    for i in range(budget):
        c = opt.ask()
        task.space.validate(c)
        o = task.evaluate(c, EvalContext(seed=seed, trial=i))
        opt.tell(c, o)
        history.append((c, o))
    return opt, history


def test_crash_policy_ranks_crashes_below_every_infeasible():
    ok = Outcome(Status.OK, objective=1.0)
    small = Outcome(Status.INFEASIBLE, objective=1.0, violation={"a": 0.01})
    huge = Outcome(Status.INFEASIBLE, objective=1.0, violation={"a": 1e12})
    stopped = Outcome(Status.INFEASIBLE, violation={"a": 0.01}, early_stopped=True)
    crash = Outcome.crashed(ErrorKind.OOM, "x")
    timeout = Outcome.timed_out("x", cost_s=1)
    values = [constraint_value(o) for o in (ok, small, huge, crash, timeout)]
    assert values[0] == 0 and 0 < values[1] < values[2] < CRASH_CONSTRAINT == values[3] == values[4]
    assert 0.5 <= constraint_value(stopped) < CRASH_CONSTRAINT


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tpe", "tba_tpe", "tba_tpe_plus", "cbo", "cbo_plus"])
def test_a_region_that_always_crashes_stops_being_proposed(name):
    task = GridTask()
    late_broken = []
    for seed in range(2 if name in FAST else 3):
        _, history = _run(CLASSES[name], task, 35, seed=seed, **FAST.get(name, {}))
        late_broken += [c["backend"] == "broken" for c, _ in history[15:]]
    assert np.mean(late_broken) < 0.12  # uniform sampling would give 1/3


@pytest.mark.slow
def test_no_duplicate_evaluations_on_a_finite_space():
    task = GridTask()
    for name in ("random", "tba", "tba_tpe", "tba_tpe_plus", "tpe", "cbo", "cbo_plus"):
        for seed in range(1 if name in FAST else 2):  # model-based ones are slower: one seed
            _, history = _run(CLASSES[name], task, 30, seed=seed, **FAST.get(name, {}))
            keys = [task.space.key(c) for c, _ in history]
            assert len(set(keys)) == len(keys), f"{name} re-measured a configuration (seed {seed})"


def test_tpe_escapes_a_repeated_suggestion_to_an_unmeasured_neighbour(monkeypatch):
    """When TPE keeps proposing a measured configuration, the ask measures a configuration one parameter
    away from TPE's suggestion (not a random one), and never a measured or pending one."""
    import deploybench_optimizers.tpe as tpe_module

    task = GridTask()
    opt, history = _run(CLASSES["tpe"], task, 30, seed=0)
    favourite = history[-1][0]  # measured
    measured = {task.space.key(c) for c, _ in history}
    monkeypatch.setattr(tpe_module, "suggest_config", lambda trial, space: dict(favourite))
    n_trials = len(opt._study.trials)
    asked = set()
    for _ in range(8):
        c = opt.ask()
        key = task.space.key(c)
        assert key not in measured and key not in asked
        assert sum(c[k] != favourite[k] for k in favourite) == 1
        asked.add(key)
        opt.tell(c, task.evaluate(c))  # injected into the study, which TPE then learns from
    # each ask gave TPE DUPLICATE_RETRIES tries (closed as FAIL), no more; each told config was injected
    assert len(opt._study.trials) - n_trials == 8 * (tpe_module.DUPLICATE_RETRIES + 1)


def test_handoff_works_without_a_family_parameter():
    task = CrashyBranin()
    handoffs = []
    for seed in range(10):
        opt = TBATPE(OptimizerContext(task.space, objective=task.objective, constraints=task.constraints,
                                      budget=30, seed=seed, family_param=None))
        for i in range(30):
            c = opt.ask()
            opt.tell(c, task.evaluate(c, EvalContext(seed=seed, trial=i)))
        handoffs.append(opt.handoff_trial)
    assert all(h is not None for h in handoffs)
    assert any(h < 15 for h in handoffs)  # the adaptive gate fires (O1), not only the forced handoff


def test_family_diversity_gate_delays_handoff():
    task = GridTask()
    opt = TBATPE(OptimizerContext(task.space, objective=task.objective, constraints=task.constraints,
                                  budget=30, seed=0, family_param="model"),
                 min_family_diversity=4)  # only 3 families exist: never adaptive
    for i in range(30):
        c = opt.ask()
        opt.tell(c, task.evaluate(c))
    assert opt.handoff_trial == 15


def test_tracker_blames_values_with_no_success_and_pairs_otherwise():
    space = GridTask().space
    tr = SubspaceTracker(space, threshold=3, cooldown=8)
    crash = Outcome.crashed(ErrorKind.RUNTIME, "x")
    good = Outcome(Status.OK, objective=1.0)
    tr.record({"model": "m1", "backend": "fast", "batch": 1, "threads": 1}, good, 1)
    for t in range(2, 5):  # m1 has run fine: only the never-run 'broken' is charged
        tr.record({"model": "m1", "backend": "broken", "batch": 1}, crash, t)
    assert ("backend", "broken") in tr.active(5)
    assert ("model", "m1") not in tr.active(5)
    assert tr.blocked({"model": "m2", "backend": "broken", "batch": 4}, 5)
    assert "broken" not in tr.allowed_values("backend", 5)
    # cooldown counts from the moment of blacklisting and is not re-stamped
    tr.record({"model": "m1", "backend": "broken", "batch": 2}, crash, 6)
    assert ("backend", "broken") in tr.active(11)
    assert ("backend", "broken") not in tr.active(12)
    # an infeasible (ran) result is not a broken subspace
    tr2 = SubspaceTracker(space, threshold=2, cooldown=8)
    bad = Outcome(Status.INFEASIBLE, objective=1.0, violation={"latency": 0.5})
    for t in range(1, 5):
        tr2.record({"model": "m3", "backend": "slow", "batch": 32}, bad, t)
    assert tr2.active(5) == []


def test_tracker_pairs_success_reset_and_safety_valve():
    space = GridTask().space
    tr = SubspaceTracker(space, threshold=2, cooldown=100)
    good = Outcome(Status.OK, objective=1.0)
    crash = Outcome.crashed(ErrorKind.RUNTIME, "x")
    tr.record({"model": "m2", "backend": "slow", "batch": 1}, good, 1)
    for t in (2, 3):  # both values ran fine before: the interaction is blamed
        tr.record({"model": "m2", "backend": "slow", "batch": 8}, crash, t)
    assert (("model", "m2"), ("backend", "slow")) in tr.active(4)
    assert tr.blocked({"model": "m2", "backend": "slow", "batch": 2}, 4)
    assert not tr.blocked({"model": "m1", "backend": "slow", "batch": 2}, 4)
    tr.record({"model": "m2", "backend": "slow", "batch": 2}, good, 5)  # success reset
    assert tr.active(6) == []
    # safety valve: every backend failing never blacklists them all
    tr3 = SubspaceTracker(space, threshold=1, cooldown=100)
    for t, b in enumerate(("fast", "slow", "broken"), start=1):
        tr3.record({"model": "m1", "backend": b, "batch": 1}, crash, t)
    assert tr3.allowed_values("backend", 4) == ["fast", "slow", "broken"]


def test_early_stop_never_becomes_the_current_state():
    task = GridTask()
    opt = TBA(OptimizerContext(task.space, objective=task.objective, constraints=task.constraints, budget=20,
                               seed=0), n_initial_random=1)
    first = {"model": "m3", "backend": "slow", "batch": 32, "threads": 1}
    opt.ask()
    opt.tell(first, task.evaluate(first))  # infeasible start (latency 96 > 20)
    c = opt.ask()  # the annealer starts from the least-violating result
    current = dict(opt._sa.current)
    assert current == first
    stopped = Outcome(Status.INFEASIBLE, violation={"latency": 0.01}, early_stopped=True, cost_s=0.1)
    opt.tell(c, stopped)
    assert opt._sa.current == current  # a tiny estimated violation must not be accepted (O5)


def test_tba_cools_and_reheats():
    from deploybench_optimizers.annealing import Temperature

    t = Temperature()
    t.update(True, "feasibility")
    assert t.T == pytest.approx(0.95)
    t.update(True, "optimization")
    assert t.T == pytest.approx(0.95 * 0.92)
    for _ in range(4):
        t.update(False, "optimization")
    assert t.T == pytest.approx(min(0.95 * 0.92 * 2.5, 0.8))
    t.first_feasible()
    assert t.T == pytest.approx(0.7)


def test_tpe_startup_default_follows_the_reference():
    task = CrashyBranin()
    assert TPE(OptimizerContext(task.space, objective=task.objective,
                                budget=30)).get_params()["n_startup_trials"] is None
    opt = TPE(OptimizerContext(task.space, objective=task.objective, budget=30))
    assert opt._study.sampler._n_startup_trials == max(3, 30 // 5)


@pytest.mark.slow
def test_optimizers_improve_on_random_search_on_crashy_branin():
    task = CrashyBranin()
    def mean_best(name):
        bests = []
        for seed in range(5):
            _, h = _run(CLASSES[name], task, 25, seed=seed)
            feas = [o.objective for _, o in h if o.feasible]
            bests.append(max(feas) if feas else -300.0)
        return np.mean(bests)
    random_mean = mean_best("random")
    for name in ("tba", "tpe", "tba_tpe", "cbo", "cbo_plus"):
        assert mean_best(name) > random_mean, name


def test_a_blacklisted_fallback_is_recorded_not_silent():
    task = GridTask()
    opt = TBA(OptimizerContext(task.space, objective=task.objective, constraints=task.constraints, budget=10, seed=0))
    opt._tracker.blocked = lambda config, trial: [("backend", config["backend"])]  # everything blacklisted
    config = opt.ask()
    task.space.validate(config)
    assert opt.blacklist_overrides and opt.blacklist_overrides[0]["trial"] == 0
    assert "backend" in opt.blacklist_overrides[0]["blacklisted"][0]
