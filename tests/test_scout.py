"""``scout``, the AutoScout-style optimizer: conformance, its parts, and its ablation switches."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deploybench import (Categorical, Condition, Float, Integer, Objective, OptimizerContext, Ordinal, Outcome,
                         SearchSpace, Status)
from deploybench.fidelity import split_suggestion
from deploybench.task import EvalContext
from deploybench.tasks.synthetic import HierarchicalRosenbrock
from deploybench.tasks.synthetic_mf import CrashyBraninMF
from deploybench.testing import parametrize_with_checks, toy_task
from deploybench_optimizers.scout import Scout, reward
from deploybench_optimizers.scout_dense import CoordinateSearch
from deploybench_optimizers.scout_evaluator import FidelitySwitch, RegressorEnsemble
from deploybench_optimizers.scout_tree import INACTIVE, StructureTree, Tournament, orderings, split_space


@parametrize_with_checks([Scout, (Scout, {"dense": False}), (Scout, {"orchestrator": False}),
                          (Scout, {"simulators": False}), (Scout, {"tournament": False})])
def test_scout_conformance(optimizer, check):
    check(optimizer)


def _space() -> SearchSpace:
    return SearchSpace([
        Categorical("backend", choices=("eager", "compiled", "ort")),
        Categorical("precision", choices=("fp32", "int8")),
        Ordinal("batch", values=(1, 4, 16), log=True),
        Integer("threads", low=1, high=8, condition=Condition("backend", ("eager", "ort"))),
        Categorical("graph", choices=("basic", "all"), condition=Condition("backend", ("ort",))),
        Integer("level", low=0, high=3),
        Float("alpha", low=0.0, high=1.0, condition=Condition("level", (2, 3))),
    ])


def test_the_split_follows_the_space():
    sparse, dense = split_space(_space())
    assert sparse == ["backend", "precision", "graph", "level"]  # categoricals and small condition parents
    assert dense == ["batch", "threads", "alpha"]


def test_orderings_decide_condition_parents_first():
    space = _space()
    sparse, _ = split_space(space)
    orders = orderings(space, sparse, 6, np.random.default_rng(0))
    assert orders[0] == tuple(sparse) and len(set(orders)) == 6
    for order in orders:
        assert order.index("backend") < order.index("graph")


def test_tree_children_respect_conditions():
    space = _space()
    sparse, _ = split_space(space)
    tree = StructureTree(space, ("level", "backend", "graph", "precision"), 0.5, np.random.default_rng(1))
    seen = set()
    for _ in range(60):
        structure = tree.select()
        assert ("graph" in structure) == (structure["backend"] == "ort")
        assert set(structure) <= set(sparse)
        config = space.complete(structure, np.random.default_rng(2))
        space.validate(config)
        tree.update(config, 0.5)
        seen.add(tuple(sorted(structure.items())))
    assert len(seen) == 4 * (2 + 2 + 2 * 2)  # every valid structure is reached: level × (eager, compiled, ort × graph)
    assert INACTIVE in tree.root.children[0].children["eager"].children


def test_uct_concentrates_on_the_rewarding_branch():
    space = SearchSpace([Categorical("a", choices=("x", "y", "z")), Categorical("b", choices=("p", "q"))])
    tree = StructureTree(space, ("a", "b"), 0.3, np.random.default_rng(0))
    picks = []
    for _ in range(80):
        s = tree.select()
        picks.append(s["a"])
        tree.update(s, 1.0 if s == {"a": "y", "b": "q"} else 0.1)
    assert picks[-30:].count("y") >= 20


def test_rewards_keep_crash_below_infeasible_below_feasible():
    crash = Outcome.crashed("oom", "x", cost_s=1.0)
    infeasible = Outcome(Status.INFEASIBLE, objective=5.0, violation={"c": 0.01}, cost_s=1.0)
    early = Outcome(Status.INFEASIBLE, violation={"c": 0.0}, cost_s=1.0, early_stopped=True)
    worst_feasible = Outcome(Status.OK, objective=0.0, violation={"c": 0.0}, cost_s=1.0)
    values = [reward(crash, None, 0, 1), reward(early, None, 0, 1), reward(infeasible, 5.0, 0, 1),
              reward(worst_feasible, 0.0, 0, 1)]
    assert values == sorted(values) and len(set(values)) == 4 and values[0] == 0.0 and values[-1] == 0.5


def test_tournament_halves_to_the_entrant_whose_proposals_earn_most():
    space = SearchSpace([Categorical("a", choices=("x", "y")), Categorical("b", choices=("p", "q"))])
    trees = [StructureTree(space, o, 0.5, np.random.default_rng(i)) for i, o in enumerate([("a", "b"), ("b", "a")] * 2)]
    t = Tournament(trees, halve_every=2)
    for _ in range(40):
        i, tree = t.next_tree()
        tree.own_rewards.append(1.0 if i == 3 else 0.2)
    assert t.alive == [3] and t.winner == ("b", "a")


def test_coordinate_search_climbs_with_momentum_and_shrinks_its_step():
    space = SearchSpace([Float("x", low=0.0, high=1.0), Integer("k", low=0, high=20)])
    search = CoordinateSearch(space, ["x", "k"], momentum=0.5, step=0.1, min_step=0.01, rng=np.random.default_rng(0))

    def f(c):
        return -(c["x"] - 0.83) ** 2 - 0.01 * (c["k"] - 14) ** 2

    base = {"x": 0.1, "k": 2}
    search.reset(base)
    for _ in range(80):
        cand = search.propose()
        if cand is None:
            break
        better = f(cand) > f(base)
        search.result(better)
        if better:
            base = cand
            search.reset(base)
    assert abs(base["x"] - 0.83) < 0.05 and abs(base["k"] - 14) <= 1


def test_ensemble_weights_members_by_r2_and_predicts():
    rng = np.random.default_rng(0)
    X = rng.random((40, 3))
    y = 3.0 * X[:, 0] + 0.5
    ens = RegressorEnsemble({"good": lambda A: A[:, [0]], "useless": lambda A: A[:, [2]]})
    ens.fit(X, y)
    assert ens.weights["good"] > 0.99 and ens.weights["useless"] < 0.2
    pred = ens.predict(np.array([[0.5, 0.0, 0.0]]))
    assert abs(pred[0] - 2.0) < 0.3
    sim = [v + 1.0 for v in y]  # a biased but perfectly correlated simulator is recalibrated
    ens.fit(X, y, sim)
    assert ens.weights["simulator"] > 0.99


def test_the_switch_goes_to_profiling_when_mape_grows():
    switch = FidelitySwitch(0.2, window=3)
    for predicted, measured in [(1.0, 1.05), (2.0, 2.1), (3.0, 2.9)]:
        switch.check([(predicted, measured)])
    assert switch.mode == "simulate"
    for predicted, measured in [(1.0, 2.0), (1.0, 2.0), (1.0, 2.0)]:
        switch.check([(predicted, measured)])
    assert switch.mode == "profile" and switch.mape > 0.2


def test_a_simulator_wrong_about_a_capped_metric_is_caught_even_when_right_about_the_objective():
    switch = FidelitySwitch(0.2, window=3)
    for _ in range(3):  # objective exact, latency predicted at half its measured value
        switch.check([(0.75, 0.75), (10.0, 20.0)])
    assert switch.mode == "profile" and switch.mape == 0.5
    wrong = FidelitySwitch(0.2, window=3)
    for _ in range(3):  # every number right, the feasibility verdict wrong
        wrong.check([(0.75, 0.75)], verdict_wrong=True)
    assert wrong.mode == "profile"


def _drive(task, params=None, seed=0, budget_s=60.0, max_trials=400):
    opt = Scout(OptimizerContext.for_task(task, budget=max_trials, seed=seed, budget_seconds=budget_s),
                **(params or {}))
    cost, trials = 0.0, []
    for i in range(max_trials):
        if cost >= budget_s:
            break
        config, level = split_suggestion(opt.ask())
        task.space.validate(config)
        o = task.evaluate_at(config, level, EvalContext(seed=seed, trial=i))
        opt.tell(config, o)
        cost += o.cost_s
        trials.append((config, level, o))
    return opt, trials


def test_on_a_multi_fidelity_task_scout_simulates_then_profiles():
    opt, trials = _drive(CrashyBraninMF())
    levels = [lvl for _, lvl, _ in trials]
    assert levels[0] == "sim" and {"sim", "probe", "full"} <= set(levels)
    # a probe that crashed is never promoted to a full run of the same configuration
    crashed_probes = {str(sorted(c.items())) for c, lvl, o in trials if lvl == "probe" and o.failed}
    full = {str(sorted(c.items())) for c, lvl, _ in trials if lvl == "full"}
    assert not crashed_probes & full
    found = [o.objective for _, lvl, o in trials if o.counts_as_found]
    assert found and opt.recommend() is not None
    assert opt._switch.mode == "profile" and opt.mode_history  # the biased simulator was caught


@pytest.mark.parametrize("params, level", [({"simulators": False}, "sim")])
def test_without_simulators_scout_never_asks_the_simulator(params, level):
    _, trials = _drive(CrashyBraninMF(), params)
    assert level not in {lvl for _, lvl, _ in trials}


def test_without_dense_every_step_is_structural():
    task = toy_task()
    opt = Scout(OptimizerContext(task.space, objective=task.objective, constraints=task.constraints, budget=30,
                                 seed=0), dense=False)
    for i in range(30):
        config = opt.ask()
        opt.tell(config, task.evaluate(config, EvalContext(seed=0, trial=i)))
    assert set(opt._steps.values()) == {"sparse"}
    opt = Scout(OptimizerContext(task.space, objective=task.objective, constraints=task.constraints, budget=30,
                                 seed=0))
    for i in range(30):
        config = opt.ask()
        opt.tell(config, task.evaluate(config, EvalContext(seed=0, trial=i)))
    assert set(opt._steps.values()) == {"sparse", "dense"}


def test_scout_handles_conditional_numeric_spaces():
    """Every suggestion is valid on a space whose dimension depends on a mode, and over 5 seeds scout's
    median best beats random search's (the objective is heavy-tailed: medians, not means)."""
    from deploybench_optimizers.random_search import RandomSearch

    task = HierarchicalRosenbrock()

    def best(cls, seed):
        opt = cls(OptimizerContext(task.space, objective=task.objective, constraints=task.constraints,
                                   budget=30, seed=seed))
        found = -math.inf
        for i in range(30):
            config = opt.ask()
            task.space.validate(config)
            o = task.evaluate(config, EvalContext(seed=seed, trial=i))
            opt.tell(config, o)
            if o.feasible:
                found = max(found, o.objective)
        return found

    assert np.median([best(Scout, s) for s in range(5)]) > np.median([best(RandomSearch, s) for s in range(5)])


