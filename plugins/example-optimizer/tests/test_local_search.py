"""The plugin's own tests: DeployBench's conformance suite, as any third party would run it."""

import pytest

from deploybench.testing import check_optimizer, iter_optimizer_checks
from deploybench_example.local_search import LocalSearch


def test_passes_the_deploybench_conformance_suite():
    check_optimizer(LocalSearch)


@pytest.mark.parametrize("check", list(iter_optimizer_checks(LocalSearch, {"step": 0.3})), ids=lambda c: c.__name__)
def test_each_check_with_custom_parameters(check):
    check()
