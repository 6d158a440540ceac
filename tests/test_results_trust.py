"""Results you can trust: case identity, results folders, locks, signals, failing disks, time limits,
bad input and exit codes. Each test here is a row of docs/fault-matrix.md.

Faults come from the ``ft_faults`` fixture plugin (tests/fixtures/ft_faults.py, loaded with ``-p``).
Runs that are about processes (signals, locks, rlimits, hung threads) happen in real subprocesses
(``run_cli``); the others call the CLI in-process (``cli``). Every wait polls for a condition with a
generous deadline.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import cli_env
from deploybench import ExitCode
from deploybench.identity import variant_name
from deploybench.results import read_case_file

FT = ("-p", "ft_faults")
ROOT = Path(__file__).resolve().parents[1]


def _popen(args: list[str], env: dict, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "deploybench.cli.main", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=cwd)


def _poll(condition, what: str, proc: subprocess.Popen | None = None, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _n_trials(path: Path) -> int:
    return len(read_case_file(path).trials) if path.exists() else 0


# -- 1. case identity ------------------------------------------------------------------------------

def test_parameter_variants_get_their_own_readable_paths(cli, tmp_path):
    out = tmp_path / "r"
    base = ("run", "-t", "crashy_branin", "-o", "tba", "--budget", "4", "--out", str(out))
    assert cli(*base).returncode == ExitCode.OK
    assert cli(*base, "--resume", "--opt-param", "tba.T_init=0.9").returncode == ExitCode.OK
    assert cli(*base, "--resume", "--opt-param", "tba.T_init=0.9", "--opt-param", "tba.patience=2").returncode == 0
    folders = sorted(p.name for p in (out / "crashy_branin").iterdir())
    assert folders == ["tba", "tba[T_init=0.9,patience=2]", "tba[T_init=0.9]"]
    variant = read_case_file(out / "crashy_branin/tba[T_init=0.9]/seed_0.jsonl").header
    plain = read_case_file(out / "crashy_branin/tba/seed_0.jsonl").header
    assert variant["optimizer_params"]["T_init"] == 0.9 and plain["optimizer_params"]["T_init"] != 0.9
    assert variant["node_id"] == "crashy_branin[analytic]::tba[T_init=0.9][seed=0]"
    for header in (variant, plain):
        assert header["deploybench_version"] and header["optimizer_version"].startswith("deploybench ")
        assert header["optimizer_class"] == "deploybench_optimizers.tba.TBA"
    # a parameter set to its default is the plain case (no second copy of the same identity)
    again = cli(*base, "--resume", "--opt-param", f"tba.T_init={plain['optimizer_params']['T_init']}")
    assert again.returncode == 0 and "SKIPPED (finished earlier)" in again.stdout


def test_variant_names_are_stable_and_safe():
    assert variant_name("tba", {}) == "tba"
    assert variant_name("tba", {"b": 1, "a": "x y"}) == 'tba[a="x y",b=1]'
    assert "/" not in variant_name("tba", {"path": "../../etc"})
    long = variant_name("tba", {"weights": list(range(100))})
    assert long.startswith("tba[params-") and len(long) < 40


@pytest.mark.parametrize("field, value, words", [
    ("optimizer_version", "deploybench 0.0.1", "optimizer version deploybench 0.0.1 ->"),
    ("task_signature", "0123456789abcdef", "task signature 0123456789abcdef ->"),
    ("optimizer_params", {"T_init": 0.5}, "optimizer params"),
])
def test_resume_refuses_a_case_file_of_another_identity(cli, tmp_path, field, value, words):
    out = tmp_path / "r"
    args = ("run", "-t", "crashy_branin", "-o", "tba", "--seeds", "2", "--budget", "4", "--out", str(out))
    assert cli(*args).returncode == 0
    path = out / "crashy_branin/tba/seed_1.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    header[field] = value
    lines[0] = json.dumps(header) + "\n"
    lines = lines[:3]  # unfinished: --resume would continue it
    path.write_text("".join(lines))
    before = path.read_bytes()

    proc = cli(*args, "--resume")
    assert proc.returncode == ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert words in proc.stderr and "--overwrite" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""  # refused before the header: nothing ran
    assert path.read_bytes() == before

    replaced = cli(*args, "--overwrite")
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    assert read_case_file(path).completed and read_case_file(path).header[field] != value


def test_seeds_of_another_identity_beside_the_selected_ones_are_refused(cli, tmp_path):
    """Seeds left by an older version would be scored with the new ones: refused, even with --overwrite
    (which replaces only the cases this run selects)."""
    out = tmp_path / "r"
    args = ("run", "-t", "crashy_branin", "-o", "random", "--budget", "4", "--out", str(out))
    assert cli(*args, "--seeds", "2").returncode == 0
    old = out / "crashy_branin/random/seed_1.jsonl"
    lines = old.read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    header["optimizer_version"] = "deploybench 0.0.1"
    old.write_text(json.dumps(header) + "\n" + "".join(lines[1:]))
    for flag in ("--resume", "--overwrite"):
        proc = cli(*args, "--seed", "0", flag)
        assert proc.returncode == ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
        assert "seed_1.jsonl belongs to a different case" in proc.stderr and "move it away" in proc.stderr


def test_an_explicit_out_holding_cases_needs_resume_or_overwrite(cli, tmp_path):
    out = tmp_path / "r"
    args = ("run", "-t", "crashy_branin", "-o", "random", "--seeds", "2", "--budget", "4", "--out", str(out))
    assert cli(*args).returncode == 0
    before = {p: p.read_bytes() for p in out.rglob("seed_*.jsonl")}
    proc = cli(*args)
    assert proc.returncode == ExitCode.USAGE_ERROR
    assert "already holds 2 of the 2 cases" in proc.stderr
    assert "--resume" in proc.stderr and "--overwrite" in proc.stderr and proc.stdout == ""
    assert {p: p.read_bytes() for p in out.rglob("seed_*.jsonl")} == before
    overwritten = cli(*args, "--overwrite")
    assert overwritten.returncode == 0
    assert all(read_case_file(p).completed for p in before)


def test_without_out_every_session_writes_a_new_run_folder(cli, tmp_path):
    """The README's main command, run twice, keeps both runs; --resume continues the newest."""
    args = ("run", "-t", "crashy_branin", "-o", "random", "--budget", "4")
    first = cli(*args, cwd=tmp_path)
    second = cli(*args, cwd=tmp_path)
    assert first.returncode == 0 and second.returncode == 0, second.stdout + second.stderr
    runs = sorted((tmp_path / "results").iterdir())
    assert len(runs) == 2 and all(p.name.startswith("run-") for p in runs)
    assert all((p / "crashy_branin/random/seed_0.jsonl").exists() for p in runs)
    resumed = cli(*args, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0 and f"results: {runs[-1]}" in resumed.stdout
    assert "SKIPPED (finished earlier)" in resumed.stdout
    nothing = cli(*args, "--resume", cwd=tmp_path / "results")
    assert nothing.returncode == ExitCode.USAGE_ERROR and "--out" in nothing.stderr


@pytest.mark.slow
def test_one_session_per_results_folder(tmp_path):
    out = tmp_path / "r"
    env = cli_env(FT_SLEEP="0.3")
    first = _popen([*FT, "run", "-t", "ft_faulty[slow]", "-o", "random", "--budget", "40", "--out", str(out)], env)
    try:
        _poll(lambda: _n_trials(out / "ft_faulty@slow/random/seed_0.jsonl") >= 1, "the first trial", first)
        second = subprocess.run([sys.executable, "-m", "deploybench.cli.main", *FT, "run", "-t", "ft_faulty[slow]",
                                 "-o", "random", "--budget", "40", "--out", str(out), "--resume"],
                                env=env, capture_output=True, text=True, timeout=300)
        assert second.returncode == ExitCode.USAGE_ERROR, second.stdout + second.stderr
        assert "is in use by another deploybench session" in second.stderr
        assert f"pid {first.pid}" in second.stderr and second.stdout == ""
        assert first.poll() is None  # the first session is unharmed
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate()
    # the kernel released the lock with the killed holder: no stale lock to delete by hand
    resumed = subprocess.run([sys.executable, "-m", "deploybench.cli.main", *FT, "run", "-t", "ft_faulty[slow]",
                              "-o", "random", "--budget", "4", "--out", str(tmp_path / "other")],
                             env=cli_env(FT_SLEEP="0"), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0


# -- 2. workers never outlive the runner -----------------------------------------------------------

SLOW = (*FT, "run", "-t", "ft_faulty[slow]", "-o", "random", "--seeds", "3", "--budget", "6")


@pytest.mark.slow
def test_sigkill_of_the_runner_takes_its_workers_down_and_resume_completes(tmp_path):
    out = tmp_path / "r"
    proc = _popen([*SLOW, "-n", "2", "--out", str(out)], cli_env(FT_SLEEP="0.5"))
    _poll(lambda: _n_trials(out / "ft_faulty@slow/random/seed_0.jsonl") >= 2, "two trials", proc)
    workers = [c for c in psutil.Process(proc.pid).children(recursive=True)
               if "multiprocessing" in " ".join(c.cmdline())]
    assert len(workers) >= 2
    os.kill(proc.pid, signal.SIGKILL)  # the runner only, as the OOM killer would
    proc.communicate()

    def all_gone() -> bool:
        return not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)

    _poll(all_gone, "the orphaned workers to stop")
    resumed = subprocess.run([sys.executable, "-m", "deploybench.cli.main", *SLOW, "--out", str(out), "--resume"],
                             env=cli_env(FT_SLEEP="0"), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert all(read_case_file(p).completed for p in out.rglob("seed_*.jsonl"))


# -- 3. failures mid-run ---------------------------------------------------------------------------

def test_a_failing_disk_stops_cleanly_and_stays_resumable(run_cli, tmp_path):
    out = tmp_path / "r"
    args = (*FT, "run", "-t", "ft_faulty[disk_full]", "-o", "random", "--budget", "6", "--out", str(out))
    proc = run_cli(*args)
    assert proc.returncode == ExitCode.INTERRUPTED, proc.stdout + proc.stderr
    assert "!!! stopped: cannot write" in proc.stdout and "File too large" in proc.stdout
    assert "rerun with --resume" in proc.stdout and "Traceback" not in proc.stderr
    path = out / "ft_faulty@disk_full/random/seed_0.jsonl"
    kept = read_case_file(path)
    assert len(kept.trials) == 2 and not kept.finished  # every trial written before the fault
    assert not (out / "manifest.json.tmp").exists()  # no half-written manifest left behind

    resumed = run_cli(*args, "--resume", env=cli_env(FT_DISK_FULL="0"))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    done = read_case_file(path)
    assert done.completed and len(done.trials) == 6 and done.trials[:2] == kept.trials


@pytest.mark.parametrize("override", [None, "2"])
def test_an_in_process_evaluation_past_its_time_limit_ends_its_case_only(run_cli, tmp_path, override):
    out = tmp_path / "r"
    extra = ("--eval-timeout", override) if override else ()
    proc = run_cli(*FT, "run", "-t", "ft_faulty[hang_inprocess]", "-t", "ft_faulty", "-o", "random", "--budget", "5",
                   "--out", str(out), *extra)
    assert proc.returncode == ExitCode.CASE_ERRORS, proc.stdout + proc.stderr
    limit = override or "1"  # the task declares 1 s; the command line overrides it
    assert f"EvaluationTimeout: evaluate() did not return within {limit} s" in proc.stdout
    hung = read_case_file(out / "ft_faulty@hang_inprocess/random/seed_0.jsonl")
    assert hung.end["status"] == "error" and hung.end["error"]["stage"] == "evaluate"
    assert [t["outcome"]["status"] for t in hung.trials][2] == "timeout" and len(hung.trials) == 3
    assert read_case_file(out / "ft_faulty@ok/random/seed_0.jsonl").completed  # the session went on
    # as the message says, --resume continues the errored case after the hung trial, not from trial 0
    again = run_cli(*FT, "run", "-t", "ft_faulty[hang_inprocess]", "-o", "random", "--budget", "5",
                    "--out", str(out), "--resume", *extra)
    assert again.returncode == ExitCode.OK, again.stdout + again.stderr
    assert "resumed after 3 recorded trials" in again.stdout
    resumed = read_case_file(out / "ft_faulty@hang_inprocess/random/seed_0.jsonl")
    assert resumed.completed and len(resumed.trials) == 5 and resumed.trials[2]["outcome"]["status"] == "timeout"
    assert [t["config"] for t in resumed.trials[:3]] == [t["config"] for t in hung.trials]


# -- 3. bad input: one line, the usage code, before any work -----------------------------------------

BAD_INPUT = [
    (("run", "-o", "tba", "-t", "crashy_branin", "--opt-param", "tba.T_init=abc"),
     '--opt-param tba.T_init="abc": expected a number'),
    (("run", "-o", "tba", "-t", "crashy_branin", "--opt-param", "tba.nope=1"),
     "unknown parameter 'nope' of optimizer 'tba'; known parameters: T_init"),
    (("run", "-o", "random", "--seed", "3-1"), "the range 3-1 is empty"),
    (("run", "-o", "random", "--seed", "1,1"), "seed 1 is given twice"),
    (("run", "-o", "random", "--seeds", "0"), "--seeds must be at least 1"),
    (("run", "-o", "random", "--executor", "rya"), "unknown executor 'rya'; known executors:"),
    (("run", "-o", "random", "--eval-timeout", "-1"), "--eval-timeout must be a positive number"),
    (("run", "-o", "random", "--ask-timeout", "nan"), "--ask-timeout must be a positive number"),
    (("run", "-o", "random", "-t", "crashy_branin", "--out", "/proc/deploybench-x"), "cannot write results to /proc"),
    (("run", "-o", "random", "-t", "crashy_branin", "-p", "ft_faults"),
     "-p/--plugin goes before the command"),
]


@pytest.mark.parametrize("args, words", BAD_INPUT, ids=[" ".join(a[1:]) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_the_usage_code_before_any_work(cli, tmp_path, args, words):
    proc = cli(*args, env=cli_env(), cwd=tmp_path)
    assert proc.returncode == ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("deploybench: error: ")
    assert words in proc.stderr, proc.stderr
    assert "deploybench run: " not in proc.stderr  # the program name is said once
    assert proc.stdout == "" and not (tmp_path / "results").exists()  # no header, nothing written


def test_an_out_that_is_a_file_is_refused(cli, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("keep me")
    proc = cli("run", "-o", "random", "-t", "crashy_branin", "--out", str(target))
    assert proc.returncode == ExitCode.USAGE_ERROR and "is a file, not a folder" in proc.stderr
    assert target.read_text() == "keep me" and proc.stdout == ""


# -- 5. exit codes ---------------------------------------------------------------------------------

def test_exit_codes_are_distinct_and_documented():
    values = [code.value for code in ExitCode]
    assert len(set(values)) == len(values) and ExitCode.INTERRUPTED != ExitCode.USAGE_ERROR
    readme = (ROOT / "README.md").read_text()
    for code in ExitCode:
        assert f"`{code.value}` ({code.name})" in readme or f"`{code.value}` `{code.name}`" in readme, code


# -- 9. executor plugins use the public API only -------------------------------------------------------

def test_the_ray_executor_imports_no_private_deploybench_names():
    source = ROOT / "plugins/ray-executor/deploybench_ray/executor.py"
    tree = ast.parse(source.read_text())
    imported = [(node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and (node.module or "").startswith("deploybench") for alias in node.names]
    assert ("deploybench.executors", "run_case_in_worker") in imported
    assert not [name for _, name in imported if name.startswith("_")]
    assert "traceback" not in source.read_text()  # the worker wrapper is not re-implemented


def test_built_in_executors_follow_the_protocol():
    from deploybench.executors import Executor, ProcessExecutor, SerialExecutor

    assert isinstance(SerialExecutor(), Executor) and isinstance(ProcessExecutor(), Executor)
