"""The exact synthetic cascade instances: forward recursion, the T-Tamer index policy, the recall trap."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from deploybench.tasks.cascade_exact import (TRAP_ALPHA, exact_evaluate, exact_index_model, get_instance, instances,
                                             monte_carlo, prophet, simulate)
from deploybench.tasks.cascade_policies import (IndexPolicy, MarkovNoRecallPolicy, ObservedRecords, Patience,
                                                Threshold, lam_from_weight, replay, solve_index, solve_no_recall)

N_MC = 60_000


def _policy(kind: str, inst, chain: str):
    if kind == "threshold":
        return Threshold((0.8, 0.85, 0.9, 0.9))
    if kind == "threshold_recall":
        return Threshold((0.75, 0.8, 0.9, 0.9), recall=True)
    if kind == "patience":
        return Patience(1)
    if kind == "index":
        return IndexPolicy.fit(exact_index_model(inst, 0, chain, 16), lam_from_weight(0.03))
    if kind == "index_coarse":
        return IndexPolicy.fit(exact_index_model(inst, 0, chain, 5), lam_from_weight(0.03))
    raise ValueError(kind)


@pytest.mark.parametrize("name, chain, kind, seed", [
    ("line", "m1>m2>m3>m4", "threshold", 1),
    ("line", "m1>m3>m4", "patience", 2),
    ("overthink", "m1>m2>m3>m4", "threshold_recall", 3),
    ("overthink", "m1>m2>m3>m4", "index", 4),
    ("skip", "m1>m3>m4>m5", "index_coarse", 5),
    ("skip", "m1>m2>m3>m4>m5", "patience", 6),
    ("tree", "router>spec>expert", "threshold_recall", 7),
    ("trap", "m1>m2", "threshold_recall", 8),
])
def test_exact_recursion_matches_monte_carlo(name, chain, kind, seed):
    """Accuracy and mean latency of the forward recursion lie within 3 standard errors of a simulation
    of the same policy on uncensored per-sample records drawn from the model (branch 0)."""
    inst = get_instance(name)
    policy = _policy(kind, inst, chain)
    one_branch = dataclasses.replace(inst, branches=(dataclasses.replace(inst.branches[0], weight=1.0),),
                                     chains={chain: inst.chains[chain][:1]})
    exact = exact_evaluate(one_branch, chain, policy)
    correct, latency = simulate(policy, inst, 0, chain, N_MC, seed)
    se_acc = max(correct.std(), 1e-3) / np.sqrt(N_MC)
    se_lat = max(latency.std(), 1e-3) / np.sqrt(N_MC)
    assert abs(exact.accuracy - correct.mean()) <= 3 * se_acc, (exact.accuracy, correct.mean(), se_acc)
    assert abs(exact.mean_latency - latency.mean()) <= 3 * se_lat, (exact.mean_latency, latency.mean(), se_lat)


@pytest.mark.parametrize("name", ["line", "overthink", "skip"])
@pytest.mark.parametrize("weight", [0.01, 0.1, 1.0])
def test_index_dp_value_is_the_exact_value_of_its_policy(name, weight):
    """With one bin per level the Markov model is the truth, so the backward recursion's value equals
    the forward recursion's evaluation of the policy it defines, and it is no worse than the
    recall-free Markov-optimal policy, which is no worse than any single shared threshold."""
    inst = get_instance(name)
    chain = inst.full_chain
    model = exact_index_model(inst, 0, chain, 16)
    lam = lam_from_weight(weight)
    total = sum(inst.stages[m].latency_ms for m in inst.members(chain))

    def objective(policy) -> float:
        r = exact_evaluate(inst, chain, policy)
        return lam * (1 - r.accuracy) + (1 - lam) * r.mean_latency / total

    sol = solve_index(model, lam)
    assert objective(IndexPolicy(model, sol)) == pytest.approx(sol.value, abs=1e-12)
    stops, no_recall_value = solve_no_recall(model, lam)
    assert objective(MarkovNoRecallPolicy(model, stops)) == pytest.approx(no_recall_value, abs=1e-12)
    assert sol.value <= no_recall_value + 1e-12
    best_threshold = min(objective(Threshold((t,) * 4)) for t in np.linspace(0.3, 1.0, 15))
    assert no_recall_value <= best_threshold + 1e-12


@pytest.mark.parametrize("name", ["line", "overthink", "skip", "tree"])
def test_index_stop_sets_have_threshold_structure(name):
    """At every position and last bin the stop set is a down-set in the best loss so far: stopping at
    a best loss X implies stopping at every smaller X (the dynamic index of T-Tamer's theorem)."""
    inst = get_instance(name)
    for weight in (0.003, 0.03, 0.3):
        for bins in (4, 16):
            sol = solve_index(exact_index_model(inst, 0, inst.full_chain, bins), lam_from_weight(weight))
            for table in sol.stop:
                # down-set along the grid axis: once False, never True again for larger losses
                as_int = table.astype(int)
                assert np.all(np.diff(as_int, axis=0) <= 0), f"{name}: a stop set is not a down-set"
            idx = sol.index(0)
            assert idx.shape == (sol.stop[0].shape[1],)


def test_overthink_recall_beats_no_recall_and_line_gap_is_small():
    """Recall matters where the deepest member over-thinks, much less on the benign line."""
    gaps = {}
    for name in ("line", "overthink"):
        inst = get_instance(name)
        model = exact_index_model(inst, 0, inst.full_chain, 16)
        lam = lam_from_weight(0.03)
        gaps[name] = solve_no_recall(model, lam)[1] - solve_index(model, lam).value
    assert gaps["overthink"] > 2 * gaps["line"] > 0


def test_trap_no_recall_is_alpha_times_worse():
    """The necessity-of-recall construction: every recall-free policy errs 1/alpha^2, serving the
    better member errs 1/alpha^3."""
    inst = get_instance("trap")
    errors = []
    for tau in np.linspace(0.0, 1.0, 21):
        errors.append(1 - exact_evaluate(inst, "m1>m2", Threshold((tau,))).accuracy)
    for k in (1, 2):
        errors.append(1 - exact_evaluate(inst, "m1>m2", Patience(k)).accuracy)
    for chain in ("m1", "m2"):
        errors.append(1 - exact_evaluate(inst, chain, Threshold(()), single=True).accuracy)
    with_recall = 1 - exact_evaluate(inst, "m1>m2", Threshold((1.0,), recall=True)).accuracy
    assert with_recall == pytest.approx(TRAP_ALPHA ** -3)
    assert min(errors) == pytest.approx(TRAP_ALPHA ** -2)
    assert min(errors) >= TRAP_ALPHA * with_recall * (1 - 1e-9)


def test_prophet_bounds_every_policy():
    for name, inst in instances().items():
        chain = inst.full_chain
        bound, _ = prophet(inst, chain)
        for policy in (Threshold((0.9,) * 4, recall=True), Patience(1), Threshold((0.5,) * 4)):
            assert exact_evaluate(inst, chain, policy).accuracy <= bound + 1e-12


def test_latency_distribution_is_a_distribution():
    inst = get_instance("tree")
    r = exact_evaluate(inst, "router>spec>expert_a", Threshold((0.8, 0.9), recall=True))
    assert r.latency_probs.sum() == pytest.approx(1.0)
    assert min(r.latency_values) <= r.latency_quantile(0.95) <= max(r.latency_values)
    assert r.latency_quantile(1.0) == max(v for v, p in zip(r.latency_values, r.latency_probs) if p > 0)


def test_policies_only_see_the_masked_view():
    """Policies read an ObservedRecords view: proxy losses and predictions, nothing else; replay
    refuses anything else, and its decisions do not change when the hidden correctness does."""
    assert {f.name for f in dataclasses.fields(ObservedRecords)} == {"u", "pred"}
    inst = get_instance("overthink")
    observed, correct = monte_carlo(inst, 0, inst.full_chain, 2000, 0)
    policy = _policy("index", inst, inst.full_chain)
    with pytest.raises(TypeError, match="ObservedRecords"):
        replay(policy, {"u": observed.u, "pred": observed.pred, "correct": correct})
    first = replay(policy, observed)
    again = replay(policy, ObservedRecords(u=observed.u.copy(), pred=observed.pred.copy()))
    assert np.array_equal(first.served, again.served) and np.array_equal(first.consulted, again.consulted)
    assert first.consulted.min() >= 1 and (first.served < first.consulted).all()