def test_screening_prefers_candidates_predicted_within_the_caps():
    from deploybench import Constraint

    space = SearchSpace([Categorical("kind", choices=("a", "b")), Float("x", low=0.0, high=1.0)])
    opt = Scout(OptimizerContext(space, Objective("score", "maximize"), constraints=(Constraint("latency", 10.0),), seed=0))
    rng = np.random.default_rng(0)
    for _ in range(12):  # latency = 20 x (over the cap of 10 above x = 0.5); score rises with x
        config = {"kind": "a", "x": float(rng.random())}
        opt.ask()
        opt._in_flight = None
        metrics = {"score": config["x"], "latency": 20.0 * config["x"] + 0.1}
        over = max(0.0, metrics["latency"] - 10.0) / 10.0
        opt.tell(config, Outcome(Status.INFEASIBLE if over else Status.OK, objective=config["x"], metrics=metrics,
                                 violation={"latency": over}, cost_s=1.0))
    candidates = [{"kind": "a", "x": x} for x in (0.1, 0.45, 0.9, 0.7)]
    assert opt._screening and candidates[opt._best_screened(candidates)]["x"] == 0.45  # best within the cap


def test_the_dense_side_refines_the_least_infeasible_point_before_anything_is_feasible():
    from deploybench_optimizers.scout import _rank

    crash = Outcome.crashed("oom", "x", cost_s=1.0)
    far = Outcome(Status.INFEASIBLE, objective=1.0, violation={"c": 2.0}, cost_s=1.0)
    near = Outcome(Status.INFEASIBLE, objective=0.0, violation={"c": 0.1}, cost_s=1.0)
    early = Outcome(Status.INFEASIBLE, violation={"c": 0.0}, cost_s=1.0, early_stopped=True)
    ok = Outcome(Status.OK, objective=-5.0, violation={"c": 0.0}, cost_s=1.0)
    assert _rank(crash, None) is None
    assert _rank(early, None) < _rank(far, 1.0) < _rank(near, 0.0) < _rank(ok, -5.0)


def test_the_probe_is_skipped_once_it_costs_more_than_it_saves():
    task = CrashyBraninMF()
    opt = Scout(OptimizerContext(task.space, objective=task.objective, constraints=task.constraints,
                                 budget=100, seed=0, fidelities=task.fidelities, budget_seconds=60.0),
                simulators=False)
    assert opt._real_level() == "probe"  # declared at a quarter of a full run
    opt._level_costs = {"probe": [3.0, 3.0], "full": [4.0, 4.0]}  # observed: three quarters
    opt._probes, opt._probes_rejected = 10, 5  # it rejects about half
    assert opt._real_level() == "full"
    opt._level_costs = {"probe": [1.0], "full": [4.0]}
    assert opt._real_level() == "probe"
