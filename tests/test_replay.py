"""Replay targets and recorded tables: determinism, recorded noise, costs, the grid, ground truth,
provenance, and a tiny table made by the real recorder on this CPU and replayed through the CLI."""

from __future__ import annotations

import json

import pytest

from deploybench import EvalContext, InvalidConfigError, Status
from deploybench.cli.record import table_space
from deploybench.results import read_case_file
from deploybench.tables import ground_truth, load_table
from deploybench.tasks.deployment import get_scenario
from deploybench.tasks.replay import ReplayTask


def _measurement(p95, status="ok", acc=0.72, cost=5.0):
    if status == "crashed":
        return {"format": 1, "status": "crashed", "metrics": {}, "error": {"kind": "unsupported", "message": "no fp16"},
                "cost_s": cost, "stages": {}, "info": {}}
    metrics = {"latency_p50_ms": p95 * 0.9, "latency_p95_ms": p95, "latency_p99_ms": p95 * 1.05,
               "memory_peak_mb": 100.0, "throughput_sps": 1000.0 / p95, "accuracy": acc}
    return {"format": 1, "status": status, "metrics": metrics, "error": None, "cost_s": cost,
            "stages": {"measure_s": 2.0, "accuracy_s": 0.0}, "info": {}}


@pytest.fixture
def table_path(tmp_path):
    space = table_space(["mobilenet_v2", "resnet18"], ["pytorch_eager"], ["fp32", "fp16"], [1, 8], [2])
    header = {"type": "table", "format_version": 1, "name": "fake", "space": space.to_json(),
              "space_signature": space.signature(),
              "provenance": {"device": "cpu", "device_name": "test CPU", "date": "2026-01-01", "profiler_version": "1"}}
    repeats = {  # (model, precision, batch) -> measurements
        ("mobilenet_v2", "fp32", 1): [_measurement(15.0), _measurement(22.0), _measurement(25.0)],  # noisy near the cap
        ("mobilenet_v2", "fp32", 8): [_measurement(90.0)],
        ("mobilenet_v2", "fp16", 1): [_measurement(0, "crashed")],
        ("mobilenet_v2", "fp16", 8): [_measurement(0, "crashed")],
        ("resnet18", "fp32", 1): [_measurement(12.0, acc=0.6976), _measurement(13.0, acc=0.6976)],
        ("resnet18", "fp32", 8): [_measurement(400.0, acc=0.6976, cost=9.0)],  # > 5 x 20 ms: early stop on replay
        ("resnet18", "fp16", 1): [_measurement(0, "crashed")],
        ("resnet18", "fp16", 8): [_measurement(0, "crashed")],
    }
    path = tmp_path / "fake.jsonl"
    with open(path, "w") as fh:
        fh.write(json.dumps(header) + "\n")
        for (model, prec, bs), ms in repeats.items():
            config = {"model": model, "backend": "pytorch_eager", "precision": prec, "batch_size": bs, "threads": 2}
            for i, m in enumerate(ms):
                fh.write(json.dumps({"type": "measurement", "key": space.key(config), "config": config, "repeat": i,
                                     "measurement": m}) + "\n")
        fh.write('{"type": "measurement", "key": "tor')  # a torn last line from a killed recording
    return path


def _task(path):
    return ReplayTask("edge_tight", load_table(path), str(path))


def test_replay_is_deterministic_per_seed_and_shows_recorded_noise(table_path):
    task = _task(table_path)
    config = {"model": "mobilenet_v2", "backend": "pytorch_eager", "precision": "fp32", "batch_size": 1, "threads": 2}
    a = [task.evaluate(config, EvalContext(seed=3, trial=t)) for t in range(10)]
    b = [task.evaluate(config, EvalContext(seed=3, trial=t)) for t in range(10)]
    assert a == b
    seen = {task.evaluate(config, EvalContext(seed=s, trial=0)).metrics["latency_p95_ms"] for s in range(40)}
    assert seen == {15.0, 22.0, 25.0}
    statuses = {task.evaluate(config, EvalContext(seed=s, trial=0)).status for s in range(40)}
    assert statuses == {Status.OK, Status.INFEASIBLE}  # feasibility is stochastic near the cap


