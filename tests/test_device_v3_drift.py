"""Drift measured and carried (issue 29, step 5): a speed reference workload before every pass of every
recording run, its level per pass in ``table info``, and ``table drift``'s ratios of today's latency to the
recorded one, raw and corrected by the levels. Fakes stand in for the profiler except where marked live."""

from __future__ import annotations

import json

import pytest

from deploybench.device_tables.grid import DeploymentGrid
from deploybench.live.drift import (REFERENCE_VERSION, drift_check, pass_levels, reference_median,
                                    reference_workload, speed_level)
from deploybench.live.profiler import Measurement
from deploybench.device_tables.recording import Recorder
from deploybench.device_tables.table import grid_space, load_table

GRID = DeploymentGrid(models=("mobilenet_v2", "resnet18"), backends=("onnxruntime",), precisions=("fp32",),
                      batch_sizes=(1,), threads=(1,), memory_formats=(), graph_optimizations=("all",))


def _ref(gemm: float, py: float, at: int = 1_800_000_000) -> dict:
    return {"version": REFERENCE_VERSION, "gemm_ms": gemm, "python_ms": py, "at": at, "other_cores": 0.0}


def test_speed_level_is_the_geometric_mean_of_the_ratios():
    base = reference_median([_ref(1.0, 2.0), _ref(1.2, 2.4), _ref(1.1, 2.2), {"version": 0, "gemm_ms": 9}])
    assert base == {"gemm_ms": 1.1, "python_ms": 2.2}
    assert speed_level(_ref(1.1, 2.2), base) == 1.0
    assert speed_level(_ref(1.21, 2.2), base) == pytest.approx(1.1 ** 0.5, abs=1e-4)
    assert speed_level({"version": REFERENCE_VERSION, "error": "x"}, base) is None
    assert speed_level(_ref(1.0, 1.0), None) is None


@pytest.mark.slow
def test_the_reference_workload_runs_in_a_fresh_process():
    ref = reference_workload(seconds=0.4)
    assert ref["version"] == REFERENCE_VERSION and ref["gemm_ms"] > 0 and ref["python_ms"] > 0
    assert speed_level(ref, reference_median([ref])) == 1.0


class NearCap:
    """mobilenet_v2 at 21 ms (near edge_tight's 20 ms cap: repeats in every pass), resnet18 far from caps."""

    def __call__(self, request):
        p = 21.0 if request.config["model"] == "mobilenet_v2" else 400.0
        metrics = {"latency_p50_ms": p, "latency_p95_ms": p, "latency_p99_ms": p, "memory_peak_mb": 50.0,
                   "accuracy": 0.7, "accuracy_unknown": 0.0, "throughput_sps": 1000.0 / p}
        return Measurement("ok", metrics=metrics, cost_s=2.0, latencies_ms=(p,) * 3)


def test_every_pass_of_every_run_measures_its_own_reference(tmp_path):
    calls: list[int] = []

    def reference():
        calls.append(1)
        return _ref(1.0 + 0.1 * len(calls), 2.0, at=1_800_000_000 + len(calls))

    out = tmp_path / "t.jsonl"
    first = Recorder(GRID, out, profile_fn=NearCap(), reference_fn=reference, max_new=3)
    summary = first.run(on_line=lambda line: None)
    assert summary.stopped and len(calls) == 2  # pass 0 (both configs), pass 1 (its first repeat)
    assert [p for p, _ in summary.speed_references] == [0, 1]
    assert any("speed reference" in line for line in summary.lines())
    Recorder(GRID, out, profile_fn=NearCap(), reference_fn=reference).run(on_line=lambda line: None)
    assert len(calls) == 2 + 3  # the resumed run: passes 2-4 measure (1 is complete), each with its own reference
    table = load_table(out)
    refs = [e["speed_reference"] for extras in table.extras.values() for e in extras]
    assert all(r and r["version"] == REFERENCE_VERSION for r in refs)
    levels = pass_levels(table)
    assert [g["pass"] for g in levels] == [0, 1, 2, 3, 4]
    assert sum(g["measurements"] for g in levels) == len(refs)
    assert levels[0]["level"] < levels[-1]["level"]  # the reference grew slower run after run


def _table(tmp_path, rows) -> object:
    """rows: (config, p95, pass, reference)."""
    space = grid_space(["mobilenet_v2"], ["onnxruntime"], ["fp32"], [1], [1], graph_optimizations=["all"])
    header = {"type": "table", "format_version": 2, "name": "drifty", "space": space.to_json(),
              "space_signature": space.signature(),
              "provenance": {"device": "cpu", "device_name": "test", "date": "2026-12-07",
                             "device_profile": {"name": "edge", "max_threads": 2, "memory_mb": 1024.0,
                                                "description": "x"}}}
    lines = [json.dumps(header)]
    for i, (config, p95, pass_no, ref) in enumerate(rows):
        m = {"status": "ok", "metrics": {"latency_p95_ms": p95, "latency_p99_ms": p95, "latency_p50_ms": p95},
             "cost_s": 1.0}
        lines.append(json.dumps({"type": "measurement", "key": space.key(config), "config": config, "repeat": i,
                                 "pass": pass_no, "speed_reference": ref, "measurement": m}))
    path = tmp_path / "drifty.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return load_table(path)


