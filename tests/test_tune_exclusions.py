"""Combinations known not to run are left out of ``tune``'s space before the search, with the reason."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deploybench.device_tables.grid import DeploymentGrid, expand_config
from deploybench.live.sources import ModelSource
from deploybench.live.profiler import Measurement
from deploybench.tuning import TuneInputError, TuneSpec, tune
from deploybench.tuning.exclusions import known_exclusions

ORT_FP16 = {"backend": "onnxruntime", "precision": "fp16"}
QDQ_BASIC = {"backend": "onnxruntime", "precision": "int8_static", "graph_optimization": "basic"}


def test_a_grid_with_exclusions_cannot_propose_them():
    grid = DeploymentGrid(models=("m",), excluded=(ORT_FP16, QDQ_BASIC))
    space = grid.space()
    assert "runtime" in space.names and "backend" not in space.names
    assert "onnxruntime/fp16" not in space["runtime"].choices
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(400):
        config = grid.expand(space.sample(rng))
        seen.add((config["backend"], config["precision"], config.get("graph_optimization")))
        assert (config["backend"], config["precision"]) != ("onnxruntime", "fp16")
        assert config.get("graph_optimization") != "basic" or config["precision"] != "int8_static"
    assert ("onnxruntime", "int8_static", "all") in seen and ("onnxruntime", "fp32", "basic") in seen
    full = DeploymentGrid(models=("m",))
    # ORT fp16: 3 batch sizes x 2 threads x 2 levels; QDQ int8 at basic: 3 batch sizes x 2 threads
    assert grid.size() == full.size() - 3 * 2 * 2 - 3 * 2
    assert expand_config({"model": "m", "batch_size": 1}, {}) == {"model": "m", "batch_size": 1}


def _source(label: str, kind: str = "factory") -> ModelSource:
    return ModelSource(kind, label if kind != "factory" else f"pkg.mod:{label}", label)


def test_the_rules_say_where_their_knowledge_comes_from():
    everything = dict(backends=("pytorch_eager", "torch_compile", "onnxruntime"),
                      precisions=("fp32", "fp16", "int8_dynamic", "int8_static"), graph_optimizations=("basic", "all"))
    cnn = known_exclusions([_source("cnn")], **everything, runtime_device="cpu",
                           preflight={"cnn": {"linear_flop_share": 0.002}},
                           probe=lambda d, b, p: {"works": False, "kind": "unsupported", "reason": "ran in fp32"})
    matched = [e.match for e in cnn]
    assert {"backend": "torch_compile", "precision": "int8_static"} in matched
    assert {"backend": "pytorch_eager", "precision": "int8_static"} in matched  # no quantizable definition
    assert {"backend": "pytorch_eager", "precision": "int8_dynamic"} in matched  # 0.2 % of FLOPs in Linear
    assert ORT_FP16 in matched and QDQ_BASIC in matched
    assert all(e.reason and e.evidence for e in cnn)
    vit = known_exclusions([_source("vit_b_16", "zoo")], **everything, runtime_device="cpu",
                           preflight={"vit_b_16": {"linear_flop_share": 0.97}},
                           probe=lambda d, b, p: {"works": True})
    matched = [e.match for e in vit]
    assert {"backend": "pytorch_eager", "precision": "int8_dynamic"} not in matched
    assert ORT_FP16 not in matched  # the probe says it runs here
    resnet = known_exclusions([_source("resnet18", "zoo")], **everything, runtime_device="cuda")
    assert {"backend": "pytorch_eager", "precision": "int8_static"} not in [e.match for e in resnet]  # quantizable
    assert QDQ_BASIC not in [e.match for e in resnet]  # a CPU rule


class _Device:
    """A fake measurement: records which configurations were measured."""

    def __init__(self) -> None:
        self.configs: list[dict] = []

    def __call__(self, request):
        self.configs.append(dict(request.config))
        p95 = 1.0 + request.config["batch_size"]
        return Measurement("ok", metrics={"latency_p95_ms": p95, "throughput_sps": 1000.0 / p95,
                                          "memory_peak_mb": 10.0, "precision_executed": request.config["precision"]},
                           cost_s=1.0)


def test_tune_spends_no_trial_on_an_excluded_combination_and_reports_it(tmp_path):
    device = _Device()
    spec = TuneSpec(models=("resnet18",), p95_ms=10.0, objective="throughput", backends=("torch_compile", "onnxruntime"),
                    precisions=("fp32", "int8_static"), batch_sizes=(1, 4), threads=(1,), optimizer="random", budget=12,
                    candidates=1, repeats=2, min_feasible_rate=0.3)
    lines: list[str] = []
    result = tune(spec, tmp_path / "run", profile_fn=device, on_line=lines.append)
    assert result.status == "recommended"
    assert device.configs and all(not (c["backend"] == "torch_compile" and c["precision"] == "int8_static")
                                  for c in device.configs)
    assert all(c.get("graph_optimization") == "all" for c in device.configs
               if c["backend"] == "onnxruntime" and c["precision"] == "int8_static")
    assert any(line.startswith("note: left out of the search: torch_compile int8_static") for line in lines)
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert {e["evidence"] for e in report["exclusions"]} >= {"artefact format"}
    assert all("backend" in t["config"] for t in report["trials"])
    assert "Left out before the search" in (tmp_path / "run" / "report.md").read_text()
    assert "backend" in result.recommended.config


def test_nothing_left_to_search_is_refused_with_the_reasons(tmp_path):
    spec = TuneSpec(models=("resnet18",), p95_ms=10.0, objective="throughput", backends=("torch_compile",),
                    precisions=("int8_dynamic",), batch_sizes=(1,), optimizer="random", budget=2)
    with pytest.raises(TuneInputError, match="nothing left to search.*torch.compile refuses a TorchScript module"):
        tune(spec, tmp_path / "run", profile_fn=_Device(), on_line=lambda s: None)


def test_a_resume_with_a_changed_cap_is_refused_in_the_command_lines_terms(tmp_path):
    spec = TuneSpec(models=("resnet18",), p95_ms=10.0, objective="throughput", backends=("onnxruntime",),
                    precisions=("fp32",), batch_sizes=(1, 4), threads=(1,), optimizer="random", budget=2,
                    candidates=1, repeats=2, min_feasible_rate=0.3)
    tune(spec, tmp_path / "run", profile_fn=_Device(), on_line=lambda s: None)
    from dataclasses import replace

    with pytest.raises(TuneInputError, match=r"--p95-ms was 10.0, now 15.0.*judged, and stopped early, against the "
                                             r"old caps.*another --out"):
        tune(replace(spec, p95_ms=15.0), tmp_path / "run", resume=True, profile_fn=_Device(), on_line=lambda s: None)
    device = _Device()
    result = tune(replace(spec, budget=3, repeats=3), tmp_path / "run", resume=True, profile_fn=device,
                  on_line=lambda s: None)
    assert len(result.trials) == 3 and result.status == "recommended"


def test_the_one_time_probe_is_cached_for_a_day(tmp_path, monkeypatch):
    from deploybench.live import doctor

    calls = []

    def fake_probe(device, backend, precision, time_limit_s):
        calls.append((device, backend, precision))
        return {"device": device, "backend": backend, "precision": precision, "works": False, "kind": "unsupported"}

    monkeypatch.setattr(doctor, "_probe", fake_probe)
    first = doctor.probe_path("cpu", "onnxruntime", "fp16", cache_dir=str(tmp_path))
    again = doctor.probe_path("cpu", "onnxruntime", "fp16", cache_dir=str(tmp_path))
    assert len(calls) == 1 and first["kind"] == again["kind"] == "unsupported" and again["cached"]
    doctor.probe_path("cpu", "onnxruntime", "int8_static", cache_dir=str(tmp_path))  # another path: probed
    assert len(calls) == 2
    monkeypatch.setattr(doctor, "_CACHE_TTL_S", 0.0)  # older than the cache keeps
    doctor.probe_path("cpu", "onnxruntime", "fp16", cache_dir=str(tmp_path))
    assert len(calls) == 3