def test_costs_crashes_early_stops_and_the_grid(table_path):
    task = _task(table_path)
    crash = task.evaluate({"model": "resnet18", "backend": "pytorch_eager", "precision": "fp16", "batch_size": 1, "threads": 2})
    assert crash.status is Status.CRASHED and crash.error.kind.value == "unsupported" and crash.cost_s == 5.0
    slow = {"model": "resnet18", "backend": "pytorch_eager", "precision": "fp32", "batch_size": 8, "threads": 2}
    stopped = task.evaluate(slow)
    assert stopped.early_stopped and stopped.status is Status.INFEASIBLE
    assert stopped.cost_s == pytest.approx(9.0 - 2.0 + 3 * 0.36)  # charged up to the abort
    with pytest.raises(InvalidConfigError, match="batch_size"):
        task.space.validate({**slow, "batch_size": 4})  # off the recorded grid
    with pytest.raises(InvalidConfigError, match="threads"):
        task.space.validate({**slow, "threads": 4})


def test_ground_truth_and_provenance(table_path):
    table = load_table(table_path)
    assert table.provenance["device_name"] == "test CPU" and table.coverage() == (8, 8)
    assert any("unreadable line" in p for p in table.problems)
    truth = ground_truth(table, get_scenario("edge_tight"))
    assert truth.best_config["model"] == "resnet18" and truth.optimum == pytest.approx(0.6976)
    mob = table.space.key({"model": "mobilenet_v2", "backend": "pytorch_eager", "precision": "fp32", "batch_size": 1, "threads": 2})
    # the more accurate mobilenet_v2 is feasible in only 1 of 3 repeats: not the optimum (rule: p >= 0.5)
    assert truth.configs[mob].p_feasible == pytest.approx(1 / 3)
    task = _task(table_path)
    assert task.metadata.known_optimum == pytest.approx(0.6976) and task.metadata.best_family == "resnet18"
    assert "test CPU" in task.metadata.extra["header"] and "2026-01-01" in task.metadata.extra["header"]


@pytest.mark.live
def test_real_recorder_then_replay_through_the_cli(run_cli, tmp_path):
    table = tmp_path / "tiny.jsonl"
    rec = run_cli("record", "--out", str(table), "--models", "mobilenet_v2", "--backends", "pytorch_eager",
                  "--precisions", "fp32", "--batch-sizes", "1,2", "--threads", "1", "--repeats", "1", "--device", "cpu",
                  "--weights", "random", timeout=600)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert "covers 2/2 configurations" in rec.stdout
    again = run_cli("record", "--out", str(table), "--models", "mobilenet_v2", "--backends", "pytorch_eager",
                    "--precisions", "fp32", "--batch-sizes", "1,2", "--threads", "1", "--repeats", "1", "--device", "cpu",
                    "--weights", "random", timeout=600)
    assert "recorded 0 new measurements" in again.stdout  # resumable: nothing measured twice
    loaded = load_table(table)
    for reps in loaded.measurements.values():
        m = reps[0]
        assert m["status"] in ("ok", "early_stopped") and m["cost_s"] > 0
        assert m["metrics"]["memory_peak_mb"] > 0 and m["metrics"]["device_executed"] == "cpu"
    assert loaded.provenance["versions"]["torch"]
    info = run_cli("table", "info", str(table))
    assert info.returncode == 0 and "2/2 configurations" in info.stdout
    out = tmp_path / "res"
    run = run_cli("run", "-o", "random", "-t", f"edge_tight[{table}]", "--budget", "2", "--seeds", "2", "--out", str(out))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "replaying table" in run.stdout
    files = list(out.rglob("seed_*.jsonl"))
    assert len(files) == 2 and all(read_case_file(f).completed for f in files)