CONFIG = {"model": "mobilenet_v2", "backend": "onnxruntime", "precision": "fp32", "batch_size": 1, "threads": 1,
          "graph_optimization": "all"}


def test_drift_ratio_raw_and_corrected_by_the_levels(tmp_path):
    # recorded at 20 ms on a fast day and 26 ms on a day 30 % slower; today is the slow day again
    table = _table(tmp_path, [(CONFIG, 20.0, 0, _ref(1.0, 1.0, 1)), (CONFIG, 26.0, 1, _ref(1.3, 1.3, 2))])
    seen = []

    def live(request):
        seen.append(request)
        return Measurement("ok", metrics={"latency_p95_ms": 26.0})

    result = drift_check(table, 5, profile_fn=live, reference_fn=lambda: _ref(1.3, 1.3, 3))
    (row,) = result["configurations"]
    assert row["config"] == CONFIG and row["metric"] == "latency_p95_ms" and row["recorded_median"] == 23.0
    assert row["ratio"] == pytest.approx(26.0 / 23.0, abs=1e-3)  # raw: today looks 13 % slower than the table
    assert row["ratio_corrected"] == pytest.approx(1.0, abs=1e-3)  # the same speed once the level is removed
    assert row["ratio_corrected_gemm"] == pytest.approx(1.0, abs=1e-3)  # both timings moved alike here
    assert seen[0].device_profile == "edge" and seen[0].memory_limit_mb == 1024.0
    assert seen[0].latency_cap_ms is None  # measured in full, no early stop
    assert [g["level"] for g in pass_levels(table)] == pytest.approx([1.0 / 1.15, 1.3 / 1.15], abs=1e-3)


def test_a_table_without_references_gives_only_raw_ratios(tmp_path):
    table = _table(tmp_path, [(CONFIG, 20.0, 0, None), (CONFIG, 22.0, 1, None)])
    result = drift_check(table, 1, profile_fn=lambda r: Measurement("ok", metrics={"latency_p95_ms": 21.0}),
                         reference_fn=lambda: _ref(1.0, 1.0))
    (row,) = result["configurations"]
    assert row["ratio"] == pytest.approx(1.0) and row["ratio_corrected"] is None and result["level_today"] is None
    assert pass_levels(table) == []


def test_table_info_shows_the_level_per_pass(tmp_path, capsys):
    from deploybench.cli.main import main

    table = _table(tmp_path, [(CONFIG, 20.0, 0, _ref(1.0, 1.0, 1)), (CONFIG, 26.0, 1, _ref(1.3, 1.3, 2))])
    assert main(["table", "info", str(table.path)]) == 0
    out = capsys.readouterr().out
    assert "speed level per recording pass" in out and "pass 0" in out and "pass 1" in out


@pytest.mark.slow
@pytest.mark.live
def test_table_drift_remeasures_live(tmp_path, monkeypatch, capsys):
    from deploybench.cli.main import main

    monkeypatch.setenv("DEPLOYBENCH_TESTING", "1")
    monkeypatch.setenv("DEPLOYBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DEPLOYBENCH_MAX_OTHER_CORES", "64")
    space = grid_space(["tiny_cnn"], ["pytorch_eager"], ["fp32"], [1], [1], memory_formats=["contiguous"])
    config = {"model": "tiny_cnn", "backend": "pytorch_eager", "precision": "fp32", "batch_size": 1, "threads": 1,
              "memory_format": "contiguous"}
    header = {"type": "table", "format_version": 2, "name": "tiny", "space": space.to_json(),
              "space_signature": space.signature(), "provenance": {"device": "cpu", "device_name": "test"}}
    m = {"status": "ok", "metrics": {"latency_p95_ms": 5.0, "latency_p99_ms": 5.0}, "cost_s": 1.0}
    line = {"type": "measurement", "key": space.key(config), "config": config, "repeat": 0, "pass": 0,
            "speed_reference": reference_workload(seconds=0.4), "measurement": m}
    path = tmp_path / "tiny.jsonl"
    path.write_text(json.dumps(header) + "\n" + json.dumps(line) + "\n")
    assert main(["table", "drift", str(path), "--configs", "1", "--artefact-cache", str(tmp_path / "art"),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    (row,) = result["configurations"]
    assert row["live_status"] == "ok" and row["live"] > 0 and row["ratio"] == pytest.approx(row["live"] / 5.0, abs=1e-3)
    assert result["level_today"] is not None and row["ratio_corrected"] is not None


def test_the_gemm_level_alone_ignores_a_python_loop_that_moved_unlike_inference(tmp_path):
    # the python loop ran 60 % slower today and in the second pass; the matrix products (and the model) did not
    table = _table(tmp_path, [(CONFIG, 20.0, 0, _ref(1.0, 1.0, 1)), (CONFIG, 20.0, 1, _ref(1.0, 1.6, 2))])
    result = drift_check(table, 1, profile_fn=lambda r: Measurement("ok", metrics={"latency_p95_ms": 20.0}),
                         reference_fn=lambda: _ref(1.0, 1.6, 3))
    (row,) = result["configurations"]
    assert row["ratio"] == pytest.approx(1.0) and row["ratio_corrected_gemm"] == pytest.approx(1.0, abs=1e-3)
    assert row["ratio_corrected"] != pytest.approx(1.0, abs=0.05)  # the combined level over-corrects
    assert result["gemm_level_today"] == pytest.approx(1.0)
