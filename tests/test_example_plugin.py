"""The example third-party package, installed from plugins/example-optimizer by the README's test
command, is found through its entry point and runs through `deploybench run` and `leaderboard`."""

from __future__ import annotations

import importlib.metadata as md

import pytest

try:
    md.distribution("deploybench-example-optimizer")
except md.PackageNotFoundError:  # pragma: no cover - the README test command installs it
    pytest.skip("deploybench-example-optimizer is not installed: pip install ./plugins/example-optimizer "
                "(the README test command and .ci/run do)", allow_module_level=True)


def test_example_plugin_is_installed_as_a_distribution():
    dist = md.distribution("deploybench-example-optimizer")
    eps = [ep for ep in dist.entry_points if ep.group == "deploybench"]
    assert [ep.name for ep in eps] == ["example_local_search"]


def test_example_plugin_runs_and_is_scored(cli, tmp_path):
    out = tmp_path / "res"
    proc = cli("run", "-o", "example_local_search", "-o", "random", "-t", "crashy_branin", "--seeds", "2",
                   "--budget", "10", "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "crashy_branin[analytic]::example_local_search[seed=1]" in proc.stdout
    assert (out / "crashy_branin/example_local_search/seed_1.jsonl").exists()
    plugins = cli("plugins")
    assert "example_local_search" in plugins.stdout and "deploybench-example-optimizer" in plugins.stdout
    board = cli("leaderboard", str(out), "--format", "csv")
    assert board.returncode == 0, board.stderr
    assert "example_local_search" in board.stdout and "random" in board.stdout
