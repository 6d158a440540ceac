"""The contention guard: the CPU time other processes use during a measurement is read from the
measurement window itself; a disturbed measurement is redone (bounded retries), is never judged for an
early stop, and is marked ``contaminated`` when the disturbance outlasts every retry.

The live tests inject real busy processes (``while True: pass``, one per core) beside a tiny model."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from deploybench.live import contention
from deploybench.live.contention import DEFAULT_MAX_OTHER_CORES, MAX_OTHER_CORES_ENV, ContentionReading, CpuWindow
from deploybench.live.profiler import ProfileRequest, profile
from deploybench.live.timing import TimingPlan, run_timed
from deploybench.tasks.deployment import LiveTask, measurement_to_outcome

TINY = {"model": "tiny_cnn", "backend": "pytorch_eager", "precision": "fp32", "batch_size": 1, "threads": 1}


# -- the reading ------------------------------------------------------------------------------------------------
def test_other_cores_are_the_machine_busy_time_minus_our_own(monkeypatch):
    clock, busy, own = [10.0], [500.0], [3.0]
    monkeypatch.setattr(contention, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    monkeypatch.setattr(contention, "system_busy_seconds", lambda: busy[0])
    monkeypatch.setattr(contention, "_own_cpu_seconds", lambda: own[0])
    window = CpuWindow(threshold=0.15)
    clock[0] += 2.0
    busy[0] += 2.0 + 1.2  # 2 s of ours, 1.2 s of other work in a 2 s window
    own[0] += 2.0
    reading = window.reading()
    slack = (os.cpu_count() or 1) / contention._TICKS  # one clock tick per CPU of rounding
    assert reading.other_cores == pytest.approx((1.2 - slack) / 2.0)
    assert reading.contaminated and reading.to_dict()["contaminated"] is True
    quiet = CpuWindow(threshold=0.15)  # a quiet machine: everything busy in the window was ours
    clock[0] += 2.0
    busy[0] += 2.0
    own[0] += 2.0
    assert quiet.reading().other_cores == 0.0 and not quiet.reading().contaminated
    monkeypatch.setattr(contention, "system_busy_seconds", lambda: None)  # no /proc/stat: unknown, not clean
    assert window.reading() is None


def test_the_threshold_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(MAX_OTHER_CORES_ENV, "0.4")
    assert contention.max_other_cores() == 0.4 and CpuWindow().threshold == 0.4
    assert CpuWindow(threshold=0.05).threshold == 0.05  # a request's own threshold wins
    monkeypatch.setenv(MAX_OTHER_CORES_ENV, "lots")
    assert contention.max_other_cores() == DEFAULT_MAX_OTHER_CORES
    reading = ContentionReading(window_s=1.0, system_busy_s=1.1, own_cpu_s=1.0, other_cores=0.1, threshold=0.15)
    assert not reading.contaminated


def test_an_early_stop_is_never_decided_on_a_disturbed_window():
    plan = TimingPlan(warmup_min_iters=1, warmup_max_iters=1, warmup_time_s=0, min_iters=20, max_iters=20,
                      measure_time_s=0, early_stop_ms=100.0, early_stop_min_iters=3)
    vetoed = run_timed(lambda: None, lambda step: 500.0, plan, disturbed=lambda: True)
    assert vetoed.disturbed and not vetoed.early_stopped and len(vetoed.latencies_ms) == 3
    clean = run_timed(lambda: None, lambda step: 500.0, plan, disturbed=lambda: False)
    assert clean.early_stopped and not clean.disturbed and clean.early_stop_estimate_ms == 500.0


# -- live: a busy machine ----------------------------------------------------------------------------------------
def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.fixture
def busy_machine():
    """One process spinning on the CPU per core, running until the test ends."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        deadline = time.monotonic() + 60.0
        while not all(_cpu_ticks(p.pid) > 0 for p in procs):  # every spinner is running
            assert time.monotonic() < deadline, "the busy processes never started"
            time.sleep(0.05)
        yield procs
    finally:
        for p in procs:
            p.kill()
            p.wait()


