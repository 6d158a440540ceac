"""The GPU recording command, dry-run on a machine without CUDA: doctor and recorder report every GPU path as
an environment failure of the machine, never as a crash of the search space, and a CUDA request never
records a silent CPU fall-back of ONNX Runtime as a GPU measurement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.live]

ROOT = Path(__file__).resolve().parents[1]


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


needs_no_cuda = pytest.mark.skipif(_has_cuda(), reason="a dry run checks a machine without CUDA; this one has it")


@needs_no_cuda
def test_onnx_runtime_falling_back_to_the_cpu_is_an_environment_failure(tmp_path, monkeypatch):
    from deploybench.live.artefacts import prepare_artefact
    from deploybench.live.errors import classify_error
    from deploybench.live.loading import Runtime, load_artefact

    monkeypatch.setenv("DEPLOYBENCH_TESTING", "1")
    config = {"model": "tiny_cnn", "backend": "onnxruntime", "precision": "fp16", "batch_size": 1, "threads": 1,
              "graph_optimization": "all"}
    artefact = prepare_artefact("tiny_cnn", "onnx", "fp16", str(tmp_path), allow_test_models=True)
    # ONNX Runtime's CPU provider computes an fp16 model in fp32: on the CPU that is the configuration's verdict
    with pytest.raises(NotImplementedError, match="asked for fp16") as on_cpu:
        load_artefact(artefact, config, Runtime("onnx", "cpu"), str(tmp_path))
    assert classify_error(on_cpu.value) == "unsupported"
    # asked for CUDA where ONNX Runtime can only start its CPU provider: the machine's failure
    with pytest.raises(RuntimeError, match="requested CUDAExecutionProvider") as on_cuda:
        load_artefact(artefact, dict(config, precision="fp32"), Runtime("onnx", "cuda"), str(tmp_path))
    assert classify_error(on_cuda.value) == "environment"


@needs_no_cuda
def test_gpu_recording_command_dry_run_reports_the_machine_not_the_space(tmp_path):
    env = dict(os.environ, INSTALL="0", PYTHON=sys.executable, NAME="dry", RAW=str(tmp_path / "dry.jsonl"),
               TABLE=str(tmp_path / "dry.jsonl.gz"), OUT=str(tmp_path), STOP_AFTER="300", HF_HUB_OFFLINE="1",
               DEPLOYBENCH_CACHE_DIR=str(tmp_path / "cache"),
               GRID="--models mobilenet_v2 --backends pytorch_eager,onnxruntime --precisions fp32,fp16 "
                    "--batch-sizes 1 --threads 1 --memory-formats contiguous --graph-optimizations all")
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "record_gpu_table.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doctor = json.loads((tmp_path / "dry-doctor.json").read_text())["paths"]
    assert doctor and all(r["device"] == "cuda" and not r["works"] for r in doctor)
    # every float path needs the GPU: each is the machine's failure (int8 paths may be unsupported for the model)
    assert {r["kind"] for r in doctor if r["precision"] in ("fp32", "fp16")} == {"environment"}
    lines = [json.loads(x) for x in (tmp_path / "dry.jsonl").read_text().splitlines()[1:]]
    assert len(lines) == 4  # the whole grid, each configuration once
    assert {(x["measurement"]["status"], x["measurement"]["error"]["kind"]) for x in lines} == {("crashed", "environment")}
    assert "environment (machine, not configuration)" in proc.stdout  # table info on the packed table
    assert (tmp_path / "dry.jsonl.gz").is_file() and (tmp_path / "dry.jsonl").is_file()
