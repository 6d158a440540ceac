"""Device memory means what the device holds (issue 29, step 1).

A memory cgroup charges a page to whoever first brought it into memory, so the file-backed pages of a
runtime already in the page cache (libtorch, ~300 MB) were never counted against an emulated device. The
resident watchdog beside the kernel mechanism counts the worker tree's whole resident set. Children here
are real processes that mmap and touch a file and allocate anonymous memory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from deploybench.live.limits import ACCOUNTING_ENV, MECHANISM_ENV, MemoryGuard, memory_limit_support

pytestmark = [pytest.mark.skipif(not sys.platform.startswith("linux"), reason="resident sets are read from /proc"),
              pytest.mark.slow]

LIMIT_MB = 150
DEADLINE_S = 120.0

# argv: file path, anonymous MB. Maps the whole file and reads one byte per page (file-backed resident
# pages), then allocates and touches the anonymous MB, prints "held" and waits for stdin to close.
MAPPER = r"""
import mmap, sys
path, anon_mb = sys.argv[1], int(sys.argv[2])
with open(path, "rb") as fh:
    view = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
total = sum(view[i] for i in range(0, len(view), 4096))
held = [bytearray(10 << 20) for _ in range(anon_mb // 10)]
for block in held:
    for i in range(0, len(block), 4096):
        block[i] = 1
print("held", total, flush=True)
sys.stdin.read()
"""

_SUPPORT = memory_limit_support()
_CGROUP = _SUPPORT["mechanisms"]["cgroup-v2"]["available"] or _SUPPORT["mechanisms"]["cgroup-v1"]["available"]


@pytest.fixture
def mapped_file(tmp_path):
    """A 100 MB file, written by this process (its pages sit in the page cache, charged to our group)."""
    path = tmp_path / "runtime.bin"
    with open(path, "wb") as fh:
        for _ in range(10):
            fh.write(os.urandom(1 << 20) * 10)
    return str(path)


def _run(guard: MemoryGuard, path: str, anon_mb: int) -> tuple[int, bytes]:
    proc = subprocess.Popen([sys.executable, "-c", MAPPER, path, str(anon_mb)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=guard.preexec)
    guard.attach(proc)
    first = proc.stdout.readline()  # b"" when killed before it held everything
    if first.startswith(b"held"):
        # alive while holding it all: give the watchdog a few samples, then let it exit
        try:
            proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            proc.stdin.close()
    try:
        return proc.wait(timeout=DEADLINE_S), first
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail("the mapping process neither exited nor was killed")


@pytest.mark.parametrize("mechanism", ["auto", "watchdog"])
def test_file_backed_plus_anonymous_memory_over_the_limit_is_oom(mapped_file, monkeypatch, mechanism):
    """100 MB of mapped file + 100 MB anonymous: each under the 150 MB device, together over it."""
    monkeypatch.delenv(ACCOUNTING_ENV, raising=False)
    monkeypatch.setenv(MECHANISM_ENV, mechanism)
    with MemoryGuard(limit_mb=LIMIT_MB) as guard:
        code, first = _run(guard, mapped_file, anon_mb=100)
    assert code == -signal.SIGKILL and not first.startswith(b"held")
    assert guard.oom_killed() is True and guard.accounting == "rss+file"
    assert guard.decided_by() in ("watchdog", guard.mechanism)
    assert guard.info()["memory_accounting"] == "rss+file"
    assert guard.resident_peak_mb > 100  # the watchdog saw the file-backed pages
    if mechanism == "auto" and _CGROUP:
        assert guard.resident_watchdog and guard.mechanism.startswith("cgroup")
        # the cgroup was not charged the cached file pages: the resident watchdog decided
        assert guard.decided_by() == "watchdog"
        assert "resident watchdog" in guard.describe()


@pytest.mark.parametrize("mechanism", ["auto", "watchdog"])
def test_each_part_alone_fits_the_device(mapped_file, monkeypatch, mechanism):
    monkeypatch.delenv(ACCOUNTING_ENV, raising=False)
    monkeypatch.setenv(MECHANISM_ENV, mechanism)
    with MemoryGuard(limit_mb=LIMIT_MB) as guard:
        code, first = _run(guard, mapped_file, anon_mb=0)
    assert code == 0 and first.startswith(b"held")
    assert guard.oom_killed() is False and guard.decided_by() is None
    assert 90 < guard.resident_peak_mb < LIMIT_MB  # the 100 MB mapped file was counted, below the limit


@pytest.mark.skipif(not _CGROUP, reason="needs a writable memory cgroup")
def test_cgroup_charge_alone_misses_the_cached_file_pages(mapped_file, monkeypatch):
    """The v2 accounting (``charged``): the same process survives the 150 MB device holding ~200 MB."""
    monkeypatch.setenv(ACCOUNTING_ENV, "charged")
    monkeypatch.setenv(MECHANISM_ENV, "cgroup")
    with MemoryGuard(limit_mb=LIMIT_MB) as guard:
        code, first = _run(guard, mapped_file, anon_mb=100)
        assert guard.accounting == "cgroup-charge" and not guard.resident_watchdog
    assert code == 0 and first.startswith(b"held")
    assert guard.oom_killed() is False and guard.resident_peak_mb is None


def test_a_bad_accounting_names_the_allowed_ones(monkeypatch):
    monkeypatch.setenv(ACCOUNTING_ENV, "pss")
    with pytest.raises(ValueError, match="rss\\+file, charged"):
        MemoryGuard(limit_mb=LIMIT_MB)


# -- the profiler: the runtime's own pages count against the device ---------------------------------------
TINY = {"model": "tiny_cnn", "backend": "pytorch_eager", "precision": "fp32", "batch_size": 1, "threads": 1}


@pytest.fixture
def live_env(monkeypatch, tmp_path):
    monkeypatch.setenv("DEPLOYBENCH_TESTING", "1")
    monkeypatch.setenv("DEPLOYBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DEPLOYBENCH_MAX_OTHER_CORES", str((os.cpu_count() or 1) + 1))
    monkeypatch.delenv(MECHANISM_ENV, raising=False)
    monkeypatch.delenv(ACCOUNTING_ENV, raising=False)
    return tmp_path


def _request(tmp_path, device_mb: float):
    from deploybench.live.profiler import ProfileRequest

    return ProfileRequest(config=TINY, device="cpu", warmup_min_iters=1, warmup_max_iters=2, min_iters=3, max_iters=5,
                          measure_time_s=0.0, time_limit_s=90, max_retries=0, memory_limit_mb=device_mb,
                          device_profile="edge", artefact_cache=str(tmp_path / "artefacts"))


@pytest.mark.live
def test_a_runtime_heavier_than_the_device_is_oom_under_resident_accounting(live_env, monkeypatch):
    """The worker's resident set (Python, torch, torchvision: ~690 MB here, ~300 MB of it file-backed) is
    measured unlimited, then the device is set between its anonymous part and its whole resident set."""
    import torch  # noqa: F401 - the libraries' pages are in the page cache, charged to this process's group

    from deploybench.live.profiler import profile

    free = profile(_request(live_env, device_mb=8192.0))
    assert free.status == "ok", free.error
    held = free.metrics["memory_device_peak_mb"]  # the worker tree's resident peak, runtime included
    assert free.metrics["memory_accounting"] == "rss+file" and held > free.metrics["memory_peak_mb"]
    assert free.metrics.get("memory_limit_decided_by") is None
    device = held - 60.0  # the runtime alone no longer fits
    m = profile(_request(live_env, device_mb=device))
    assert m.status == "crashed" and m.error["kind"] == "oom", m.error
    assert m.metrics["memory_accounting"] == "rss+file"
    assert m.metrics["memory_limit_decided_by"] in ("watchdog", m.metrics["memory_limit_mechanism"])
    assert "exceeded the device memory" in m.error["message"]
    if _CGROUP and held - 60.0 > 500.0:
        # the v2 accounting charged only what the worker brought into memory itself: it ran
        monkeypatch.setenv(ACCOUNTING_ENV, "charged")
        charged = profile(_request(live_env, device_mb=device))
        assert charged.status == "ok", charged.error
        assert charged.metrics["memory_accounting"] == "cgroup-charge"


@pytest.mark.live
def test_an_onnx_runtime_worker_holds_only_its_runtime_and_artefact(live_env):
    """The documented accuracy is looked up by the profiler: the measuring worker never imports torchvision
    (~680 MB resident), so what the device held is the worker's own high-water mark."""
    from deploybench.live.profiler import ProfileRequest, profile

    config = {**TINY, "backend": "onnxruntime", "graph_optimization": "all"}
    m = profile(ProfileRequest(config=config, device="cpu", warmup_min_iters=1, warmup_max_iters=2, min_iters=3,
                               max_iters=5, measure_time_s=0.0, time_limit_s=90, max_retries=0, memory_limit_mb=4096.0,
                               device_profile="edge", artefact_cache=str(live_env / "artefacts")))
    assert m.status == "ok", m.error
    worker_hwm = m.metrics["memory_baseline_mb"] + m.metrics["memory_peak_mb"]
    assert m.metrics["memory_device_peak_mb"] <= worker_hwm + 30.0
    assert m.metrics["accuracy_source"] == "documented_fp32" and m.metrics["accuracy_unknown"] == 0.0
