"""Every built-in optimizer passes the conformance suite a third party would run."""

from __future__ import annotations

import pytest

from deploybench.plugins import create_plugin_manager
from deploybench.testing import check_task, iter_optimizer_checks, parametrize_with_checks
from deploybench.tasks.synthetic import CrashCliff, CrashyBranin, HierarchicalRosenbrock

BUILTIN = ("random", "tba", "tba_tpe", "tba_tpe_plus", "tpe", "cbo", "cbo_plus")
FAST: dict[str, dict] = {}  # every built-in is fast enough to check with its defaults
_PM = create_plugin_manager()


@parametrize_with_checks([(_PM.get_optimizer_class(name), FAST.get(name, {})) for name in BUILTIN], budget=12)
def test_builtin_optimizer_conformance(optimizer, check):
    check(optimizer)


def test_conformance_catches_a_broken_optimizer():
    from deploybench import Optimizer

    class Sloppy(Optimizer):
        name = "sloppy"

        def __init__(self, context, *, width=3):
            super().__init__(context)
            self.width = width * 2  # does not store the parameter unchanged

        def ask(self):
            import numpy as np

            return self.space.sample(np.random.default_rng())  # ignores the seed

        def tell(self, config, outcome):
            pass

    failures = []
    for check in iter_optimizer_checks(Sloppy, budget=8):
        try:
            check()
        except AssertionError as exc:
            failures.append(check.__name__)
    assert "check_same_seed_same_suggestions" in failures
    assert "check_params_recorded" in failures


@pytest.mark.parametrize("task, witness", [
    (CrashyBranin(), {"mode": "A", "x1": 3.141592653589793, "x2": 2.275, "resolution": 1}),
    (HierarchicalRosenbrock(), {"mode": "simple", "x1": 1.0, "x2": 1.0, "n_iters": 20}),
    (CrashCliff(), {"accelerator": "simd", "x": 0.85 - 0.04, "y": 0.5, "unroll": 3}),
])
def test_builtin_tasks_pass_check_task(task, witness):
    check_task(task, witness=witness)


def test_checks_that_do_not_apply_are_skipped_not_passed(pytester):
    """A plugin author's own test file: each check is its own item; the seed check of an optimizer
    that declares itself non-deterministic is reported as skipped, with the reason."""
    pytester.makepyfile(test_plugin="""
        from deploybench import Optimizer, OptimizerTags
        from deploybench.testing import parametrize_with_checks

        class Noisy(Optimizer):
            name = "noisy"
            tags = OptimizerTags(deterministic=False)

            def ask(self):
                if not hasattr(self, "rng_"):
                    self.rng_ = self.make_rng()
                return self.space.sample(self.rng_)

            def tell(self, config, outcome):
                pass

        @parametrize_with_checks([Noisy], budget=6)
        def test_conformance(optimizer, check):
            check(optimizer)
    """)
    result = pytester.runpytest_inprocess("-v", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=10, skipped=1)
    result.stdout.fnmatch_lines(["*::test_conformance?noisy-check_different_seeds_differ? SKIPPED*", "SKIPPED*check_different_seeds_differ does not "
                                 "apply: Noisy declares tags.deterministic = False*"])


FORGETFUL = """
    import numpy as np
    from deploybench import Optimizer, OptimizerTags

    class Forgetful(Optimizer):
        # suggests from an unseeded generator: no run can be repeated, so none can be resumed
        name = "forgetful"
        tags = OptimizerTags(deterministic=False)

        def ask(self):
            return self.space.sample(np.random.default_rng())

        def tell(self, config, outcome):
            pass
"""


