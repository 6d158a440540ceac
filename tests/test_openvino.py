"""OpenVINO as a third CPU runtime: the grid's knobs, the executed-precision check from its performance
counters, the exclusions, tune's deployment folder and load snippet, and (``slow``) real measurements
of a tiny CNN on OpenVINO's CPU plugin, checked against ONNX Runtime on the same weights."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from deploybench.device_tables.grid import DeploymentGrid, artefact_key
from deploybench.live.artefacts import openvino_precision_shares, precision_verdict
from deploybench.live.sources import ModelSource
from deploybench.tuning.exclusions import known_exclusions
from deploybench.tuning.pipeline import artefact_companions

OV_FP16 = {"backend": "openvino", "precision": "fp16"}
OV_DYNAMIC = {"backend": "openvino", "precision": "int8_dynamic"}


def test_openvino_has_its_own_threads_and_performance_hint_and_an_ir_artefact():
    grid = DeploymentGrid(models=("m",), backends=("onnxruntime", "openvino"), precisions=("fp32",), batch_sizes=(1,))
    space = grid.space()
    assert space["performance_hint"].condition.values == ("openvino",)
    assert set(space["threads"].condition.values) == {"onnxruntime", "openvino"}
    configs = list(space.grid())
    ov = [c for c in configs if c["backend"] == "openvino"]
    assert len(ov) == 2 * 2 and {c["performance_hint"] for c in ov} == {"latency", "throughput"}
    assert all("performance_hint" not in c for c in configs if c["backend"] == "onnxruntime")
    assert artefact_key(ov[0]) == ("m", "openvino", "fp32")
    # the recorded grids have no openvino: their spaces (and signatures) are as they were
    assert "performance_hint" not in DeploymentGrid(models=("m",)).space().names


def _info(node_type: str, exec_type: str, ms: float, status: str = "Status.EXECUTED") -> SimpleNamespace:
    return SimpleNamespace(node_type=node_type, exec_type=exec_type, real_time=timedelta(milliseconds=ms),
                           status=status)


def test_the_executed_precision_is_read_from_the_compute_kernels_names():
    quantised = [_info("Convolution", "brgconv_avx512_I8", 8.0), _info("FullyConnected", "gemm_mlas_f32", 2.0),
                 _info("Reorder", "reorder_f32", 50.0), _info("Convolution", "brgconv_avx512_f32", 1.0, "Status.NOT_RUN")]
    shares = openvino_precision_shares(quantised)
    assert shares == pytest.approx({"int8": 0.8, "fp32": 0.2}, abs=1e-6)  # reorders are not compute
    assert precision_verdict("int8_static", shares)["ok"]
    bf16 = openvino_precision_shares([_info("Convolution", "brgconv_avx512_bf16", 5.0)])
    verdict = precision_verdict("fp16", bf16)  # a CPU without fp16 arithmetic runs the f16 hint in bf16
    assert not verdict["ok"] and verdict["executed"] == "bf16" and "0 % of the compute ran in fp16" in verdict["reason"]


def test_exclusions_name_openvinos_missing_dynamic_int8_and_a_probed_fp16():
    common = dict(precisions=("fp32", "fp16", "int8_dynamic", "int8_static"), graph_optimizations=("all",),
                  runtime_device="cpu")
    source = [ModelSource("zoo", "resnet18", "resnet18")]
    asked: list = []

    def probe(device, backend, precision):
        asked.append((device, backend, precision))
        return {"works": False, "kind": "unsupported", "reason": "executed: {'bf16': 1.0}"}

    out = known_exclusions(source, backends=("openvino",), probe=probe, **common)
    by_match = {tuple(sorted(e.match.items())): e for e in out}
    assert tuple(sorted(OV_DYNAMIC.items())) in by_match and tuple(sorted(OV_FP16.items())) in by_match
    assert by_match[tuple(sorted(OV_DYNAMIC.items()))].evidence == "artefact format"
    assert asked == [("cpu", "openvino", "fp16")]
    assert not [e for e in known_exclusions(source, backends=("onnxruntime",), **common) if e.match["backend"] == "openvino"]


def test_a_deployment_folder_gets_the_files_its_artefact_needs(tmp_path):
    for name in ("model.xml", "model.bin", "model.onnx", "model.onnx.data", "other.bin", "profile.json"):
        (tmp_path / name).write_text("x")
    assert [os.path.basename(p) for p in artefact_companions(str(tmp_path / "model.xml"))] == ["model.bin"]
    assert [os.path.basename(p) for p in artefact_companions(str(tmp_path / "model.onnx"))] == ["model.onnx.data"]


# -- real OpenVINO ------------------------------------------------------------------------------------------
@pytest.fixture
def ov_env(quiet_live, monkeypatch, tmp_path):
    pytest.importorskip("openvino")
    monkeypatch.setenv("DEPLOYBENCH_TESTING", "1")
    monkeypatch.setenv("DEPLOYBENCH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def _request(precision: str, tmp_path, **config):
    from deploybench.live.profiler import ProfileRequest

    base = {"model": "tiny_cnn", "backend": "openvino", "precision": precision, "batch_size": 4, "threads": 1,
            "performance_hint": "latency", **config}
    return ProfileRequest(config=base, device="cpu", time_limit_s=120, weights="random", warmup_min_iters=1,
                          warmup_max_iters=2, min_iters=5, max_iters=5, measure_time_s=0.0,
                          artefact_cache=str(tmp_path / "artefacts"))


@pytest.mark.slow
def test_openvino_measures_fp32_and_int8_and_refuses_what_does_not_execute(ov_env):
    from deploybench.live.profiler import profile

    fp32 = profile(_request("fp32", ov_env, performance_hint="throughput", threads=2))
    assert fp32.status == "ok", fp32.error
    m = fp32.metrics
    assert m["precision_executed"] == "fp32" and m["performance_hint"] == "throughput" and m["threads_used"] == 2
    assert m["openvino_streams"] >= 1 and m["artefact_format"] == "openvino_ir" and len(fp32.latencies_ms) == 5
    assert m["latency_p95_ms"] > 0 and m["memory_peak_mb"] > 0
    int8 = profile(_request("int8_static", ov_env))
    assert int8.status == "ok", int8.error
    assert int8.metrics["precision_executed"] == "int8" and int8.metrics["precision_shares"]["int8"] >= 0.5
    dynamic = profile(_request("int8_dynamic", ov_env))
    assert dynamic.status == "crashed" and dynamic.error["kind"] == "unsupported"
    assert "weight-compressed" in dynamic.error["message"] and "measure_s" not in dynamic.stages
    fp16 = profile(_request("fp16", ov_env))
    if fp16.status == "ok":  # a CPU with fp16 arithmetic
        assert fp16.metrics["precision_executed"] == "fp16"
    else:  # recorded as what it is, never measured as fp16
        assert fp16.error["kind"] == "unsupported" and "ran in fp16" in fp16.error["message"]


@pytest.mark.slow
def test_openvino_computes_what_onnx_runtime_computes_on_the_same_weights(ov_env):
    import onnxruntime as ort
    import openvino as ov
    import torch

    from deploybench.live.artefacts import prepare_artefact
    from deploybench.live.loading import Runtime, load_artefact

    onnx_dir, ov_dir = ov_env / "onnx", ov_env / "ov"
    onnx_dir.mkdir(), ov_dir.mkdir()
    torch.manual_seed(0)
    onnx_art = prepare_artefact("tiny_cnn", "onnx", "fp32", str(onnx_dir), weights="random", allow_test_models=True)
    ov_art = prepare_artefact("tiny_cnn", "openvino", "fp32", str(ov_dir), weights="random", allow_test_models=True)
    assert ov_art["checks"]["openvino"]["ok"] and os.path.exists(ov_dir / "model.bin")
    x = np.random.default_rng(1).random((3, 3, 224, 224), dtype=np.float32)  # a batch the IR was not reshaped to
    expected = ort.InferenceSession(onnx_art["path"], providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    loaded = load_artefact(ov_art, {"backend": "openvino", "precision": "fp32", "batch_size": 2, "threads": 1},
                           Runtime("openvino", "cpu"), str(ov_dir))
    loaded.step()
    np.testing.assert_allclose(loaded.predict(x), expected, rtol=1e-3, atol=1e-4)
    assert ov.Core().read_model(ov_art["path"]).inputs[0].get_partial_shape()[0].is_dynamic


@pytest.mark.slow
def test_tune_recommends_an_openvino_deployment_that_loads_from_its_folder(ov_env, monkeypatch):
    from deploybench.tuning import TuneSpec, tune

    monkeypatch.chdir(Path(__file__).parent / "fixtures")  # the factory's module is found from here, as a user's
    spec = TuneSpec(models=("tune_factories:tiny",), input_shape="3,64,64", p95_ms=500.0, objective="throughput", backends=("openvino",),
                    precisions=("fp32", "int8_static", "int8_dynamic"), batch_sizes=(1, 4), threads=(1,),
                    optimizer="random", budget=4, candidates=1, repeats=2, min_feasible_rate=0.3, weights="random",
                    allow_unmeasured_accuracy=True)
    lines: list[str] = []
    result = tune(spec, ov_env / "run", on_line=lines.append)
    assert result.status == "recommended", lines
    assert any("openvino int8_dynamic" in line and "left out" in line for line in lines)
    assert result.recommended.config["backend"] == "openvino"
    folder = ov_env / "run" / "deployment"
    assert sorted(p.name for p in folder.iterdir()) == ["model.bin", "model.xml"]
    report = (ov_env / "run" / "report.md").read_text()
    snippet = report.split("```python\n", 1)[1].split("```", 1)[0]
    script = ov_env / "load.py"  # the report's own load snippet, run as written in a fresh interpreter
    script.write_text(snippet + "\nprint(tuple(np.asarray(outputs[0]).shape))\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str((result.recommended.config["batch_size"], 10))


def test_the_doctor_probes_openvino_on_the_cpu_only(monkeypatch, tmp_path):
    from deploybench.live import doctor

    probed: list = []
    monkeypatch.setattr(doctor, "_probe", lambda d, b, p, limit: probed.append((d, b, p)) or
                        {"device": d, "backend": b, "precision": p, "works": True, "kind": "", "reason": "",
                         "device_executed": d, "seconds": 0.0})
    rows = doctor.doctor_report(devices=["cpu", "cuda"], cache_dir=str(tmp_path), use_cache=False)
    assert ("cpu", "openvino", "int8_static") in probed and ("cpu", "openvino", "fp16") in probed
    assert not [p for p in probed if p[0] == "cuda" and p[1] == "openvino"]
    assert "openvino" in doctor.format_report(rows)
