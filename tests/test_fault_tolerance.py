"""The harness never dies, and a run that is stopped loses at most the trial in flight.

Faults come from the ``ft_faults`` fixture plugin (tests/fixtures/ft_faults.py, loaded with ``-p``):
optimizers that raise in ask or tell, suggest invalid configurations or hang; evaluations that raise,
run out of memory, segfault or hang (in a child process, as live evaluations do, and in-process);
runs killed with SIGKILL or stopped with Ctrl-C and resumed; torn, corrupt and too-new results files.
"""

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
from deploybench import ExitCode
from deploybench.plugins import create_plugin_manager
from deploybench.results import read_case_file
from deploybench.runner import Case, RunOptions, run_case

TIMING = ("ask_s", "eval_s", "tell_s")
FT = ("-p", "ft_faults")


def _trials(path: Path) -> list[dict]:
    return [{k: v for k, v in t.items() if k not in TIMING} for t in read_case_file(path).trials]


def _all_records(out: Path) -> dict[str, list[dict]]:
    return {str(p.relative_to(out)): _trials(p) for p in sorted(out.rglob("seed_*.jsonl"))}


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background job inherits SIGINT ignored; a terminal's does not


def _popen(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "deploybench.cli.main", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=_default_sigint)


def _wait_for_trials(path: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and len(read_case_file(path).trials) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError(f"{path} never reached {n} trials")


# -- optimizer faults ------------------------------------------------------------------------------

def test_optimizer_faults_end_only_their_own_case(run_cli, tmp_path):
    out = tmp_path / "r"
    proc = run_cli(*FT, "run", "-t", "ft_faulty", "-o", "ft_raise_in_ask", "-o", "ft_raise_in_tell", "-o", "ft_invalid",
                   "-o", "ft_hang_in_ask", "-o", "random", "--budget", "5", "--ask-timeout", "1", "--out", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    expected = {  # optimizer: (stage, exception type, trials kept)
        "ft_raise_in_ask": ("ask", "RuntimeError", 2),
        "ft_raise_in_tell": ("tell", "ValueError", 3),  # the trial whose tell raised is kept
        "ft_invalid": ("validate", "InvalidConfigError", 1),
        "ft_hang_in_ask": ("ask", "AskTimeout", 2),
    }
    for opt, (stage, kind, kept) in expected.items():
        case = read_case_file(out / f"ft_faulty@ok/{opt}/seed_0.jsonl")
        assert case.end["status"] == "error" and case.end["error"]["stage"] == stage, case.end
        assert case.end["error"]["type"] == kind and case.end["error"]["traceback"]
        assert len(case.trials) == kept and case.end["n_trials"] == kept
        assert f"ERROR ft_faulty[ok]::{opt}[seed=0] in {stage}: {kind}" in proc.stdout
    assert "did not return within 1 s" in proc.stdout
    assert read_case_file(out / "ft_faulty@ok/random/seed_0.jsonl").completed
    assert "4 errored" in proc.stdout


@pytest.mark.parametrize("mode, words", [("range", "out of range"), ("missing", "missing"),
                                         ("extra", "unknown parameter"), ("not_a_dict", "must be a dict")])
def test_every_kind_of_invalid_suggestion_is_reported(mode, words, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "fixtures"))
    options = RunOptions(out_dir=str(tmp_path), plugin_args=("ft_faults",))
    case = Case(task="ft_faulty", target="ok", task_label="ft_faulty", optimizer="ft_invalid", seed=0, budget=5,
                optimizer_params=(("mode", mode),))
    result = run_case(case, options, pm=create_plugin_manager(options.plugin_args))
    assert result.status == "error" and result.error["stage"] == "validate" and result.n_trials == 1
    assert words in result.error["message"] and result.error["suggestion"]


# -- evaluation faults -----------------------------------------------------------------------------

def test_evaluation_faults_become_trial_outcomes(run_cli, tmp_path):
    out = tmp_path / "r"
    targets = ["raise", "memoryerror", "segfault_subprocess", "hang_subprocess"]
    proc = run_cli(*FT, "run", "-o", "random", "--budget", "5", "--out", str(out),
                   *[a for t in targets for a in ("-t", f"ft_faulty[{t}]")], env=cli_env(FT_TIME_LIMIT="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = {  # target: (status, error kind, words in the message)
        "raise": ("crashed", "runtime", "RuntimeError: deliberate evaluation failure"),
        "memoryerror": ("crashed", "oom", "MemoryError"),
        "segfault_subprocess": ("crashed", "runtime", "killed by signal SIGSEGV"),
        "hang_subprocess": ("timeout", "timeout", "exceeded its 1 s limit"),
    }
    for target, (status, kind, words) in expected.items():
        case = read_case_file(out / f"ft_faulty@{target}/random/seed_0.jsonl")
        assert case.completed and len(case.trials) == 5  # the case goes on after the fault
        outcome = case.trials[2]["outcome"]
        assert outcome["status"] == status and outcome["error"]["kind"] == kind and words in outcome["error"]["message"]
        glyphs = proc.stdout.split(f"ft_faulty[{target}]::random[seed=0] ")[1].split()[0]
        assert glyphs[2] == {"crashed": "C", "timeout": "T"}[status]


def test_in_process_segfault_costs_only_its_case_with_workers(run_cli, tmp_path):
    """A native crash inside a worker process kills that process: the case is reported as an error
    (its trials kept, resumable) and every other case still runs. Serially the same crash kills the
    runner itself, which is why risky evaluations belong in a subprocess; finished cases are kept."""
    args = (*FT, "run", "-o", "random", "--budget", "5", "-t", "ft_faulty[ok]", "-t", "ft_faulty[segfault_inprocess]")
    out = tmp_path / "n2"
    proc = run_cli(*args, "--seeds", "2", "-n", "2", "--out", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "in worker: WorkerDied: its worker process died" in proc.stdout
    assert "2 cases completed, 2 errored" in proc.stdout
    for seed in (0, 1):
        assert read_case_file(out / f"ft_faulty@ok/random/seed_{seed}.jsonl").completed
        crashed = read_case_file(out / f"ft_faulty@segfault_inprocess/random/seed_{seed}.jsonl")
        assert not crashed.finished and len(crashed.trials) == 2  # trials before the crash are kept

    serial = run_cli(*args, "--out", str(tmp_path / "serial"))
    assert serial.returncode == -signal.SIGSEGV
    assert read_case_file(tmp_path / "serial/ft_faulty@ok/random/seed_0.jsonl").completed


# -- interrupted runs ------------------------------------------------------------------------------

SLOW = (*FT, "run", "-t", "ft_faulty[slow]", "-o", "random", "--seeds", "3", "--budget", "6")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same run, never interrupted (the slow target is plain crashy Branin with a sleep)."""
    out = tmp_path_factory.mktemp("reference")
    proc = subprocess.run([sys.executable, "-m", "deploybench.cli.main", *SLOW, "--out", str(out)], env=cli_env(FT_SLEEP="0"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return _all_records(out)


@pytest.mark.slow
def test_sigkill_with_workers_then_resume_loses_nothing_finished(tmp_path, reference):
    out = tmp_path / "r"
    env = cli_env(FT_SLEEP="0.5")
    proc = _popen([*SLOW, "-n", "2", "--out", str(out)], env)
    first = out / "ft_faulty@slow/random/seed_0.jsonl"
    _wait_for_trials(first, 2, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the session and its workers, as the OOM killer or kill -9 would
    proc.communicate()
    before = {p: read_case_file(p) for p in out.rglob("seed_*.jsonl")}
    assert before and all(not c.finished or c.completed for c in before.values())

    resumed = subprocess.run([sys.executable, "-m", "deploybench.cli.main", *SLOW, "-n", "2", "--out", str(out),
                              "--resume"], env=cli_env(FT_SLEEP="0"), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    for path, case in before.items():
        after = read_case_file(path)
        assert after.completed and after.trials[: len(case.trials)] == case.trials  # nothing recorded is redone
        if not case.finished and case.trials:
            assert after.header["resumed_from_trial"] == len(case.trials)
    assert _all_records(out) == reference


@pytest.mark.parametrize("workers, how", [("1", "SIGINT group"), ("2", "SIGINT group"), ("1", "SIGTERM runner"),
                                          ("2", "SIGTERM runner"), ("2", "SIGHUP runner"), ("2", "SIGTERM group")])
@pytest.mark.slow
def test_ctrl_c_sigterm_sighup_stop_cleanly_and_resume_completes(tmp_path, reference, workers, how):
    """Ctrl-C reaches the whole process group; a scheduler, ``timeout`` or a container stop sends
    SIGTERM (to the runner or its group); a closed terminal SIGHUP. All end the same way."""
    out = tmp_path / "r"
    proc = _popen([*SLOW, "-n", workers, "--out", str(out)], cli_env(FT_SLEEP="0.5"))
    _wait_for_trials(out / "ft_faulty@slow/random/seed_0.jsonl", 2, proc)
    name, target = how.split()
    signum = getattr(signal, name)
    if target == "group":
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == ExitCode.INTERRUPTED, stdout + stderr
    assert "!!! interrupted" in stdout and ("not run (interrupted)" in stdout or "no case finished" in stdout)
    assert "no cases ran" not in stdout  # the case in flight kept its trials, and the summary says so
    if "no case finished" in stdout:
        assert "kept: " in stdout and "--resume continues it" in stdout
    assert f"interrupted by {name}" in stdout  # Ctrl-C names its signal too
    assert "Traceback" not in stderr
    sessions = [json.loads(line) for line in (out / "sessions.jsonl").read_text().splitlines()]
    assert sessions[-1]["exit_status"] == ExitCode.INTERRUPTED
    partial = {p: read_case_file(p) for p in out.rglob("seed_*.jsonl")}
    assert partial and not all(c.completed for c in partial.values())

    resumed = subprocess.run([sys.executable, "-m", "deploybench.cli.main", *SLOW, "--out", str(out), "--resume"],
                             env=cli_env(FT_SLEEP="0"), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    for path, case in partial.items():
        assert read_case_file(path).trials[: len(case.trials)] == case.trials
    assert _all_records(out) == reference


# -- damaged and foreign results files -------------------------------------------------------------

def test_torn_and_corrupt_lines_are_reported_and_redone_on_resume(run_cli, tmp_path):
    out = tmp_path / "r"
    args = (*FT, "run", "-t", "ft_faulty", "-o", "random", "--seeds", "2", "--budget", "6", "--out", str(out))
    assert run_cli(*args).returncode == 0
    original = _all_records(out)
    torn = out / "ft_faulty@ok/random/seed_0.jsonl"
    lines = torn.read_text().splitlines(keepends=True)
    torn.write_text("".join(lines[:-2]) + lines[-2][: len(lines[-2]) // 2])  # killed while writing trial 5
    corrupt = out / "ft_faulty@ok/random/seed_1.jsonl"
    lines = corrupt.read_text().splitlines(keepends=True)
    lines[3] = '{"type": "trial", "trial": 2, "config": {"mode": "A", "x1": 1.0\n'  # trial 2 damaged
    corrupt.write_text("".join(lines))

    assert [t["trial"] for t in read_case_file(torn).trials] == [0, 1, 2, 3, 4]
    assert "torn last line" in read_case_file(torn).problems[0]
    assert [t["trial"] for t in read_case_file(corrupt).trials] == [0, 1]
    assert "corrupt line" in read_case_file(corrupt).problems[0]

    resumed = run_cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "note:" in resumed.stdout and "torn last line" in resumed.stdout and "corrupt line" in resumed.stdout
    assert "resumed after 5 recorded trials" in resumed.stdout and "resumed after 2 recorded trials" in resumed.stdout
    assert _all_records(out) == original
    assert all(read_case_file(p).problems == [] for p in (torn, corrupt))


def test_results_from_a_newer_format_are_refused_with_exit_2(run_cli, tmp_path):
    out = tmp_path / "r"
    path = out / "ft_faulty@ok/random/seed_0.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"type": "case", "format_version": 99, "task": "ft_faulty"}) + "\n")
    for extra in ((), ("-n", "2")):
        proc = run_cli(*FT, "run", "-t", "ft_faulty", "-o", "random", "--budget", "3", "--out", str(out), "--resume", *extra)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "results format version 99" in proc.stderr and "Upgrade deploybench" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert json.loads(path.read_text())["format_version"] == 99  # left as it was
    board = run_cli("leaderboard", str(out))
    assert board.returncode == 2 and "99" in board.stderr, board.stdout + board.stderr


def test_resume_with_other_parameters_names_the_unfinished_case_it_leaves(cli, tmp_path):
    """``--resume --opt-param ...`` continues (or starts) the cases of the new parameters in their own
    folder; the unfinished case of the old parameters is named, not silently left behind."""
    out = tmp_path / "r"
    assert cli("run", "-o", "tba", "-t", "crashy_branin", "--budget", "10", "--out", str(out)).returncode == 0
    path = out / "crashy_branin" / "tba" / "seed_0.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-4]) + "\n")  # unfinished: the end line and the last trials lost
    proc = cli("run", "-o", "tba", "-t", "crashy_branin", "--budget", "10", "--out", str(out), "--resume",
               "--opt-param", "tba.T_init=0.5")
    assert proc.returncode == 0, proc.stderr
    assert ("note: --resume continues the cases of these parameters (tba[T_init=0.5]/); the unfinished "
            "crashy_branin/tba/seed_0.jsonl has other parameters and is left as it is") in proc.stdout
    again = cli("run", "-o", "tba", "-t", "crashy_branin", "--budget", "10", "--out", str(out), "--resume")
    assert again.returncode == 0 and "note: --resume continues" not in again.stdout  # its own parameters


def test_resume_repairs_a_torn_line_after_the_end_line(cli, tmp_path):
    """A finished case with a damaged line after its end line: --resume skips the case (it finished)
    and removes the damaged tail, so the leaderboard stops warning about it."""
    out = tmp_path / "r"
    assert cli("run", "-o", "random", "-t", "crashy_branin", "--budget", "5", "--out", str(out)).returncode == 0
    path = out / "crashy_branin" / "random" / "seed_0.jsonl"
    intact = path.read_bytes()
    with open(path, "ab") as fh:
        fh.write(b'{"type":"tri')
    board = cli("leaderboard", str(out))
    assert "torn last line" in board.stdout + board.stderr
    proc = cli("run", "-o", "random", "-t", "crashy_branin", "--budget", "5", "--out", str(out), "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "SKIPPED (finished earlier)" in proc.stdout and "removed 1 damaged line(s) after the end line" in proc.stdout
    assert path.read_bytes() == intact
    board = cli("leaderboard", str(out))
    assert "torn last line" not in board.stdout + board.stderr
