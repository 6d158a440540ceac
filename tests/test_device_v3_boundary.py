"""The memory boundary of a small-memory device (issue 29, step 3): configurations near it get repeats in
separate passes like those near a latency cap, P(oom) is reported with a Clopper-Pearson interval, and
replay serves the recorded repeats so an optimizer sees the flip. A fake profiler stands in for the live
one (nothing here runs a model)."""

from __future__ import annotations

import pytest

from deploybench import EvalContext, Status
from deploybench.device_tables.grid import DeploymentGrid
from deploybench.live.devices import device_profiles
from deploybench.live.profiler import Measurement
from deploybench.device_tables.recording import Recorder, near_memory_boundary, needs_repeats
from deploybench.device_tables.report import clopper_pearson, crash_dependence, memory_boundary, table_summary
from deploybench.device_tables.table import load_table
from deploybench.tasks.replay import ReplayTask

SMALL_MB = device_profiles()["small"].memory_mb
GRID = DeploymentGrid(models=("mobilenet_v2", "resnet18"), backends=("onnxruntime",), precisions=("fp32",),
                      batch_sizes=(1, 8), threads=(1,), memory_formats=(), graph_optimizations=("all",))
LOADED = {"import_s": 1.0, "load_s": 0.2}


def _ok(held: float) -> dict:
    return {"status": "ok", "metrics": {"memory_device_peak_mb": held}, "stages": LOADED}


def _oom(stages: dict) -> dict:
    return {"status": "crashed", "error": {"kind": "oom", "message": "x"}, "stages": stages}


def test_near_the_memory_boundary():
    assert near_memory_boundary(_ok(0.95 * SMALL_MB), SMALL_MB)
    assert not near_memory_boundary(_ok(0.5 * SMALL_MB), SMALL_MB)
    assert near_memory_boundary(_oom(LOADED), SMALL_MB)  # the runtime and the weights fit, the run did not
    assert not near_memory_boundary(_oom({"import_s": 1.0}), SMALL_MB)  # the runtime alone did not fit
    assert not near_memory_boundary(_ok(0.99 * SMALL_MB), None)  # no device memory, no boundary
    # disagreeing repeats keep a configuration in the later passes even far from the boundary
    assert needs_repeats([_ok(100.0), _oom({"import_s": 1.0})], [], SMALL_MB)
    assert not needs_repeats([_oom({"import_s": 1.0})] * 2, [], SMALL_MB)


class BoundaryProfiler:
    """mobilenet_v2 b1 holds 95 % of the device; b8 is oom after loading on odd calls and runs on even
    ones (a flip); resnet18 b1 holds half the device; b8 is oom while importing (far). Latency is far
    from every cap, so only memory can ask for repeats."""

    def __init__(self) -> None:
        self.requests: list = []

    def __call__(self, request):
        self.requests.append(request)
        c = request.config
        n = sum(1 for r in self.requests if r.config == c)
        lat = {"latency_p50_ms": 400.0, "latency_p95_ms": 400.0, "latency_p99_ms": 400.0, "memory_peak_mb": 60.0,
               "accuracy": 0.7, "accuracy_unknown": 0.0, "throughput_sps": 2.5}
        oom = {"kind": "oom", "message": "the measuring worker exceeded the device memory"}
        if (c["model"], c["batch_size"]) == ("mobilenet_v2", 1):
            return Measurement("ok", metrics={**lat, "memory_device_peak_mb": 0.95 * SMALL_MB}, cost_s=5.0,
                               stages=LOADED, latencies_ms=(400.0,) * 3)
        if (c["model"], c["batch_size"]) == ("mobilenet_v2", 8):
            if n % 2:
                return Measurement("crashed", error=oom, cost_s=3.0, stages=LOADED)
            return Measurement("ok", metrics={**lat, "memory_device_peak_mb": 0.98 * SMALL_MB}, cost_s=5.0,
                               stages=LOADED, latencies_ms=(400.0,) * 3)
        if c["batch_size"] == 1:
            return Measurement("ok", metrics={**lat, "memory_device_peak_mb": 0.5 * SMALL_MB}, cost_s=5.0,
                               stages=LOADED, latencies_ms=(400.0,) * 3)
        return Measurement("crashed", error=oom, cost_s=1.0, stages={"import_s": 1.0})


@pytest.mark.slow
def test_the_memory_boundary_gets_repeats_p_oom_and_replay_shows_the_flip(tmp_path):
    fake = BoundaryProfiler()
    out = tmp_path / "small.jsonl"
    Recorder(GRID, out, profile_fn=fake, device_profile="small").run(on_line=lambda line: None)
    counts: dict = {}
    for r in fake.requests:
        ident = (r.config["model"], r.config["batch_size"])
        counts[ident] = counts.get(ident, 0) + 1
        assert r.memory_limit_mb == SMALL_MB and r.trial_time_limit_s == device_profiles()["small"].trial_time_limit_s
    assert counts == {("mobilenet_v2", 1): 5, ("mobilenet_v2", 8): 5, ("resnet18", 1): 1, ("resnet18", 8): 1}

    table = load_table(out)
    assert table.provenance["trial_time_limit_s"] == device_profiles()["small"].trial_time_limit_s
    assert table.provenance["memory_accounting"] == "rss+file" and "device memory" in table.provenance["repeats_policy"]
    boundary = memory_boundary(table)
    assert boundary["device_mb"] == SMALL_MB and boundary["configs_near_boundary"] == 2
    (flip,) = boundary["flipping"]
    assert flip["config"]["model"] == "mobilenet_v2" and flip["config"]["batch_size"] == 8
    assert (flip["oom"], flip["repeats"]) == (3, 5)  # calls 1, 3, 5 were oom
    assert flip["ci95"] == [round(v, 3) for v in clopper_pearson(3, 5)]
    # resnet18 runs at batch 1 and is oom at 8 in every repeat: batch-dependent, not a lookup on the triple;
    # mobilenet_v2 at 8 is oom in 3 of 5 repeats (P(oom) >= 0.5): batch-dependent too
    dep = crash_dependence(table)
    assert dep["crashed_configurations"] == 1 and dep["decided_by_triple"] == 0
    assert [(t["model"], t["runs_at_batch"], t["oom_at_batch"]) for t in dep["batch_dependent_oom_triples"]] == [
        ("mobilenet_v2", [1], [8]), ("resnet18", [1], [8])]
    assert table_summary(table)["memory_boundary"]["configs_flipping"] == 1

    task = ReplayTask("server_throughput", table, str(out))
    flip_config = dict(flip["config"])
    statuses = {task.evaluate(flip_config, EvalContext(seed=seed, trial=trial)).status
                for seed in range(4) for trial in range(10)}
    assert Status.CRASHED in statuses and statuses - {Status.CRASHED}  # an optimizer sees both verdicts


def test_a_partly_recorded_triple_does_not_count_as_a_lookup(tmp_path):
    """Only batch 8 recorded (every configuration oom there): whether the triple decides the crash is not
    known until batch 1 is measured."""
    out = tmp_path / "part.jsonl"
    Recorder(GRID, out, profile_fn=BoundaryProfiler(), device_profile="small", only={"batch_size": [8]},
             repeats_near_cap=1).run(on_line=lambda line: None)
    dep = crash_dependence(load_table(out))
    assert dep["crashed_configurations"] == 0 and dep["decided_by_triple_share"] is None
    assert dep["crashed_in_incomplete_triples"] == 2  # mobilenet_v2 and resnet18 at batch 8, first call oom