def test_resume_goes_through_the_real_runner_and_known_failures_are_strict_xfails(pytester):
    """The resume check runs the runner on files: an optimizer that cannot replay its recorded trials
    fails it with the reason; listed in expected_failed_checks, the failure is an xfail (strict: a
    check that starts passing fails the run until it is taken off the list)."""
    pytester.makepyfile(forgetful_opt=FORGETFUL)
    pytester.makepyfile(test_plugin="""
        from deploybench.testing import parametrize_with_checks
        from forgetful_opt import Forgetful

        KNOWN = {"check_same_seed_same_suggestions": "suggestions do not depend on the seed",
                 "check_resumes_through_the_runner": "cannot replay its recorded trials"}

        @parametrize_with_checks([Forgetful], budget=6, expected_failed_checks=lambda cls: KNOWN)
        def test_conformance(optimizer, check):
            check(optimizer)
    """)
    result = pytester.runpytest_inprocess("-v", "-rxs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=8, skipped=1, xfailed=2)
    result.stdout.fnmatch_lines(["XFAIL *check_resumes_through_the_runner* - cannot replay its recorded trials"])


def test_check_optimizer_reports_expected_failures_and_refuses_stale_ones(pytester):
    import importlib
    import sys

    from deploybench.plugins import create_plugin_manager
    from deploybench.testing import check_optimizer

    pytester.makepyfile(forgetful_opt=FORGETFUL)
    sys.path.insert(0, str(pytester.path))
    try:
        forgetful = importlib.import_module("forgetful_opt").Forgetful
    finally:
        sys.path.remove(str(pytester.path))
        sys.modules.pop("forgetful_opt", None)
    with pytest.raises(AssertionError, match="--resume could not replay the 7 recorded trials"):
        check_optimizer(forgetful, expected_failed_checks={"check_same_seed_same_suggestions": "unseeded"})
    known = {"check_same_seed_same_suggestions": "unseeded", "check_resumes_through_the_runner": "no replay"}
    notes = check_optimizer(forgetful, expected_failed_checks=known)
    assert "check_resumes_through_the_runner: expected to fail (no replay)" in notes
    with pytest.raises(ValueError, match=r"unknown checks \['check_resume'\]"):
        check_optimizer(forgetful, expected_failed_checks={"check_resume": "typo"})
    random_search = create_plugin_manager().get_optimizer_class("random")
    with pytest.raises(AssertionError, match="passed but is listed in expected_failed_checks"):
        check_optimizer(random_search, expected_failed_checks={"check_resumes_through_the_runner": "stale"})


def test_an_optimizer_written_for_the_first_contract_still_runs_with_a_deprecation_warning():
    """Third-party optimizers that take (space, objective=..., ...) keep working through the one
    construction path, and their parameters stay their own."""
    from deploybench import Optimizer, OptimizerContext, build_optimizer
    from deploybench.tasks.synthetic import CrashyBranin

    class FirstContract(Optimizer):
        name = "first_contract"

        def __init__(self, space, *, objective, constraints=(), budget=25, seed=0, family_param=None, width=3):
            super().__init__(space, objective=objective, constraints=constraints, budget=budget, seed=seed,
                             family_param=family_param)
            self.width = width

        def ask(self):
            return self.space.sample(self.make_rng())

        def tell(self, config, outcome):
            pass

    task = CrashyBranin()
    with pytest.warns(DeprecationWarning, match="OptimizerContext"):
        opt = build_optimizer(FirstContract, OptimizerContext.for_task(task, budget=7, seed=4), {"width": 5})
    assert (opt.budget, opt.seed, opt.width) == (7, 4, 5)
    assert opt.constraints == tuple(task.constraints)
    assert opt.get_params() == {"width": 5}
    task.space.validate(opt.ask())


def test_the_context_hides_fidelity_levels_from_optimizers_without_the_tag():
    from deploybench import OptimizerContext, build_optimizer
    from deploybench.tasks.synthetic_mf import CrashyBraninMF
    from deploybench_optimizers.random_search import RandomSearch
    from deploybench_optimizers.scout import Scout

    task = CrashyBraninMF()
    context = OptimizerContext.for_task(task, seed=1)
    assert len(context.fidelities) > 1 and context.budget_seconds == task.default_budget_seconds
    plain = build_optimizer(RandomSearch, context)
    assert [f.name for f in plain.fidelities] == ["full"] and plain.budget_seconds is None
    scout = build_optimizer(Scout, context)
    assert scout.fidelities == context.fidelities and scout.budget_seconds == task.default_budget_seconds
    with pytest.raises(TypeError, match="OptimizerContext"):
        RandomSearch(task.space)  # noqa: the first contract's keywords are required there
