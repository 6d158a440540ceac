"""The cascade task family: registration, conformance, crash meanings, the enumerated optimum."""

from __future__ import annotations

import numpy as np
import pytest

from deploybench.outcome import ErrorKind, Status
from deploybench.plugins import create_plugin_manager
from deploybench.task import EvalContext
from deploybench.tasks.cascade import (POLICIES, SCENARIOS, TAU_GRID, best_of, build_cascade_task, compute_optimum,
                                       effective_configs, enumerate_space, stored_optima)
from deploybench.tasks.cascade_exact import TRAP_ALPHA
from deploybench.testing import check_task


def test_every_scenario_is_registered_through_the_entry_point():
    specs = create_plugin_manager().task_specs()
    for name in SCENARIOS:
        assert name in specs and specs[name].kind in ("analytic", "replay")
        task = specs[name].build()
        assert task.name == name and task.metadata.known_optimum is not None, \
            f"{name}: the stored optimum is missing or was made for another task signature"


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenarios_pass_check_task_and_the_witness_reaches_the_optimum(name):
    task = build_cascade_task(name)
    check_task(task, n=40, witness=task.metadata.extra["witness"])


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_stored_optimum_reproduced_on_a_sub_grid(name):
    """Enumerating the optimum's chain (every policy and parameter on it) finds the stored optimum
    again, and no sampled configuration of the whole space beats it or falls below the penalty."""
    task = build_cascade_task(name)
    stored = stored_optima()[name]
    chain = stored["witness"]["members"]
    sub = [c for c in effective_configs(task) if c["members"] == chain]
    _, best, _ = best_of(task, enumerate_space(task, iter(sub)))
    assert best == pytest.approx(stored["optimum"], abs=1e-12)
    rng = np.random.default_rng(1)
    sign = task.objective.sign
    for i in range(400):
        o = task.evaluate(task.space.sample(rng), EvalContext(trial=i))
        if o.feasible:
            assert sign * o.objective <= sign * stored["optimum"] + 1e-12
            assert sign * o.objective >= sign * stored["penalty"] - 1e-12


@pytest.mark.parametrize("name", ["cascade_trap", "cascade_tree"])
def test_full_enumeration_matches_the_stored_file(name):
    fresh = compute_optimum(name)
    stored = stored_optima()[name]
    assert fresh["signature"] == stored["signature"]
    assert fresh["optimum"] == pytest.approx(stored["optimum"], abs=1e-12)
    assert fresh["penalty"] == pytest.approx(stored["penalty"], abs=1e-12)


def test_trap_best_recall_free_configuration_is_alpha_times_worse():
    """Over the whole space of the trap scenario the best recall-free configuration errs at least
    alpha = 10 times more than the optimum (which needs recall)."""
    task = build_cascade_task("cascade_trap")
    results = enumerate_space(task)
    recall_free = [o for c, o in results if o.feasible and c["policy"] in ("single", "threshold", "patience")]
    best_free_error = min(o.metrics["error"] for o in recall_free)
    optimum_error = 1.0 - task.metadata.known_optimum
    assert best_free_error >= TRAP_ALPHA * optimum_error * (1 - 1e-9)
    assert task.metadata.extra["witness"]["policy"] in ("threshold_recall", "dynamic_index")


def test_crash_meanings():
    """unsupported: a member the target cannot run; oom: loaded memory over the device; timeout: the
    index policy's modelled preprocessing over the trial limit. Each charges a cost."""
    tree = build_cascade_task("cascade_tree")
    o = tree.evaluate({"members": "router>spec>expert", "policy": "single"})
    assert o.status is Status.CRASHED and o.error.kind is ErrorKind.UNSUPPORTED and o.cost_s > 0
    skip = build_cascade_task("cascade_skip")
    o = skip.evaluate({"members": "m1>m2>m3>m4>m5", "policy": "single"})
    assert o.status is Status.CRASHED and o.error.kind is ErrorKind.OOM and "MB" in o.error.message
    line = build_cascade_task("cascade_line")
    o = line.evaluate({"members": "m1>m2>m3>m4", "policy": "dynamic_index", "latency_weight": 0.01, "bins": 32})
    assert o.status is Status.TIMEOUT and o.error.kind is ErrorKind.TIMEOUT and o.cost_s >= 60
    o = line.evaluate({"members": "m1>m2>m3>m4", "policy": "dynamic_index", "latency_weight": 0.01, "bins": 16})
    assert o.ran
    # between the memory cap (1200 MB) and the device (1600 MB): infeasible, not a crash
    o = line.evaluate({"members": "m1>m2>m3>m4", "policy": "single"})
    assert o.status is Status.INFEASIBLE and o.violation["memory_mb"] > 0


def test_unused_thresholds_do_not_change_the_outcome():
    task = build_cascade_task("cascade_line")
    base = {"members": "m1>m3", "policy": "threshold", "tau_1": 0.8, "tau_2": TAU_GRID[0], "tau_3": TAU_GRID[0]}
    a = task.evaluate(base)
    b = task.evaluate({**base, "tau_2": 0.95, "tau_3": 0.9})
    assert a.metrics == b.metrics


def test_costs_differ_and_policies_are_the_families():
    task = build_cascade_task("cascade_overthink")
    assert task.metadata.family_param == "policy" and set(task.space["policy"].choices) == set(POLICIES)
    cheap = task.evaluate({"members": "m1", "policy": "single"})
    dear = task.evaluate({"members": "m1>m2>m3", "policy": "dynamic_index", "latency_weight": 0.01, "bins": 16})
    assert dear.cost_s > cheap.cost_s > 0


def test_reference_rows_are_labelled_and_ordered():
    for name in ("cascade_line", "cascade_overthink", "cascade_trap"):
        rows = {r["label"]: r for r in build_cascade_task(name).metadata.extra["reference_rows"]}
        assert {"prophet bound", "best single shared threshold", "best recall-free configuration",
                "T-Tamer index at the cap", "recall-free Markov-optimal at the cap"} <= set(rows)
        opt = build_cascade_task(name).metadata.known_optimum
        assert rows["prophet bound"]["accuracy"] >= opt
        assert rows["best single shared threshold"]["accuracy"] <= rows["best recall-free configuration"]["accuracy"]


def test_unknown_task_name_suggests_the_closest():
    with pytest.raises(KeyError, match="did you mean 'cascade_line'"):
        build_cascade_task("cascade_lin")
