"""Probe and cross-device simulator levels of replayed deployment scenarios, on small format-2 tables
built here in the shape the v2 recorder writes (per-iteration ``latencies_ms`` and per-stage ``stages``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deploybench import EvalContext, OptimizerContext, Status
from deploybench.fidelity import split_suggestion
from deploybench.device_tables.table import TableError, grid_space, load_table
from deploybench.tasks.replay_fidelity import (PROBE_ITERS, MultiFidelityReplayTask, probe_measurement,
                                               wide_scenario)
from deploybench.testing import check_task

BASE_MS = {"mobilenet_v2": 6.0, "resnet18": 12.0}
ACCURACY = {"mobilenet_v2": 0.71878, "resnet18": 0.69758}
#: a configuration whose run slows down after the first iterations (thermal throttling): a probe of
#: its first 10 iterations says p95 < 20 ms, the whole run says more
DRIFTING = {"model": "resnet18", "backend": "onnxruntime", "precision": "fp32", "batch_size": 1, "threads": 2,
            "graph_optimization": "all"}


def _space():
    return grid_space(["mobilenet_v2", "resnet18"], ["pytorch_eager", "onnxruntime"], ["fp32", "fp16"], [1, 4], [1, 2],
                      memory_formats=["contiguous", "channels_last"], graph_optimizations=["basic", "all"])


def _latencies(config, factor, rng):
    ms = BASE_MS[config["model"]] * factor * (3.2 if config["batch_size"] == 4 else 1.0)
    ms *= 0.8 if config["backend"] == "onnxruntime" else 1.0
    ms *= 0.6 if config["threads"] == 2 else 1.0
    ms *= 0.9 if config.get("memory_format") == "channels_last" else 1.0
    ms *= 1.1 if config.get("graph_optimization") == "basic" else 1.0
    lat = ms * np.exp(rng.normal(0.0, 0.04, 100))
    if config == DRIFTING and factor == 1.0:
        lat = np.concatenate([np.full(10, 17.0), np.full(90, 24.0)]) * np.exp(rng.normal(0.0, 0.01, 100))
    return [round(float(v), 4) for v in lat]


def _measurement(config, factor, rng):
    stages = {"prepare_s": round(3.0 + rng.random(), 4)}
    if config["precision"] == "fp16" and config["backend"] == "pytorch_eager":
        return {"format": 2, "status": "crashed", "metrics": {"param_mb": 44.6}, "cost_s": stages["prepare_s"],
                "stages": stages, "error": {"kind": "unsupported", "message": "no fp16 kernels on this CPU"},
                "info": {}, "latencies_ms": [], "contaminated": False, "attempts": 1}
    lat = _latencies(config, factor, rng)
    batch = config["batch_size"]
    stages.update(spawn_teardown_s=0.95, import_s=0.03, load_s=0.15, warmup_s=0.5, measure_s=round(sum(lat) / 1000, 4),
                  accuracy_s=2.1)
    p = {q: float(np.percentile(lat, q)) for q in (50, 95, 99)}
    metrics = {"latency_p50_ms": p[50], "latency_p95_ms": p[95], "latency_p99_ms": p[99],
               "latency_mean_ms": float(np.mean(lat)), "latency_min_ms": min(lat),
               "latency_p50_ms_per_sample": p[50] / batch, "latency_p95_ms_per_sample": p[95] / batch,
               "latency_p99_ms_per_sample": p[99] / batch, "latency_mean_ms_per_sample": float(np.mean(lat)) / batch,
               "throughput_sps": 1000.0 * batch / float(np.mean(lat)),
               "memory_peak_mb": (80.0 if config["model"] == "mobilenet_v2" else 160.0) * (1 + 0.1 * batch),
               "accuracy": ACCURACY[config["model"]], "accuracy_unknown": 0.0, "accuracy_source": "documented_fp32",
               "n_timed_iters": 100}
    return {"format": 2, "status": "ok", "metrics": metrics, "cost_s": round(sum(stages.values()), 4),
            "stages": stages, "error": None, "info": {}, "latencies_ms": lat, "contaminated": False, "attempts": 1}


def _table(path, device, factor, repeats=2, fmt=2):
    space = _space()
    rng = np.random.default_rng(int(factor * 100))
    header = {"type": "table", "format_version": fmt, "name": device, "space": space.to_json(),
              "space_signature": space.signature(),
              "provenance": {"device": device, "device_name": f"test {device}", "date": "2026-12-01"}}
    with open(path, "w") as fh:
        fh.write(json.dumps(header) + "\n")
        for config in space.grid():
            for r in range(repeats):
                m = _measurement(config, factor, rng)
                if fmt == 1:
                    m = {k: v for k, v in m.items() if k != "latencies_ms"}
                    m["format"] = 1
                fh.write(json.dumps({"type": "measurement", "key": space.key(config), "config": config, "repeat": r,
                                     "measurement": m}) + "\n")
    return load_table(path)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("tables")
    return _table(root / "cpu.jsonl", "cpu", 1.0), _table(root / "edge.jsonl", "edge", 1.8)


@pytest.fixture(scope="module")
def task(tables):
    cpu, edge = tables
    return MultiFidelityReplayTask(wide_scenario(), cpu, str(cpu.path), source=edge)


def test_a_probe_keeps_the_first_iterations_and_charges_the_recorded_stages(tables):
    cpu, _ = tables
    key = cpu.space.key(DRIFTING)
    full = cpu.repeats(key)[0]
    probe = probe_measurement(full)
    first = full["latencies_ms"][:PROBE_ITERS]
    assert probe["latencies_ms"] == first and probe["metrics"]["latency_p95_ms"] == pytest.approx(np.percentile(first, 95))
    stages = full["stages"]
    expected = sum(stages[k] for k in ("prepare_s", "spawn_teardown_s", "import_s", "load_s", "warmup_s")) + sum(first) / 1000
    assert probe["cost_s"] == pytest.approx(expected) and probe["cost_s"] < full["cost_s"]
    assert "accuracy_s" not in probe["stages"] and probe["metrics"]["accuracy"] == full["metrics"]["accuracy"]
    crash = next(m for reps in cpu.measurements.values() for m in reps if m["status"] == "crashed")
    assert probe_measurement(crash) == crash


def test_the_probe_level_needs_per_iteration_timings(tmp_path, tables):
    old = _table(tmp_path / "old.jsonl", "old", 1.0, repeats=1, fmt=1)
    with pytest.raises(TableError, match="no per-iteration timings .format 1.; the probe level needs a table of format 2"):
        MultiFidelityReplayTask(wide_scenario(), old, str(old.path))


def test_the_multi_fidelity_replay_passes_the_task_and_fidelity_checks(task):
    assert [f.name for f in task.fidelities] == ["sim:edge", "probe", "full"]
    assert task.default_budget_seconds == 300.0
    check_task(task, n=64)


def test_probe_and_full_disagree_where_the_recording_does(task):
    ctx = EvalContext(seed=0, trial=0)
    probe, full = task.evaluate_at(DRIFTING, "probe", ctx), task.evaluate_at(DRIFTING, "full", ctx)
    assert probe.status is Status.OK and full.status is Status.INFEASIBLE
    assert probe.metrics["latency_p95_ms"] < 20.0 < full.metrics["latency_p95_ms"]
    assert probe.cost_s < full.cost_s


def test_the_simulator_transfers_from_another_device(task, tables):
    cpu, _ = tables
    predicted, measured = [], []
    for key in cpu.grid_keys():
        config = cpu.configs[key]
        sim = task.evaluate_at(config, "sim:edge", EvalContext(seed=0, trial=0))
        assert sim.predicted and sim.cost_s == pytest.approx(0.01)
        reps = [m for m in cpu.repeats(key) if m["status"] == "ok"]
        if config["precision"] == "fp16" and config["backend"] == "pytorch_eager":
            assert sim.failed and sim.error.kind.value == "unsupported"  # crashed in every repeat on edge
        elif reps:
            predicted.append(sim.metrics["latency_p50_ms"])
            measured.append(np.median([m["metrics"]["latency_p50_ms"] for m in reps]))
    rank = np.corrcoef(np.argsort(np.argsort(predicted)), np.argsort(np.argsort(measured)))[0, 1]
    assert rank > 0.9  # the ordering transfers ...
    ratio = np.median(np.array(predicted) / np.array(measured))
    assert 1.5 < ratio < 2.1  # ... the scale does not: the edge device is 1.8x slower


def test_the_simulator_is_part_of_the_task_identity(tables, tmp_path):
    cpu, edge = tables
    other = _table(tmp_path / "edge2.jsonl", "edge", 2.5, repeats=1)
    a = MultiFidelityReplayTask(wide_scenario(), cpu, str(cpu.path), source=edge)
    b = MultiFidelityReplayTask(wide_scenario(), cpu, str(cpu.path), source=other)
    c = MultiFidelityReplayTask(wide_scenario(), cpu, str(cpu.path))
    assert len({a.signature(), b.signature(), c.signature()}) == 3
    assert [f.name for f in c.fidelities] == ["probe", "full"]


def test_scout_runs_on_the_wide_scenario_under_a_seconds_budget(task):
    from deploybench_optimizers.scout import Scout

    opt = Scout(OptimizerContext.for_task(task, budget=200, seed=0))
    cost, levels, found = 0.0, set(), []
    for i in range(200):
        if cost >= task.default_budget_seconds:
            break
        config, level = split_suggestion(opt.ask())
        task.space.validate(config)
        o = task.evaluate_at(config, level, EvalContext(seed=0, trial=i))
        opt.tell(config, o)
        cost += o.cost_s
        levels.add(level)
        if o.counts_as_found:
            found.append(o.objective)
    assert {"probe", "full"} <= levels and found
    assert max(found) == pytest.approx(max(ACCURACY.values()))  # the most accurate model fits the caps here


def _ship(monkeypatch, directory):
    import deploybench.device_tables.table as tables_module

    monkeypatch.setattr(tables_module, "shipped_tables_dir", lambda: directory)


def test_edge_wide_is_registered_on_the_shipped_per_iteration_tables(tmp_path, monkeypatch):
    from deploybench.plugins import create_plugin_manager

    _table(tmp_path / "cpu.jsonl", "cpu", 1.0, repeats=1)
    _table(tmp_path / "edge.jsonl", "edge", 1.8, repeats=1)
    _table(tmp_path / "old.jsonl", "old", 1.0, repeats=1, fmt=1)
    _ship(monkeypatch, tmp_path)
    spec = create_plugin_manager().get_task_spec("edge_wide")
    assert spec.targets == ("edge", "cpu") and spec.default_target == "edge"  # format 1 has no probe level
    on_edge, on_cpu = spec.build("edge"), spec.build("cpu")
    assert [f.name for f in on_edge.fidelities] == ["sim:cpu", "probe", "full"]  # fitted on the other device
    assert [f.name for f in on_cpu.fidelities] == ["sim:edge", "probe", "full"]
    assert on_edge.default_budget_seconds == pytest.approx(300.0)


def test_edge_wide_is_absent_without_a_per_iteration_table(tmp_path, monkeypatch):
    from deploybench.plugins import create_plugin_manager

    _table(tmp_path / "old.jsonl", "old", 1.0, repeats=1, fmt=1)
    _ship(monkeypatch, tmp_path)
    pm = create_plugin_manager()
    assert "edge_tight" in pm.task_specs() and "edge_wide" not in pm.task_specs()


def test_edge_wide_alone_has_no_simulator(tmp_path, monkeypatch):
    from deploybench.plugins import create_plugin_manager

    _table(tmp_path / "cpu.jsonl", "cpu", 1.0, repeats=1)
    _ship(monkeypatch, tmp_path)
    task = create_plugin_manager().get_task_spec("edge_wide").build()
    assert [f.name for f in task.fidelities] == ["probe", "full"]
