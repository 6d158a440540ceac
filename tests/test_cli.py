"""End-to-end CLI tests: in-process through main() (the `cli` fixture), in a subprocess where signals are the point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import cli_env

from deploybench.results import read_case_file


def _cases(out: Path) -> dict[str, object]:
    return {str(p.relative_to(out)): read_case_file(p) for p in sorted(out.rglob("seed_*.jsonl"))}


def test_run_two_tasks_three_seeds(cli, tmp_path):
    out = tmp_path / "res"
    proc = cli("run", "-o", "random", "-t", "crashy_branin", "-t", "crash_cliff", "--seeds", "3", "--budget", "12",
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "deploybench session starts" in proc.stdout and "collected 6 cases" in proc.stdout
    assert "6 cases completed" in proc.stdout
    assert "crashy_branin[analytic]::random[seed=2]" in proc.stdout
    files = _cases(out)
    assert sorted(files) == sorted(f"{t}/random/seed_{s}.jsonl" for t in ("crashy_branin", "crash_cliff") for s in range(3))
    for case in files.values():
        assert case.completed and len(case.trials) == 12 and not case.problems
        assert case.header["task_signature"] and case.header["optimizer_params"] == {"avoid_duplicates": True, "max_retries": 100}
        costs = [t["outcome"]["cost_s"] for t in case.trials]
        assert all(c > 0 for c in costs)
        assert abs(case.trials[-1]["cum_cost_s"] - sum(costs)) < 1e-9
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["exit_status"] == 0 and len(manifest["cases"]) == 6
    assert "crashy_branin" in manifest["tasks"] and manifest["versions"]["deploybench"]
    # the same seed gives the same trials
    again = tmp_path / "again"
    assert cli("run", "-o", "random", "-t", "crashy_branin", "--seed", "1", "--budget", "12", "--out", str(again)).returncode == 0
    first = [t["config"] for t in files["crashy_branin/random/seed_1.jsonl"].trials]
    second = [t["config"] for t in read_case_file(again / "crashy_branin/random/seed_1.jsonl").trials]
    assert first == second


def test_unknown_names_exit_2_with_known_names_and_closest(cli, tmp_path):
    proc = cli("run", "-o", "randm", "-t", "crashy_branin", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert "unknown optimizer 'randm'" in proc.stderr and "random" in proc.stderr and "did you mean 'random'" in proc.stderr
    proc = cli("run", "-o", "random", "-t", "crashy_brainin", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert "unknown task 'crashy_brainin'" in proc.stderr and "did you mean 'crashy_branin'" in proc.stderr
    assert "hierarchical_rosenbrock" in proc.stderr
    proc = cli("run", "-o", "random", "-t", "crashy_branin", "--budget", "0", "--out", str(tmp_path))
    assert proc.returncode == 2 and "--budget must be a positive" in proc.stderr
    proc = cli("run", "--seeds", "x")
    assert proc.returncode == 2 and "--seeds takes a number of seeds" in proc.stderr
    proc = cli("frobnicate")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


@pytest.mark.slow
def test_keyword_selection_and_collect_only(cli, tmp_path):
    proc = cli("run", "-o", "random", "--seeds", "3", "-k", "branin and not mf and not seed=1", "--collect-only")
    assert proc.returncode == 0, proc.stderr
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    assert ids == ["crashy_branin[analytic]::random[seed=0]", "crashy_branin[analytic]::random[seed=2]"]
    assert "2 cases collected" in proc.stdout
    assert not (tmp_path / "results").exists()
    proc = cli("run", "-o", "random", "--seeds", "2", "-k", "(rosenbrock or cliff) and seed=1", "--collect-only")
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    assert ids == ["hierarchical_rosenbrock[analytic]::random[seed=1]", "crash_cliff[analytic]::random[seed=1]"]
    proc = cli("run", "-k", "branin and (", "--collect-only")
    assert proc.returncode == 2 and "-k" in proc.stderr


def _broken_dist(root: Path) -> Path:
    """A real installed distribution (dist-info on sys.path) whose entry point raises at import."""
    dist = root / "broken_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[deploybench]\nbroken = broken_plugin_mod\n")
    (root / "broken_plugin_mod.py").write_text("raise ImportError('this plugin needs libfoo, which is missing')\n")
    return root


def test_broken_plugin_is_reported_and_the_rest_works(cli, tmp_path):
    env = cli_env([_broken_dist(tmp_path / "site")])
    proc = cli("plugins", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "broken" in proc.stdout and "BROKEN" in proc.stdout and "libfoo" in proc.stdout
    assert "random" in proc.stdout and "loaded" in proc.stdout
    proc = cli("run", "-o", "random", "-t", "crashy_branin", "--budget", "5", "--out", str(tmp_path / "r"), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "BROKEN PLUGIN broken" in proc.stdout and "1 cases completed" in proc.stdout
    # -p no:NAME blocks it
    proc = cli("-p", "no:broken", "plugins", env=env)
    assert "BROKEN" not in proc.stdout and "blocked" in proc.stdout


def test_optimizer_that_raises_ends_only_its_own_case(cli, tmp_path):
    out = tmp_path / "r"
    proc = cli("-p", "core_fixtures", "run", "-o", "raise_on_third", "-o", "random", "-o", "invalid_suggester",
                   "-t", "crashy_branin", "--budget", "6", "--out", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "ERROR in ask: RuntimeError: deliberate failure on the third ask" in proc.stdout
    assert "ERROR in validate: InvalidConfigError" in proc.stdout and "'x1'" in proc.stdout
    assert "1 cases completed, 2 errored" in proc.stdout
    raising = read_case_file(out / "crashy_branin/raise_on_third/seed_0.jsonl")
    assert len(raising.trials) == 2 and raising.end["status"] == "error"
    assert "Traceback" in raising.end["error"]["traceback"] and "third ask" in raising.end["error"]["traceback"]
    assert read_case_file(out / "crashy_branin/random/seed_0.jsonl").completed
    # -x stops after the first errored case
    proc = cli("-p", "core_fixtures", "run", "-o", "raise_on_third", "-o", "random", "-t", "crashy_branin",
                   "--budget", "6", "-x", "--out", str(tmp_path / "x"))
    assert proc.returncode == 1 and "stopping after the first error" in proc.stdout
    assert not (tmp_path / "x/crashy_branin/random").exists()


@pytest.mark.slow
def test_sigkill_then_resume_keeps_every_finished_case(tmp_path):
    out = tmp_path / "r"
    args = [sys.executable, "-m", "deploybench.cli.main", "-p", "core_fixtures", "run", "-o", "random", "-t", "slow_branin",
            "--seeds", "4", "--budget", "20", "--out", str(out)]
    env = cli_env(SLOW_BRANIN_SLEEP="0.03")
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "slow_branin/random/seed_0.jsonl"
    second = out / "slow_branin/random/seed_1.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until case 0 finished and case 1 is half-way
        if second.exists() and len(read_case_file(second).trials) >= 8:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before = first.read_bytes()
    partial = read_case_file(second)
    assert read_case_file(first).completed and not partial.finished and len(partial.trials) >= 8
    assert not (out / "slow_branin/random/seed_3.jsonl").exists()

    resumed = subprocess.run(args + ["--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "SKIPPED (finished earlier)" in resumed.stdout and "resumed after" in resumed.stdout
    assert first.read_bytes() == finished_before  # finished work untouched
    done = read_case_file(second)
    assert done.completed and len(done.trials) == 20
    # the trials measured before the kill are kept, not measured again
    assert done.trials[: len(partial.trials)] == partial.trials
    assert done.header["resumed_from_trial"] == len(partial.trials)
    for s in range(4):
        assert read_case_file(out / f"slow_branin/random/seed_{s}.jsonl").completed


def test_list_and_version(cli):
    proc = cli("list")
    assert proc.returncode == 0
    for name in ("crashy_branin", "hierarchical_rosenbrock", "crash_cliff", "random", "serial", "process"):
        assert name in proc.stdout
    assert cli("--version").stdout.startswith("deploybench ")


def test_budget_in_seconds_of_cost(cli, tmp_path):
    out = tmp_path / "r"
    proc = cli("run", "-o", "random", "-t", "crashy_branin", "--budget", "500", "--budget-seconds", "20",
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    case = read_case_file(out / "crashy_branin/random/seed_0.jsonl")
    cum = [t["cum_cost_s"] for t in case.trials]
    assert cum[-1] >= 20 and cum[-2] < 20  # stops at the trial that crosses the budget
    assert len(case.trials) < 500


def test_optimizer_shorthand_sets_its_declared_parameter_and_keeps_variants_apart(monkeypatch):
    """`-o NAME:VALUE` sets the parameter the optimizer declares as `shorthand_param`; two values of one
    optimizer are two variants (two folders), and --opt-param still applies to both."""
    import pytest

    import deploybench.plugins as plugins
    from deploybench.collection import collect

    monkeypatch.syspath_prepend(str(Path(__file__).parent / "fixtures"))
    pm = plugins.create_plugin_manager(["core_fixtures"])
    cases = collect(pm, tasks=["crashy_branin"], optimizers=["flavoured:salt", "flavoured:pepper", "flavoured"],
                    optimizer_params={"flavoured": {"width": 3}})
    assert [dict(c.optimizer_params) for c in cases] == [
        {"flavour": "salt", "width": 3}, {"flavour": "pepper", "width": 3}, {"width": 3}]
    assert len({c.node_id for c in cases}) == 3
    with pytest.raises(plugins.UsageError, match="optimizer 'flavoured': unknown flavour 'sugar'; flavours: plain"):
        collect(pm, tasks=["crashy_branin"], optimizers=["flavoured:sugar"])  # validate_params, before any case runs


def test_optimizer_shorthand_on_an_optimizer_without_one_is_a_usage_error(monkeypatch):
    import pytest

    import deploybench.plugins as plugins
    from deploybench.collection import collect

    pm = plugins.create_plugin_manager()
    with pytest.raises(plugins.UsageError, match="takes no ':' value.*--opt-param tba.PARAM=VALUE"):
        collect(pm, tasks=["crashy_branin"], optimizers=["tba:fast"])
    with pytest.raises(plugins.UsageError, match="nothing after ':'"):
        collect(pm, tasks=["crashy_branin"], optimizers=["tba:"])
    with pytest.raises(plugins.UsageError, match="did you mean 'tba'"):
        collect(pm, tasks=["crashy_branin"], optimizers=["tbaa:x"])
