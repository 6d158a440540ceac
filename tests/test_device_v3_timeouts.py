"""Timeouts that are real (issue 29, step 2): the device profile's per-trial limit covers preparation,
compilation and measurement; past it the trial is stopped, ``timeout`` at the time it was stopped, and
charged that time. Workers run the test-only ``tiny_cnn``."""

from __future__ import annotations

import dataclasses
import os

import pytest

from deploybench.live.devices import DeviceProfile, device_profiles
from deploybench.live.profiler import ProfileRequest, profile

TINY = {"model": "tiny_cnn", "backend": "pytorch_eager", "precision": "fp32", "batch_size": 1, "threads": 1}


def test_the_small_profile_has_a_trial_limit_and_requests_inherit_it():
    small = device_profiles()["small"]
    assert small.trial_time_limit_s is not None and small.trial_time_limit_s > 0
    assert small.memory_mb is not None and small.max_threads <= 4 and small.stands_for
    assert ProfileRequest(config=TINY, device_profile="small").trial_limit_s() == small.trial_time_limit_s
    assert ProfileRequest(config=TINY, device_profile="small", trial_time_limit_s=7.0).trial_limit_s() == 7.0
    assert ProfileRequest(config=TINY, device_profile="edge").trial_limit_s() is None
    assert DeviceProfile.from_json(small.to_json()) == small


def test_a_non_positive_trial_limit_is_refused():
    with pytest.raises(ValueError, match="trial_time_limit_s must be positive"):
        ProfileRequest(config=TINY, trial_time_limit_s=0)


@pytest.fixture
def live_env(monkeypatch, tmp_path):
    monkeypatch.setenv("DEPLOYBENCH_TESTING", "1")
    monkeypatch.setenv("DEPLOYBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DEPLOYBENCH_MAX_OTHER_CORES", str((os.cpu_count() or 1) + 1))
    return tmp_path


def _fast(tmp_path, **kw) -> ProfileRequest:
    base = dict(config=TINY, device="cpu", warmup_min_iters=1, warmup_max_iters=2, min_iters=3, max_iters=5,
                measure_time_s=0.0, time_limit_s=90, max_retries=0, artefact_cache=str(tmp_path / "artefacts"))
    base.update(kw)
    return ProfileRequest(**base)


@pytest.mark.slow
@pytest.mark.live
def test_a_trial_past_the_device_limit_is_a_timeout_charged_at_the_stop(live_env):
    from deploybench.outcome import ErrorKind, Status
    from deploybench.tasks.deployment import LiveTask, measurement_to_outcome

    ok = profile(_fast(live_env))  # prepares the artefact into the cache and measures it
    assert ok.status == "ok", ok.error
    prep_s = ok.stages["prepare_s"]
    limit = prep_s + 3.0  # preparation fits; a measuring worker that hangs does not
    hung = profile(dataclasses.replace(_fast(live_env, trial_time_limit_s=limit), _debug_action="hang"))
    assert hung.status == "timeout" and hung.error["kind"] == "timeout", hung.error
    assert "per-trial limit" in hung.error["message"] and "while measuring" in hung.error["message"]
    assert hung.metrics["trial_time_limit_s"] == limit
    assert hung.metrics["timeout_at_s"] >= limit and hung.cost_s == pytest.approx(hung.metrics["timeout_at_s"], abs=1e-3)
    assert hung.stages["prepare_s"] == pytest.approx(prep_s, abs=1e-3)  # the cached preparation is charged
    outcome = measurement_to_outcome(LiveTask("edge_tight", models=("tiny_cnn",)), hung)
    assert outcome.status is Status.TIMEOUT and outcome.error.kind is ErrorKind.TIMEOUT
    assert outcome.cost_s >= limit


@pytest.mark.slow
@pytest.mark.live
def test_a_preparation_longer_than_the_limit_is_a_timeout_even_from_the_cache(live_env):
    first = profile(_fast(live_env))
    assert first.status == "ok", first.error
    limit = first.stages["prepare_s"] / 2  # the recorded preparation alone is past it
    m = profile(_fast(live_env, trial_time_limit_s=limit))
    assert m.status == "timeout" and "while preparing the artefact" in m.error["message"]
    assert m.cost_s == pytest.approx(limit, abs=1e-3) and m.metrics["timeout_at_s"] == pytest.approx(limit, abs=1e-3)
    assert m.latencies_ms == () and "latency_p95_ms" not in m.metrics


@pytest.mark.slow
@pytest.mark.live
def test_a_hung_preparation_is_stopped_at_the_trial_limit(live_env):
    m = profile(dataclasses.replace(_fast(live_env, trial_time_limit_s=3.0, artefact_cache=None),
                                    _debug_prepare="hang"))
    assert m.status == "timeout" and m.error["kind"] == "timeout"
    assert "per-trial limit of 3 s" in m.error["message"] and m.cost_s == pytest.approx(3.0, abs=1e-3)
