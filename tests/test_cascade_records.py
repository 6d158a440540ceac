"""Recorded cascade instances: fixed disjoint splits, uncensored records, masked policies, regeneration."""

from __future__ import annotations

import numpy as np
import pytest

from deploybench.tasks import cascade_records
from deploybench.tasks.cascade import build_cascade_task
from deploybench.tasks.cascade_policies import ObservedRecords, Threshold
from deploybench.tasks.cascade_records import SPLITS, RecordSource, load_records
from deploybench.tasks.cascade_scenarios import RECORDS


@pytest.mark.parametrize("name", list(RECORDS))
def test_splits_are_fixed_disjoint_and_cover_every_sample(name):
    r = load_records(name)
    ids = {s: set(r.ids(s).tolist()) for s in SPLITS}
    assert all(ids[s] for s in SPLITS)
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1:]:
            assert not ids[a] & ids[b], f"{name}: {a} and {b} share samples"
    assert sum(len(v) for v in ids.values()) == r.conf.shape[1]
    # uncensored: every member has an output for every sample
    assert r.conf.shape == r.pred.shape == r.correct.shape == (len(r.members), r.conf.shape[1])
    assert np.all((r.conf > 0) & (r.conf <= 1))
    assert np.all(r.head_ms > 0) and np.all(r.block_ms >= 0)


def test_sklearn_members_are_ordered_by_measured_cost():
    r = load_records("sklearn")
    assert list(r.head_ms) == sorted(r.head_ms)


def test_policies_on_records_see_only_the_masked_view(monkeypatch):
    """Every policy call during a recorded evaluation receives proxy losses only; the spy sees no
    correctness, and the view handed to replay is an ObservedRecords."""
    seen = []
    original = cascade_records.replay

    def spy(policy, observed):
        seen.append(observed)
        return original(policy, observed)

    monkeypatch.setattr(cascade_records, "replay", spy)
    source = RecordSource(load_records("digits_ee"))
    for policy, params in [("threshold", {"tau_1": 0.9}), ("threshold_recall", {"tau_1": 0.9}),
                           ("patience", {"patience": 1}), ("dynamic_index", {"latency_weight": 0.05, "bins": 8})]:
        ev = source.evaluate("exit1>exit2", policy, params)
        assert 0 < ev.accuracy <= 1 and 0 < ev.extra["test_accuracy"] <= 1
    assert seen and all(type(v) is ObservedRecords for v in seen)


def test_test_split_is_reported_apart_from_the_objective():
    task = build_cascade_task("cascade_synth_ee")
    o = task.evaluate({"members": "exit1>exit4", "policy": "threshold_recall", "tau_1": 0.9, "tau_2": 0.5,
                       "tau_3": 0.5})
    r = load_records("synth_ee")
    assert o.objective == pytest.approx(o.metrics["accuracy"])
    assert "test_accuracy" in o.metrics and o.metrics["test_accuracy"] != o.metrics["accuracy"]
    val = r.ids("val")
    # the objective is computed on validation samples: recompute it directly
    view = r.observed([0, 3], val)
    from deploybench.tasks.cascade_policies import replay
    res = replay(Threshold((0.9,), recall=True), view)
    served = np.array([0, 3])[res.served]
    assert o.objective == pytest.approx(r.correct[served, val].mean())


@pytest.mark.slow  # trains the early-exit networks again (about 17 s)
def test_early_exit_records_regenerate_from_the_seed():
    """The stored digits records (predictions and confidences) regenerate from the seed; the latency
    columns are measured and are not compared."""
    from sklearn.datasets import load_digits

    d = load_digits()
    stored = load_records("digits_ee")
    fresh = cascade_records.record_early_exit("digits_ee", d.data, d.target, width=96, blocks=4, epochs=40, seed=17,
                                              description="")
    assert np.array_equal(fresh.split, stored.split)
    assert np.array_equal(fresh.pred, stored.pred)
    assert np.allclose(fresh.conf, stored.conf, atol=1e-5)


def test_held_out_test_column_scores_the_validation_choice_on_test():
    from types import SimpleNamespace

    from deploybench.plugins import create_plugin_manager
    from deploybench.tasks.cascade_scenarios import HeldOutTestScore

    metric = HeldOutTestScore()
    assert any(isinstance(m, HeldOutTestScore) for m in create_plugin_manager().leaderboard_metrics())
    case = lambda m, metrics: SimpleNamespace(objective_metric=m, best_metrics=metrics)
    cases = [case("accuracy", {"accuracy": 0.9, "test_accuracy": 0.8}),
             case("accuracy", {"accuracy": 0.95, "test_accuracy": 0.9}),
             case("accuracy", None)]  # a seed that found nothing
    assert metric.compute(cases) == pytest.approx(0.85)
    assert metric.compute([case("mean_latency_ms", {"mean_latency_ms": 2.0, "test_mean_latency_ms": 2.5})]) == 2.5
    assert metric.compute([case("neg_branin", {"neg_branin": -1.0, "g1": 0.0})]) is None


def test_markov_violation_is_small_on_a_markov_chain_and_large_off_it():
    from deploybench.tasks.cascade_exact import get_instance, monte_carlo
    from deploybench.tasks.cascade_records import markov_violation_bits

    inst = get_instance("line")
    observed, _ = monte_carlo(inst, 0, inst.full_chain, 40_000, 3)
    markov = markov_violation_bits(observed.u, bins=4)
    rng = np.random.default_rng(0)
    a = rng.random(40_000)
    skip_dependent = np.vstack([a, rng.random(40_000), a])  # the third depends on the first, not the second
    assert max(markov) < 0.02 and markov_violation_bits(skip_dependent, bins=4)[0] > 1.0
    task = build_cascade_task("cascade_synth_ee")
    assert set(task.metadata.extra["markov_violation_bits"]) == {"exit1|exit2|exit3", "exit2|exit3|exit4"}


@pytest.mark.parametrize("name", list(RECORDS))
def test_index_policy_fitted_on_records_has_threshold_stop_sets(name):
    from deploybench.tasks.cascade_policies import fit_index_model, lam_from_weight, solve_index

    r = load_records(name)
    cal = r.ids("calib")
    members = list(range(len(r.members)))
    for bins in (4, 16):
        model = fit_index_model(1.0 - r.conf[np.ix_(members, cal)], r.correct[np.ix_(members, cal)],
                                np.ones(len(members)) / len(members), bins)
        for weight in (0.01, 0.3):
            for table in solve_index(model, lam_from_weight(weight)).stop:
                assert np.all(np.diff(table.astype(int), axis=0) <= 0)


def test_held_out_test_column_appears_only_on_recorded_cascade_tables(tmp_path, cli):
    from deploybench.plugins import create_plugin_manager
    from deploybench.scoring import build_leaderboard

    out = tmp_path / "r"
    proc = cli("run", "-o", "random", "-t", "cascade_digits_ee", "-t", "crash_cliff", "--seeds", "2", "--budget", "6",
               "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    board = build_leaderboard([out], extra_metrics=create_plugin_manager().leaderboard_metrics())
    keys = {g.key.task_label: [getattr(m, "key", None) for m in g.columns] for g in board.groups}
    assert "held_out_test" in keys["cascade_digits_ee"] and "held_out_test" not in keys["crash_cliff"]
    row = next(g for g in board.groups if g.key.task_label == "cascade_digits_ee").rows[0]
    assert 0 < row.values["held_out_test"] <= 1
