"""Prepare a model for one backend × precision and expose one inference step, a timer and a predictor.

- ``pytorch_eager``: the model as is; fp16 → ``half()`` (on a CPU too: it runs if the kernels exist,
  and a missing kernel is classified ``unsupported``); int8_dynamic → ``quantize_dynamic`` of the
  ``nn.Linear`` layers on the CPU (convolutions are not dynamically quantisable and stay fp32, so
  int8 conv nets are mostly fp32 on the CPU: seed-code §16 B8; ``int8_quantized_layers`` says how many).
- ``torch_compile``: the same model through ``torch.compile`` (``reduce-overhead`` on CUDA, default on
  CPU); compiled during preparation with one forward, and a compile that produced no graph (a silent
  eager fallback, seed-code §13.2) is reported as ``unsupported``.
- ``onnxruntime``: ``torch.onnx.export`` to a temp file (the TorchScript exporter, falling back to the
  dynamo exporter), int8_dynamic → ONNX Runtime's own ``quantize_dynamic``; an ``InferenceSession``
  with ``intra_op_num_threads`` and CUDA → CPU providers; the providers the session really uses are
  recorded and decide ``device_executed``.

Timing: CUDA events around each iteration on a GPU (torch backends), ``perf_counter_ns`` otherwise
(ONNX Runtime's CUDA ``run_with_iobinding`` returns after its stream is synchronised).
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["Prepared", "prepare_backend"]


@dataclass
class Prepared:
    step: Callable[[], None]
    timed_call: Callable[[Callable[[], None]], float]
    predict: Callable[[np.ndarray], np.ndarray]
    device_executed: str
    metrics: dict[str, Any] = field(default_factory=dict)


def _cpu_timer(step: Callable[[], None]) -> float:
    t0 = time.perf_counter_ns()
    step()
    return (time.perf_counter_ns() - t0) / 1e6


def _cuda_timer() -> Callable[[Callable[[], None]], float]:
    import torch

    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)

    def timed(step: Callable[[], None]) -> float:
        start.record()
        step()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))

    return timed


def _input(batch_size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.standard_normal((batch_size, 3, 224, 224), dtype=np.float32)


def _apply_precision(model: Any, precision: str, device: str) -> tuple[Any, str, Any, dict]:
    import torch

    extra: dict[str, Any] = {}
    if precision == "int8_dynamic":
        from torch.ao.quantization import quantize_dynamic

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            q = quantize_dynamic(model.cpu(), {torch.nn.Linear}, dtype=torch.qint8)
        extra["int8_quantized_layers"] = sum(1 for m in q.modules() if "quantized" in type(m).__module__
                                             and type(m).__name__ == "Linear")
        return q, "cpu", torch.float32, extra
    if precision == "fp16":
        return model.half().to(device), device, torch.float16, extra
    return model.to(device), device, torch.float32, extra


def _torch_backend(model: Any, config: dict, device: str, compile_: bool) -> Prepared:
    import torch

    model, dev, dtype, metrics = _apply_precision(model, config["precision"], device)
    x = torch.from_numpy(_input(int(config["batch_size"]))).to(dev, dtype)
    if compile_:
        import torch._dynamo as dynamo

        dynamo.config.suppress_errors = False
        dynamo.reset()
        mode = "reduce-overhead" if dev == "cuda" else "default"
        model = torch.compile(model, mode=mode)
        metrics["compile_mode"] = mode
        with torch.no_grad():
            model(x)  # compile now, so compilation is charged to the prepare stage
        counters = dynamo.utils.counters
        graphs = int(counters["stats"].get("unique_graphs", 0))
        breaks = int(sum(counters["graph_break"].values()))
        metrics.update(compile_graphs=graphs, compile_graph_breaks=breaks)
        if graphs == 0:
            raise NotImplementedError("torch.compile produced no compiled graph (dynamo fell back to eager); "
                                      "not a compiled deployment")
    grad = torch.no_grad if compile_ else torch.inference_mode

    def step() -> None:
        with grad():
            model(x)

    def predict(batch: np.ndarray) -> np.ndarray:
        with grad():
            out = model(torch.from_numpy(batch).to(dev, dtype))
        return out.float().cpu().numpy()

    timed = _cuda_timer() if dev == "cuda" else _cpu_timer
    metrics["threads_used"] = torch.get_num_threads()
    return Prepared(step=step, timed_call=timed, predict=predict, device_executed=dev, metrics=metrics)


def _export_onnx(model: Any, x: Any, path: str) -> str:
    """Export with the TorchScript exporter (fast, robust for these CNNs/ViT), else the dynamo one."""
    import torch

    errors = []
    for dynamo_flag in (False, True):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (x,), path, input_names=["input"], output_names=["output"],
                                  opset_version=17 if not dynamo_flag else None, dynamo=dynamo_flag,
                                  **({} if not dynamo_flag else {"external_data": False}))
            return "dynamo" if dynamo_flag else "torchscript"
        except Exception as exc:  # noqa: BLE001 - try the other exporter, re-raise the first error below
            errors.append(exc)
    raise errors[0]


def _ort_backend(model: Any, config: dict, device: str, workdir: str) -> Prepared:
    import onnxruntime as ort
    import torch

    precision = config["precision"]
    batch = int(config["batch_size"])
    threads = int(config.get("threads") or 1)
    half = precision == "fp16"
    m = model.cpu().half() if half else model.cpu()
    x = torch.from_numpy(_input(batch))
    path = os.path.join(workdir, "model.onnx")
    exporter = _export_onnx(m, x.half() if half else x, path)
    metrics: dict[str, Any] = {"onnx_exporter": exporter}
    if precision == "int8_dynamic":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        qpath = os.path.join(workdir, "model.int8.onnx")
        quantize_dynamic(path, qpath, weight_type=QuantType.QInt8)
        path = qpath
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    want_cuda = device == "cuda" and precision != "int8_dynamic"
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if want_cuda else ["CPUExecutionProvider"]
    sess = ort.InferenceSession(path, so, providers=providers)
    actual = list(sess.get_providers())
    on_cuda = bool(actual) and actual[0] == "CUDAExecutionProvider"
    metrics.update(providers=actual, threads_used=threads, provider_fallback=want_cuda and not on_cuda)
    in_name = sess.get_inputs()[0].name
    dtype = np.float16 if half else np.float32
    x_np = x.numpy().astype(dtype)
    if on_cuda:
        xv = ort.OrtValue.ortvalue_from_numpy(x_np, "cuda", 0)
        binding = sess.io_binding()
        binding.bind_ortvalue_input(in_name, xv)
        binding.bind_output(sess.get_outputs()[0].name, "cuda")

        def step() -> None:
            sess.run_with_iobinding(binding)
    else:
        feed = {in_name: x_np}

        def step() -> None:
            sess.run(None, feed)

    def predict(images: np.ndarray) -> np.ndarray:
        return np.asarray(sess.run(None, {in_name: images.astype(dtype)})[0], dtype=np.float32)

    return Prepared(step=step, timed_call=_cpu_timer, predict=predict,
                    device_executed="cuda" if on_cuda else "cpu", metrics=metrics)


def prepare_backend(model: Any, config: dict, device: str, workdir: str) -> Prepared:
    """Apply precision and backend to a fresh ``model``; raises on unsupported combinations."""
    import torch

    backend = config["backend"]
    if config.get("threads") is not None:
        torch.set_num_threads(int(config["threads"]))
    if backend == "pytorch_eager":
        return _torch_backend(model, config, device, compile_=False)
    if backend == "torch_compile":
        return _torch_backend(model, config, device, compile_=True)
    if backend == "onnxruntime":
        return _ort_backend(model, config, device, workdir)
    raise ValueError(f"unknown backend {backend!r}")
