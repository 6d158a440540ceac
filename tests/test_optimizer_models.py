"""The model-based optimizers' building blocks: candidate codec, NumPy GP, log EI, rounding, cbo_plus."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import approx_fprime
from scipy.stats import norm

from deploybench import Categorical, EvalContext, OptimizerContext
from deploybench.tasks.synthetic import CrashyBranin, HierarchicalRosenbrock
from deploybench.testing import toy_task
from deploybench_optimizers.acquisition import log_expected_improvement, rounded
from deploybench_optimizers.cbo_plus import ConstrainedBOPlus
from deploybench_optimizers.codec import MixedCodec
from deploybench_optimizers.gp import GaussianProcess
from deploybench_optimizers.trust_region import TrustRegion
from test_optimizers import GridTask

SPACES = {"toy": toy_task().space, "rosenbrock": HierarchicalRosenbrock().space, "grid": GridTask().space,
          "branin": CrashyBranin().space}


@pytest.mark.parametrize("name", sorted(SPACES))
def test_codec_matrices_are_valid_configs_with_the_shared_encoding(name):
    space = SPACES[name]
    codec = MixedCodec(space)
    rng = np.random.default_rng(0)
    raw = codec.sample(200, rng)
    moved = codec.neighbours(raw[:20], 200, (0.01, 0.1, 0.3), rng)
    for block in (raw, moved):
        configs = [codec.decode(row) for row in block]
        for config in configs:
            space.validate(config)
        np.testing.assert_allclose(codec.encode(block), space.encode_many(configs), atol=1e-12)
    # a local move changes the config it started from
    starts = [codec.decode(row) for row in raw[:20]]
    changed = [space.key(codec.decode(row)) != space.key(starts[i % 20]) for i, row in enumerate(moved)]
    assert all(changed)


@pytest.mark.parametrize("name", sorted(SPACES))
def test_codec_box_stays_within_half_a_side_of_its_centre_on_the_grid(name):
    space = SPACES[name]
    codec = MixedCodec(space)
    rng = np.random.default_rng(3)
    centre = codec.sample(1, rng)[0]
    rows = codec.box(centre, 400, 0.2, rng, p_categorical=0.25)
    for row in rows:
        space.validate(codec.decode(row))
    categorical = np.array([isinstance(p, Categorical) for p in codec.params])
    numeric = ~categorical
    # numerics within half a side, or one grid step where the grid is coarser, plus the snap to the grid
    half = np.array([max(0.1, codec.grid_step(p)) + codec.grid_step(p) / 2 + 1e-12 for p in codec.params])
    assert np.all(np.abs(rows[:, numeric] - centre[numeric]) <= half[numeric])
    assert np.all(np.ptp(rows[:, numeric], axis=0) > 0)  # it does sample the box, not only the centre
    if categorical.any():
        changed = (rows[:, categorical] != centre[categorical]).mean()
        assert 0.15 < changed < 0.35


def test_trust_region_grows_on_successes_shrinks_on_failures_and_restarts():
    region = TrustRegion(initial=0.8, minimum=0.1, success_tolerance=2, failure_tolerance=3)
    region.start(-10.0)
    region.update(-5.0)
    region.update(-1.0)
    assert region.length == 1.0 and region.best == -1.0  # doubled, capped at the whole cube
    for value in (-1.0005, None, -3.0):  # a gain below 0.1 % of |best| is no success
        region.update(value)
    assert region.length == 0.5
    for _ in range(9):
        region.update(None)
    assert region.length == 0.8 and region.restarts == 1  # 0.5 → 0.25 → 0.125 → below 0.1: restart
    with pytest.raises(ValueError, match="minimum <= initial"):
        TrustRegion(initial=0.05, minimum=0.1)
    task = HierarchicalRosenbrock()
    with pytest.raises(ValueError, match="tr_global_every must be >= 0"):
        ConstrainedBOPlus(OptimizerContext(task.space, objective=task.objective, constraints=task.constraints),
                          tr_global_every=-1)


def test_cbo_plus_searches_its_trust_region_between_global_steps():
    task = HierarchicalRosenbrock()
    opt = ConstrainedBOPlus(OptimizerContext(task.space, objective=task.objective,
                                             constraints=task.constraints, budget=30, seed=0),
                            tr_length=0.1, tr_success=99, tr_failure=99, tr_global_every=3, n_local=0, refine_rounds=0)
    codec = MixedCodec(task.space)
    local = []
    for i in range(18):
        incumbent = opt._incumbent()
        c = opt.ask()
        if i >= opt._n_initial() and incumbent is not None and incumbent["mode"] == c["mode"]:
            step = i - opt._n_initial()
            gap = np.abs(codec.from_configs([c])[0] - codec.from_configs([incumbent])[0])
            numeric = [j for j, p in enumerate(codec.params) if not isinstance(p, Categorical) and p.name in c]
            bound = np.array([max(0.05, codec.grid_step(p)) * 1.5 + 1e-12 for p in codec.params])
            local.append((step % 3 == 2, bool(np.all(gap[numeric] <= bound[numeric]))))
        opt.tell(c, task.evaluate(c, EvalContext(seed=0, trial=i)))
    assert opt._region.length == 0.1
    assert local and all(inside for is_global, inside in local if not is_global)
    assert not all(inside for is_global, inside in local if is_global)


def test_codec_round_trips_measured_configs_and_keys_dedupe():
    space = SPACES["grid"]
    codec = MixedCodec(space)
    configs = list(space.grid())[:50]
    raw = codec.from_configs(configs)
    assert [codec.decode(row) for row in raw] == configs
    keys = codec.keys(np.vstack([raw, raw]))
    assert len(set(keys)) == len(configs)


def test_codec_design_is_stratified_over_categories():
    space = SPACES["branin"]
    codec = MixedCodec(space)
    from scipy.stats import qmc

    raw = codec.from_unit_design(qmc.LatinHypercube(d=len(space), seed=1).random(6))
    modes = [codec.decode(row)["mode"] for row in raw]
    assert sorted(modes) == ["A", "A", "B", "B", "C", "C"]


def test_gp_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    X = rng.random((15, 3))
    y = np.sin(4 * X[:, 0]) + X[:, 1]
    y = (y - y.mean()) / y.std()
    gp = GaussianProcess()
    theta = np.array([-0.5, 0.2, 1.0, 0.1, -4.0])
    value, grad = gp._neg_log_posterior(theta, X, y)
    numeric = approx_fprime(theta, lambda t: gp._neg_log_posterior(t, X, y)[0], 1e-6)
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-4)


def test_gp_extends_its_cholesky_factor_exactly_and_predicts_well():
    rng = np.random.default_rng(2)
    f = lambda X: np.sin(3 * X[:, 0]) + X[:, 1] ** 2  # noqa: E731
    X = rng.random((30, 2))
    gp = GaussianProcess(refit_every=100, always_refit_below=0)
    gp.fit(X[:29], f(X[:29]))
    gp.fit(X, f(X))  # hyper-parameters kept: the factor is extended by one row
    np.testing.assert_allclose(gp._L, gp._factor(X), atol=1e-9)
    Xt = rng.random((50, 2))
    mean, sd = gp.predict(Xt)
    assert np.sqrt(np.mean((mean - f(Xt)) ** 2)) < 0.1
    assert np.all(sd > 0)
    _, sd_train = gp.predict(X)
    assert sd_train.max() < sd.max()


def test_log_expected_improvement_matches_the_closed_form_and_never_underflows():
    z = np.linspace(-4.9, 6.0, 30)
    exact = np.log(norm.pdf(z) + z * norm.cdf(z))
    np.testing.assert_allclose(log_expected_improvement(z, np.ones_like(z)), exact, rtol=1e-9)
    far = log_expected_improvement(np.array([-10.0, -40.0, -200.0]), np.ones(3))
    assert np.all(np.isfinite(far)) and far[0] > far[1] > far[2]
    assert far[1] == pytest.approx(-0.5 * 40**2 - 0.5 * math.log(2 * math.pi) - 2 * math.log(40), abs=1e-2)
    np.testing.assert_allclose(log_expected_improvement(np.array([2.0]), np.array([3.0])),
                               np.log(3.0) + np.log(norm.pdf(2 / 3) + 2 / 3 * norm.cdf(2 / 3)), rtol=1e-9)


def test_rounding_before_argmax_removes_last_bit_differences():
    scores = np.array([-3.2, 1.0000000000001, 1.0, -np.inf, np.nan])
    r = rounded(scores)
    assert r[1] == r[2] and r[3] == -np.inf and r[4] == -np.inf
    assert int(np.lexsort((np.arange(5), -r))[0]) == 1  # a tie goes to the lowest index


def test_cbo_plus_starts_with_a_latin_hypercube_and_does_not_repeat_itself():
    task = CrashyBranin()
    opt = ConstrainedBOPlus(OptimizerContext(task.space, objective=task.objective,
                                             constraints=task.constraints, budget=30, seed=0))
    configs = []
    for i in range(12):
        c = opt.ask()
        configs.append(c)
        opt.tell(c, task.evaluate(c, EvalContext(seed=0, trial=i)))
    first = configs[:6]  # initial_design_size(30) == 6: every mode twice, every resolution third once
    assert sorted(c["mode"] for c in first) == ["A", "A", "B", "B", "C", "C"]
    assert len({task.space.key(c) for c in configs}) == len(configs)


@pytest.mark.slow
def test_cbo_plus_learns_to_avoid_crashes_and_violations():
    task = CrashyBranin()
    late = []
    for seed in range(3):
        opt = ConstrainedBOPlus(OptimizerContext(task.space, objective=task.objective,
                                                 constraints=task.constraints, budget=30, seed=seed))
        for i in range(30):
            c = opt.ask()
            o = task.evaluate(c, EvalContext(seed=seed, trial=i))
            opt.tell(c, o)
            if i >= 15:
                late.append(o.feasible)
    # uniform sampling is feasible a third of the time (about 21 % crash, 45 % infeasible)
    assert np.mean(late) > 0.75


def test_shared_initial_design_is_a_fifth_of_the_budget_but_never_the_whole_of_a_seconds_run():
    from deploybench_optimizers.design import MAX_INITIAL_DESIGN, initial_design_size
    from deploybench_optimizers.tpe import TPE

    assert [initial_design_size(b) for b in (5, 15, 30, 50)] == [3, 3, 6, 10]
    assert initial_design_size(400) == MAX_INITIAL_DESIGN == 10  # a trial cap under a seconds budget
    task = CrashyBranin()
    opt = TPE(OptimizerContext(task.space, objective=task.objective, constraints=task.constraints, budget=400,
                               seed=0))
    # TPE leaves random sampling after 10 trials; with the uncapped rule it would sample at random for 80
    assert opt._study.sampler._n_startup_trials == 10


@pytest.mark.parametrize("scope", ["feasible", "crash"])
def test_cbo_plus_threshold_scope_decides_whether_probable_violations_are_candidates(scope, monkeypatch):
    task = CrashyBranin()
    opt = ConstrainedBOPlus(OptimizerContext(task.space, objective=task.objective,
                                             constraints=task.constraints, budget=30, seed=0), threshold_scope=scope)
    for i in range(10):
        c = opt.ask()
        opt.tell(c, task.evaluate(c, EvalContext(seed=0, trial=i)))
    raw, active = opt._candidates()
    ran = [(c, o) for c, o in opt._history if o.ran and o.objective is not None and not o.early_stopped]
    feasible_mask = np.array([o.feasible for _, o in ran], dtype=bool)
    assert feasible_mask.any()
    opt._targets = opt._objective_targets(ran)
    opt._objective_gp.fit(task.space.encode_many([c for c, _ in ran]), opt._targets)
    half = len(raw) // 2
    p_constraints = np.where(np.arange(len(raw)) < half, 0.3, 0.99)  # runs surely; first half probably violates
    monkeypatch.setattr(opt._feasibility, "log_p_no_crash", lambda history, Xc: np.zeros(len(Xc)))
    monkeypatch.setattr(opt._feasibility, "log_p_constraints", lambda history, Xc: np.log(p_constraints[:len(Xc)]))
    acq = opt._acquisition(raw, active, ran, feasible_mask)
    assert np.isfinite(acq[half:]).all()
    if scope == "feasible":
        assert np.isneginf(acq[:half]).all()  # below the 0.85 threshold on P(feasible)
    else:
        assert np.isfinite(acq[:half]).all()  # only P(no crash) is gated; P(feasible) still weighs them down
        assert np.median(acq[:half]) < np.median(acq[half:])
    with pytest.raises(ValueError, match="threshold_scope must be"):
        ConstrainedBOPlus(OptimizerContext(task.space, objective=task.objective, constraints=task.constraints),
                          threshold_scope="all")