@pytest.fixture
def live_env(monkeypatch, tmp_path):
    monkeypatch.setenv("DEPLOYBENCH_TESTING", "1")
    monkeypatch.setenv("DEPLOYBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(MAX_OTHER_CORES_ENV, raising=False)
    return tmp_path


def _request(tmp_path, **kw) -> ProfileRequest:
    """A measurement window of ~1.5 s (0.5 s warm-up, 1 s timed), long enough to read other work in it."""
    base = dict(config=TINY, device="cpu", warmup_min_iters=1, warmup_max_iters=10**6, warmup_time_s=0.5,
                min_iters=3, max_iters=10**6, measure_time_s=1.0, time_limit_s=120, quiet_wait_s=1.0,
                artefact_cache=str(tmp_path / "artefacts"))
    base.update(kw)
    return ProfileRequest(**base)


@LINUX
@pytest.mark.live
def test_a_disturbed_measurement_is_redone_then_marked_contaminated(live_env, busy_machine):
    m = profile(_request(live_env, max_other_cores=0.05, max_retries=1))
    assert m.status == "ok", m.error
    assert m.attempts == 2 and m.contaminated  # redone once; the load persisted
    assert m.metrics["contention"]["other_cores"] > 0.05 and m.metrics["contention"]["contaminated"]
    assert m.stages["redone_s"] > 0  # the disturbed attempt's time is kept apart
    outcome = measurement_to_outcome(LiveTask("server_throughput", models=("tiny_cnn",)), m)
    assert outcome.metrics["measurement_attempts"] == 2 and outcome.metrics["contaminated"] is True
    # the same load below the threshold: measured once, clean
    calm = profile(_request(live_env, max_other_cores=float((os.cpu_count() or 1) + 1), max_retries=1))
    assert calm.status == "ok" and calm.attempts == 1 and not calm.contaminated


@LINUX
@pytest.mark.live
def test_no_early_stop_on_a_disturbed_window(live_env, busy_machine):
    # a cap every configuration misses: on a quiet machine this stops after 3 timed iterations
    m = profile(_request(live_env, latency_cap_ms=1e-4, max_other_cores=0.05, max_retries=1))
    assert m.status == "ok", m.error  # the first attempt's early stop was vetoed, the last one measured in full
    assert m.attempts == 2 and m.contaminated and len(m.latencies_ms) > 3
    assert m.metrics["early_stop_threshold_ms"] is None and "early_stop_estimate_ms" not in m.metrics
    outcome = measurement_to_outcome(LiveTask("edge_tight", models=("tiny_cnn",)), m)
    assert not outcome.early_stopped and outcome.metrics["contaminated"] is True  # judged on what it measured


class _FakeMachine:
    """A clock and the counters BurstGuard reads, advanced by hand (seconds)."""

    def __init__(self) -> None:
        self.t = 0.0
        self.own = self.busy = self.wait = 0.0

    def run(self, seconds: float, wait_rate: float, other_cores: float = 0.0) -> None:
        self.t += seconds
        self.own += seconds  # the measured process is busy throughout
        self.busy += seconds * (1.0 + other_cores)
        self.wait += seconds * wait_rate


def _guard_on(machine: _FakeMachine, monkeypatch) -> contention.BurstGuard:
    monkeypatch.setattr(contention.time, "perf_counter", lambda: machine.t)
    monkeypatch.setattr(contention, "_proc_stat_busy_steal", lambda: (machine.busy, 0.0))
    monkeypatch.setattr(contention, "_own_cpu_seconds", lambda: machine.own)
    monkeypatch.setattr(contention, "_own_run_delay_s", lambda: machine.wait)
    return contention.BurstGuard(threshold_cores=0.5)


def _timed_run(machine, guard, extra_wait_at: int | None = None) -> dict:
    for i in range(300):
        slow = i % 20 == 0 or i == extra_wait_at
        latency_s = 0.00015 if slow else 0.0001  # a sub-millisecond model; one iteration in 20 is slow
        wait_rate = 0.6  # threads waiting for each other all the time (every core used)
        if i == extra_wait_at:  # something else ran (1.5 cores for 20 ms): the threads waited 20 ms more
            machine.run(0.02, wait_rate=1.0 + wait_rate, other_cores=1.5)
            latency_s += 0.02
        else:
            machine.run(latency_s, wait_rate)
        guard.iteration(latency_s * 1e3)
        machine.run(0.011, wait_rate)  # between iterations, past the snapshot interval
    return guard.verdict()


def test_a_configuration_waiting_on_its_own_threads_is_not_a_burst(monkeypatch):
    machine = _FakeMachine()
    verdict = _timed_run(machine, _guard_on(machine, monkeypatch))
    assert verdict["outliers"] > 0 and not verdict["disturbed"], verdict
    assert verdict["wait_share"] >= 0.25  # it waits a lot, but no more during its slow iterations than always


def test_waiting_above_the_runs_own_rate_during_a_tail_iteration_is_a_burst(monkeypatch):
    machine = _FakeMachine()
    verdict = _timed_run(machine, _guard_on(machine, monkeypatch), extra_wait_at=150)
    assert verdict["disturbed"] and "waited for a CPU" in verdict["reason"], verdict
