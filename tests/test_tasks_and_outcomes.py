"""Outcome semantics, JSON safety, and the synthetic tasks' definitions, mixes and optima."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest

from deploybench import Constraint, ErrorKind, EvalContext, Outcome, Status, outcome_rank_key
from deploybench.results import dumps, loads
from deploybench.tasks.synthetic import CrashCliff, CrashyBranin, HierarchicalRosenbrock, branin


def test_outcome_rejects_non_finite_and_inconsistent_states():
    with pytest.raises(ValueError, match="objective must be finite"):
        Outcome(Status.OK, objective=float("-inf"))
    with pytest.raises(ValueError, match="needs an error"):
        Outcome(Status.CRASHED)
    with pytest.raises(ValueError, match="cannot violate"):
        Outcome(Status.OK, objective=1.0, violation={"lat": 0.2})
    with pytest.raises(ValueError, match="must violate"):
        Outcome(Status.INFEASIBLE, objective=1.0, violation={"lat": 0.0})
    with pytest.raises(ValueError, match="counts as infeasible"):
        Outcome(Status.OK, objective=1.0, early_stopped=True)


def test_metrics_are_made_json_safe_and_round_trip():
    o = Outcome(Status.INFEASIBLE, objective=0.5, metrics={"lat": float("nan"), "n": np.int64(3), "arr": [1.0, float("inf")]},
                violation={"lat": 0.1}, cost_s=2.0)
    line = dumps(o.to_dict())
    assert "NaN" not in line and "Infinity" not in line
    back = Outcome.from_dict(loads(line))
    assert back == o
    assert back.metrics["lat"] is None and back.metrics["n"] == 3 and back.metrics["arr"] == [1.0, None]


def test_results_lines_refuse_nan():
    with pytest.raises(ValueError):
        dumps({"x": float("nan")})
    with pytest.raises(ValueError):
        loads('{"x": NaN}')


def test_violation_is_unitless_and_crash_ranks_below_every_infeasible():
    latency = Constraint("latency_p95_ms", 20.0)
    memory = Constraint("memory_peak_mb", 512.0)
    synthetic = Constraint("g1", 0.0, scale=2.0)
    assert latency.violation(30.0) == pytest.approx(0.5)
    assert memory.violation(1024.0) == pytest.approx(1.0)
    assert synthetic.violation(1.0) == pytest.approx(0.5)
    assert latency.violation(10.0) == 0.0
    with pytest.raises(ValueError, match="needs a positive scale"):
        Constraint("g", 0.0)
    very_infeasible = Outcome(Status.INFEASIBLE, objective=1.0, violation={"a": 1e9})
    crash = Outcome.crashed(ErrorKind.OOM, "boom")
    timeout = Outcome.timed_out("slow", cost_s=5.0)
    ok = Outcome(Status.OK, objective=-3.0)
    ranked = sorted([crash, very_infeasible, timeout, ok], key=outcome_rank_key)
    assert ranked[0] is ok and ranked[1] is very_infeasible
    assert {id(ranked[2]), id(ranked[3])} == {id(crash), id(timeout)}


def test_judge_sets_status_from_constraints():
    task = CrashyBranin()
    ok = task.judge({"neg_branin": -1.0, "g1": -1.0, "g2": -2.0}, 1.0)
    bad = task.judge({"neg_branin": -1.0, "g1": 0.5, "g2": -2.0}, 1.0)
    stopped = task.judge({"neg_branin": -1.0, "g1": -1.0, "g2": -2.0}, 1.0, early_stopped=True)
    assert ok.status is Status.OK and ok.feasible
    assert bad.status is Status.INFEASIBLE and bad.violation["g1"] == pytest.approx(0.5)
    assert stopped.status is Status.INFEASIBLE and stopped.early_stopped


def _mix(task, n=20000, seed=0):
    rng = np.random.default_rng(seed)
    counts = Counter()
    for i in range(n):
        o = task.evaluate(task.space.sample(rng), EvalContext(seed=seed, trial=i))
        counts[o.status] += 1
        assert o.cost_s > 0
    return {k: v / n for k, v in counts.items()}


def test_crashy_branin_matches_the_reference_definition_and_mix():
    task = CrashyBranin()
    mix = _mix(task)
    # the TBA paper's published code: about 20.7 % crashed, 45.1 % infeasible under uniform sampling
    assert mix[Status.CRASHED] == pytest.approx(0.207, abs=0.012)
    assert mix[Status.INFEASIBLE] == pytest.approx(0.451, abs=0.015)
    assert branin(-math.pi, 12.275) == pytest.approx(0.397887, abs=1e-6)
    # the optimum −0.4979 is reached in every mode (shifts 0, +2, −2)
    for mode, x1 in (("A", math.pi), ("B", math.pi - 2), ("C", math.pi + 2)):
        o = task.evaluate({"mode": mode, "x1": x1, "x2": 2.275, "resolution": 1})
        assert o.feasible and o.objective == pytest.approx(task.metadata.known_optimum, abs=1e-5)
    assert task.metadata.known_optimum == pytest.approx(-0.4979, abs=1e-4)
    # crash zones exactly as defined
    assert task.evaluate({"mode": "C", "x1": 8.01, "x2": 1.0, "resolution": 1}).status is Status.CRASHED
    assert task.evaluate({"mode": "C", "x1": 8.0, "x2": 1.0, "resolution": 1}).status is not Status.CRASHED
    assert task.evaluate({"mode": "A", "x1": 1.0, "x2": 12.5, "resolution": 8}).status is Status.CRASHED
    # costs grow with resolution; a crash costs part of a run
    c1 = task.evaluate({"mode": "A", "x1": 3.0, "x2": 2.0, "resolution": 1}).cost_s
    c9 = task.evaluate({"mode": "A", "x1": 3.0, "x2": 2.0, "resolution": 9}).cost_s
    crash = task.evaluate({"mode": "A", "x1": 1.0, "x2": 12.5, "resolution": 9}).cost_s
    assert c1 < c9 and 0 < crash < c9


def test_no_grid_point_beats_the_known_optimum():
    task = CrashyBranin()
    best = -math.inf
    for mode in "ABC":
        for x1 in np.linspace(0, 15, 151):
            for x2 in np.linspace(0, 15, 151):
                o = task.evaluate({"mode": mode, "x1": float(x1), "x2": float(x2), "resolution": 1})
                if o.feasible:
                    best = max(best, o.objective)
    assert task.metadata.known_optimum - 0.01 < best <= task.metadata.known_optimum + 1e-9


def test_hierarchical_rosenbrock_optimum_noise_and_conditions():
    task = HierarchicalRosenbrock()
    ones = {"mode": "full", "x1": 1.0, "x2": 1.0, "x3": 1.0, "x4": 1.0, "x5": 1.0, "n_iters": 20}
    values = [task.evaluate(ones, EvalContext(seed=s, trial=0)).objective for s in range(200)]
    assert np.mean(values) == pytest.approx(0.0, abs=0.01)  # zero-mean noise around the optimum 0
    assert np.std(values) == pytest.approx(0.5 / 20, rel=0.2)
    noisy = [task.evaluate({**ones, "n_iters": 1}, EvalContext(seed=s, trial=0)).objective for s in range(200)]
    assert np.std(noisy) > 5 * np.std(values)  # noise falls as n_iters grows
    # deterministic per (seed, trial)
    assert task.evaluate(ones, EvalContext(seed=3, trial=4)) == task.evaluate(ones, EvalContext(seed=3, trial=4))
    # more iterations cost more
    assert task.evaluate(ones).cost_s > task.evaluate({**ones, "n_iters": 1}).cost_s
    assert task.evaluate({**ones, "x1": 3.5, "x5": 3.5}).status is Status.CRASHED
    mix = _mix(task, n=10000)
    assert mix[Status.CRASHED] == pytest.approx(0.013, abs=0.006)
    assert mix[Status.INFEASIBLE] == pytest.approx(0.173, abs=0.02)
    with pytest.raises(Exception, match="inactive"):
        task.space.validate({"mode": "simple", "x1": 0.0, "x2": 0.0, "x3": 0.0, "n_iters": 3})


def test_crash_cliff_optimum_sits_on_the_crash_boundary():
    task = CrashCliff()
    edge = task.cliff("simd", 3)
    best = task.evaluate({"accelerator": "simd", "x": edge, "y": 0.5, "unroll": 3})
    assert best.feasible and best.objective == pytest.approx(task.metadata.known_optimum)
    assert task.evaluate({"accelerator": "simd", "x": edge + 1e-3, "y": 0.5, "unroll": 3}).status is Status.CRASHED
    rng = np.random.default_rng(1)
    for _ in range(20000):
        c = task.space.sample(rng)
        o = task.evaluate(c)
        if o.feasible:
            assert o.objective <= task.metadata.known_optimum + 1e-9
    # the other families top out lower
    for acc in ("none", "gpu"):
        top = max(task.evaluate({"accelerator": acc, "x": task.cliff(acc, u), "y": 0.5, "unroll": u}).objective
                  for u in range(1, 9))
        assert top < task.metadata.known_optimum - 0.05


def test_task_signatures_are_stable_and_distinct():
    a, b = CrashyBranin(), CrashyBranin()
    assert a.signature() == b.signature()
    assert len({CrashyBranin().signature(), HierarchicalRosenbrock().signature(), CrashCliff().signature()}) == 3
    json.dumps(a.describe())  # JSON-safe


def test_direction_helpers_and_no_direction_string_compared_elsewhere():
    import math
    import re
    from pathlib import Path

    from deploybench import direction

    assert direction.better(2.0, 1.0, "maximize") and direction.better(1.0, 2.0, "minimize")
    assert direction.better(1.0, None, "minimize") and not direction.better(1.0, 1.0, "maximize")
    assert direction.loss(3.0, "maximize") == -3.0 and direction.loss(3.0, "minimize") == 3.0
    assert direction.regret(10.0, 7.0, "maximize") == 3.0 and direction.regret(1.0, 4.0, "minimize") == 3.0
    assert direction.worst([1.0, 5.0], "maximize") == 1.0 and direction.worst([1.0, 5.0], "minimize") == 5.0
    assert direction.worst_value("maximize") == -math.inf and direction.sign("minimize") == -1.0
    with pytest.raises(ValueError, match="'maximize' or 'minimize'"):
        direction.check("max")
    root = Path(__file__).resolve().parents[1]
    compare = re.compile(r"""[=!]= ["'](maximize|minimize)["']""")
    offenders = [f"{p.relative_to(root)}:{i}" for folder in ("deploybench", "optimizers")
                 for p in (root / folder).rglob("*.py") if p.name != "direction.py"
                 for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if compare.search(line)]
    assert not offenders, f"compare directions through deploybench.direction: {offenders}"
