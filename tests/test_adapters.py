"""The optimizer-library adapters (plugins/smac-adapter, plugins/nevergrad-adapter) as installed plugins.

Each adapter is a separate distribution; a test skips, saying how to install it, when it is absent.
Runtime: about 30 s with both installed (the CLI run and SMAC's acquisition search dominate).
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from deploybench.plugins import create_plugin_manager
from deploybench.results import iter_case_files, read_case_file

# optimizer name, adapter package, its distribution folder, parameters that keep the check fast
ADAPTERS = [
    ("smac", "deploybench_smac", "plugins/smac-adapter", {"challengers": 200, "local_search_iterations": 1}),
    ("nevergrad", "deploybench_nevergrad", "plugins/nevergrad-adapter", {}),
    ("optuna_gp", "deploybench_optuna", "plugins/optuna-adapter", {"n_startup_trials": 4}),
    ("optuna_cmaes", "deploybench_optuna", "plugins/optuna-adapter", {}),
]


def _require(package: str, folder: str) -> None:
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed (pip install ./{folder})")


@pytest.mark.slow
@pytest.mark.parametrize("name, package, folder, params", ADAPTERS, ids=[a[0] for a in ADAPTERS])
def test_adapter_is_registered_and_passes_check_optimizer(name, package, folder, params):
    _require(package, folder)
    from deploybench.testing import check_optimizer

    cls = create_plugin_manager().get_optimizer_class(name)
    assert cls.__module__.startswith(package)
    check_optimizer(cls, params, budget=10)


@pytest.mark.slow
def test_cli_runs_both_adapters_on_crashy_branin(cli, tmp_path):
    for _, package, folder, _ in ADAPTERS:
        _require(package, folder)
    proc = cli("run", "-o", "smac", "-o", "nevergrad", "-t", "crashy_branin", "--seeds", "2", "--budget", "15",
                   "--out", str(tmp_path), timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cases = [read_case_file(p) for p in iter_case_files(tmp_path)]
    assert sorted((c.header["optimizer"], c.header["seed"]) for c in cases) == [
        ("nevergrad", 0), ("nevergrad", 1), ("smac", 0), ("smac", 1)]
    for case in cases:
        assert case.completed and len(case.trials) == 15, case.path
        statuses = {t["outcome"]["status"] for t in case.trials}
        assert "ok" in statuses  # each found something feasible in 15 trials
    params = {c.header["optimizer"]: c.header["optimizer_params"] for c in cases}
    assert params["nevergrad"]["algorithm"] == "NGOpt" and params["smac"]["n_initial"] is None
    json.dumps(params)
