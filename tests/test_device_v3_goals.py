"""The v3 goals tooling (benchmarks/table_goals.py): the recorded resident set of a deployment against an
independent process that loads the same artefact, and the crash-structure goals of a recorded table."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from deploybench.device_tables.table import grid_space, load_table

GOALS = Path(__file__).resolve().parents[1] / "benchmarks" / "table_goals.py"


def _goals():
    spec = importlib.util.spec_from_file_location("table_goals", GOALS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.live
def test_the_recorded_resident_set_matches_an_independent_measurement(tmp_path, monkeypatch, capsys):
    from deploybench.live.profiler import ProfileRequest, profile

    monkeypatch.setenv("DEPLOYBENCH_TESTING", "1")
    monkeypatch.setenv("DEPLOYBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DEPLOYBENCH_MAX_OTHER_CORES", str((os.cpu_count() or 1) + 1))
    cache = str(tmp_path / "artefacts")
    config = {"model": "tiny_cnn", "backend": "onnxruntime", "precision": "fp32", "batch_size": 4, "threads": 1,
              "graph_optimization": "all"}
    m = profile(ProfileRequest(config=config, device="cpu", warmup_min_iters=1, warmup_max_iters=2, min_iters=3,
                               max_iters=5, measure_time_s=0.0, max_retries=0, memory_limit_mb=2048.0,
                               device_profile="edge", artefact_cache=cache))
    assert m.status == "ok", m.error
    space = grid_space(["tiny_cnn"], ["onnxruntime"], ["fp32"], [4], [1], graph_optimizations=["all"])
    header = {"type": "table", "format_version": 2, "name": "tiny", "space": space.to_json(),
              "space_signature": space.signature(), "provenance": {"device": "cpu"}}
    line = {"type": "measurement", "key": space.key(config), "config": config, "repeat": 0, "measurement": m.to_dict()}
    path = tmp_path / "tiny.jsonl"
    path.write_text(json.dumps(header) + "\n" + json.dumps(line) + "\n")
    goals = _goals()
    (row,) = goals.memory_check(load_table(path), cache, 5)
    assert row["triple"] == ("tiny_cnn", "onnxruntime", "fp32") and row["recorded_mb"] > 0
    assert 0.8 <= row["ratio"] <= 1.25, row  # the same artefact, the same runtime: the same resident set
    assert goals.main([str(path), "--seeds", "1"]) == 0
    assert "6. v3 goals" in capsys.readouterr().out
