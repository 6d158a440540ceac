"""The emulated device's memory limit kills real processes (deploybench.live.limits).

Each test starts real Python children that allocate and touch memory. Children hold their memory and
block on stdin, so a test never depends on timing: it either waits for the limit to kill them or
closes stdin to let them exit. Waits have generous deadlines only to fail instead of hanging.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from deploybench.live.errors import classify_error
from deploybench.live.limits import (
    MECHANISM_ENV,
    MECHANISMS,
    MemoryGuard,
    MemoryLimitUnavailable,
    memory_limit_support,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="memory limits are tested on Linux")

LIMIT_MB = 150
DEADLINE_S = 120.0

# argv: own MB, grandchild MB (0: none). Allocates and touches its MB in 10 MB chunks, starts the
# grandchild (which does the same), prints "held", waits for stdin to close, then for the grandchild.
HOLDER = r"""
import subprocess, sys
own, kid_mb = int(sys.argv[1]), int(sys.argv[2])
held = [b"x" * (10 << 20) for _ in range(own // 10)]
kid = None
if kid_mb:
    kid = subprocess.Popen([sys.executable, "-c", sys.argv[3], str(kid_mb), "0", ""], stdin=sys.stdin)
print("held", flush=True)
sys.stdin.read()
sys.exit(kid.wait() if kid else 0)
"""

_SUPPORT = memory_limit_support()


def _cgroup_or_skip() -> None:
    mechanisms = _SUPPORT["mechanisms"]
    if not (mechanisms["cgroup-v2"]["available"] or mechanisms["cgroup-v1"]["available"]):
        pytest.skip(
            "no writable memory cgroup here: "
            f"v2: {mechanisms['cgroup-v2']['detail']}; v1: {mechanisms['cgroup-v1']['detail']}"
        )


def _expected(request: str) -> tuple[str, ...]:
    if request == "cgroup":
        return tuple(m for m in ("cgroup-v2", "cgroup-v1") if _SUPPORT["mechanisms"][m]["available"])[:1]
    return (request,)


@pytest.fixture(params=["cgroup", "watchdog"])
def forced(request, monkeypatch) -> str:
    """Each mechanism that kills, forced through the environment variable (as users and CI do)."""
    if request.param == "cgroup":
        _cgroup_or_skip()
    monkeypatch.setenv(MECHANISM_ENV, request.param)
    return request.param


def _start(guard: MemoryGuard, own_mb: int, kid_mb: int = 0) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(own_mb), str(kid_mb), HOLDER],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True, preexec_fn=guard.preexec,
    )
    guard.attach(proc)
    return proc


def _wait(proc: subprocess.Popen) -> int:
    """Wait for the limit to end ``proc``; on a missed limit, kill it and fail instead of hanging."""
    try:
        return proc.wait(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(f"the worker was not killed within {DEADLINE_S:g} s although it exceeded the limit")


def _poll(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_worker_over_the_limit_is_killed_as_oom(forced):
    with MemoryGuard(limit_mb=LIMIT_MB) as guard:
        assert guard.mechanism in _expected(forced)
        proc = _start(guard, own_mb=400)
        returncode = _wait(proc)
        assert returncode == -signal.SIGKILL
        assert guard.oom_killed() is True
        assert guard.info()["memory_limit_mechanism"] == guard.mechanism
        path = guard.cgroup_path
    assert guard.oom_killed() is True  # still answerable after the group is gone
    if path is not None:
        assert not os.path.exists(path)
    if forced == "watchdog":
        assert guard.killed_at_mb > LIMIT_MB


def test_worker_under_the_limit_exits_normally(forced):
    with MemoryGuard(limit_mb=LIMIT_MB) as guard:
        proc = _start(guard, own_mb=20)
        assert proc.stdout.readline() == b"held\n"
        _poll(lambda: (guard.peak_mb or 0) >= 20, "the guard to see the 20 MB the worker holds")
        proc.stdin.close()
        assert _wait(proc) == 0
        assert guard.oom_killed() is False
        assert guard.peak_mb < LIMIT_MB
        path = guard.cgroup_path
    if forced == "cgroup":
        assert path is not None and not os.path.exists(path)


def test_grandchild_memory_counts_towards_the_limit(forced):
    """100 MB in the worker plus 100 MB in its child: each is under the 150 MB limit, the sum is not."""
    with MemoryGuard(limit_mb=LIMIT_MB) as guard:
        proc = _start(guard, own_mb=100, kid_mb=100)
        returncode = _wait(proc)
        assert returncode != 0
        assert guard.oom_killed() is True


def test_worker_and_grandchild_under_the_limit_together_exit_normally(forced):
    with MemoryGuard(limit_mb=LIMIT_MB) as guard:
        proc = _start(guard, own_mb=30, kid_mb=30)
        _poll(lambda: (guard.peak_mb or 0) >= 60, "the guard to see both processes' 60 MB")
        proc.stdin.close()
        assert _wait(proc) == 0
        assert guard.oom_killed() is False


def test_worker_is_killed_and_cgroup_removed_when_the_body_raises(forced):
    with pytest.raises(RuntimeError, match="body failed"):
        with MemoryGuard(limit_mb=LIMIT_MB) as guard:
            proc = _start(guard, own_mb=10, kid_mb=10)
            assert proc.stdout.readline() == b"held\n"
            path = guard.cgroup_path
            raise RuntimeError("body failed")
    assert proc.wait(timeout=DEADLINE_S) == -signal.SIGKILL
    if forced == "cgroup":
        assert path is not None and not os.path.exists(path)


def test_stale_cgroup_of_a_dead_profiler_is_cleaned(monkeypatch):
    """A child left behind by a killed profiler (with an orphaned worker in it) does not survive the next run."""
    _cgroup_or_skip()
    monkeypatch.setenv(MECHANISM_ENV, "cgroup")
    with MemoryGuard(limit_mb=LIMIT_MB) as guard:
        home = os.path.dirname(guard.cgroup_path)
    # a stand-in profiler owns the group while it is set up (other guards leave live owners' groups alone)
    profiler = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    stale = os.path.join(home, f"deploybench-{profiler.pid}-0123456789ab")
    os.mkdir(stale)
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        with open(os.path.join(stale, "cgroup.procs"), "w") as handle:
            handle.write(str(orphan.pid))
        profiler.kill()
        profiler.wait()  # the profiler is gone; its worker and group are left behind
        with MemoryGuard(limit_mb=LIMIT_MB) as guard:
            assert not os.path.exists(stale)
        assert orphan.wait(timeout=DEADLINE_S) == -signal.SIGKILL
    finally:
        if profiler.poll() is None:
            profiler.kill()
            profiler.wait()
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()
        if os.path.isdir(stale):
            os.rmdir(stale)


def test_rlimit_turns_an_excess_allocation_into_an_oom_classified_error(monkeypatch):
    """The last resort kills nothing: the allocation fails and the worker's MemoryError reads as oom
    (from the classifier and from the guard, which also knows failed library mappings)."""
    monkeypatch.setenv(MECHANISM_ENV, "rlimit")
    with MemoryGuard(limit_mb=300) as guard:
        assert guard.mechanism == "rlimit-as"
        proc = _start(guard, own_mb=400)
        _, stderr = proc.communicate(timeout=DEADLINE_S)
        assert proc.returncode == 1
        assert classify_error(None, stderr.decode()) == "oom"
        assert guard.oom_killed(stderr.decode()) is True
        assert guard.oom_killed("ValueError: unrelated") is False
    with MemoryGuard(limit_mb=300) as guard:
        proc = _start(guard, own_mb=20)
        stdout, _ = proc.communicate(b"", timeout=DEADLINE_S)
        assert proc.returncode == 0 and stdout == b"held\n"
        assert guard.oom_killed("MemoryError") is False  # it exited normally


def test_explicit_mechanism_wins_over_auto_and_env(monkeypatch):
    monkeypatch.setenv(MECHANISM_ENV, "rlimit")
    with MemoryGuard(limit_mb=LIMIT_MB, mechanism="watchdog") as guard:
        assert guard.mechanism == "watchdog"
    with MemoryGuard(limit_mb=LIMIT_MB, mechanism="auto") as guard:
        assert guard.mechanism == "rlimit-as"  # the environment overrides auto


def test_auto_picks_what_the_support_report_selects(monkeypatch):
    monkeypatch.delenv(MECHANISM_ENV, raising=False)
    support = memory_limit_support()
    assert set(support["mechanisms"]) == set(MECHANISMS)
    assert support["mechanisms"]["watchdog"]["available"] is True
    for entry in support["mechanisms"].values():
        assert entry["detail"]
    with MemoryGuard(limit_mb=LIMIT_MB) as guard:
        assert guard.mechanism == support["selected"]
        assert guard.describe().startswith(guard.mechanism)


def test_no_limit_and_off_are_no_ops(monkeypatch):
    monkeypatch.delenv(MECHANISM_ENV, raising=False)
    with MemoryGuard(limit_mb=None) as guard:
        proc = subprocess.Popen([sys.executable, "-c", "pass"], preexec_fn=guard.preexec)
        guard.attach(proc)
        assert proc.wait(timeout=DEADLINE_S) == 0
        assert (guard.mechanism, guard.oom_killed(), guard.peak_mb) == ("none", False, None)
        assert guard.describe() == "none (no memory limit)"
    monkeypatch.setenv(MECHANISM_ENV, "off")
    with MemoryGuard(limit_mb=LIMIT_MB) as guard:
        assert guard.mechanism == "none" and guard.cgroup_path is None


def test_bad_mechanism_names_the_closest_valid_one(monkeypatch):
    monkeypatch.setenv(MECHANISM_ENV, "watchdgo")
    with pytest.raises(ValueError, match=r"DEPLOYBENCH_MEMORY_LIMIT='watchdgo'.*did you mean 'watchdog'"):
        MemoryGuard(limit_mb=LIMIT_MB)
    with pytest.raises(ValueError, match="limit_mb must be a positive"):
        MemoryGuard(limit_mb=0)


def test_forced_cgroup_that_cannot_work_raises_instead_of_weakening(monkeypatch):
    unavailable = [m for m in ("cgroup-v2", "cgroup-v1") if not _SUPPORT["mechanisms"][m]["available"]]
    if not unavailable:
        pytest.skip("both cgroup versions work here")
    with pytest.raises(MemoryLimitUnavailable, match=unavailable[0]):
        with MemoryGuard(limit_mb=LIMIT_MB, mechanism=unavailable[0]):
            pass


# --- cgroup discovery on layouts this machine may not have (a fake cgroupfs tree) ---------------------


def test_cgroup_path_under_a_container_mount_root():
    """Containers mount their own subtree: /docker/abc mounted at /sys/fs/cgroup/memory is that directory."""
    from deploybench.live.limits import _join_mount

    assert _join_mount("/docker/abc", "/sys/fs/cgroup/memory", "/docker/abc") == "/sys/fs/cgroup/memory"
    assert _join_mount("/docker/abc", "/sys/fs/cgroup/memory", "/docker/abc/job") == "/sys/fs/cgroup/memory/job"
    assert _join_mount("/", "/sys/fs/cgroup", "/user.slice/job") == "/sys/fs/cgroup/user.slice/job"


def _fake_v2(tmp_path, monkeypatch, controllers: str):
    from deploybench.live import limits

    home = tmp_path / "unified" / "job"
    home.mkdir(parents=True)
    (home / "cgroup.controllers").write_text(controllers + "\n")
    (home / "cgroup.subtree_control").mkdir()  # stands in for the kernel refusing "+memory" (EBUSY)
    monkeypatch.setattr(limits, "_mounts", lambda: [("cgroup2", "/", str(tmp_path / "unified"), "rw")])
    monkeypatch.setattr(limits, "_own_cgroups", lambda: ("/job", None))
    monkeypatch.delenv(MECHANISM_ENV, raising=False)
    return home


def test_cgroup_v2_without_the_memory_controller_falls_back_to_the_watchdog(tmp_path, monkeypatch):
    home = _fake_v2(tmp_path, monkeypatch, controllers="cpu pids")
    with MemoryGuard(limit_mb=LIMIT_MB) as guard:
        assert guard.mechanism == "watchdog"
        assert "memory controller is not available" in guard.fallbacks["cgroup-v2"]
        assert "no cgroup v1 memory hierarchy" in guard.fallbacks["cgroup-v1"]
    assert sorted(os.listdir(home)) == ["cgroup.controllers", "cgroup.subtree_control"]  # nothing created


def test_cgroup_v2_refusing_to_delegate_memory_is_unavailable_when_forced(tmp_path, monkeypatch):
    home = _fake_v2(tmp_path, monkeypatch, controllers="cpu memory pids")
    refused = r"cgroup-v2: cannot enable the memory controller for children of .*job"
    with pytest.raises(MemoryLimitUnavailable, match=refused):
        with MemoryGuard(limit_mb=LIMIT_MB, mechanism="cgroup"):
            pass
    assert sorted(os.listdir(home)) == ["cgroup.controllers", "cgroup.subtree_control"]  # nothing created
