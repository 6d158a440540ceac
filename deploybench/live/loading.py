"""Load a prepared artefact in the measuring worker and expose one inference step, a timer and a predictor.

Only the runtime the artefact needs is imported (ONNX Runtime measurements never import PyTorch), so
the deployment footprint is the artefact plus its runtime, as on a device. Knobs applied here:
``threads`` (``torch.set_num_threads`` / ONNX Runtime's intra-op pool), ``memory_format`` (eager
PyTorch: the model and its input in NHWC ``channels_last``), ``graph_optimization`` (ONNX Runtime
``ORT_ENABLE_BASIC`` or ``ORT_ENABLE_ALL``), ``performance_hint`` (OpenVINO's ``LATENCY`` or
``THROUGHPUT``, with ``threads`` as ``INFERENCE_NUM_THREADS``; the IR is reshaped to the batch, so the
CPU plugin compiles static shapes as a deployment would). ``torch_compile`` compiles the loaded module in the
measuring worker (a compiled module cannot be saved), with ``reduce-overhead`` on CUDA and the default
mode on the CPU, and rejects a compile that produced no graph (a silent eager fallback).

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

from .inputs import inputs_of, make_batch

__all__ = ["Runtime", "Loaded", "import_runtime", "load_artefact"]


@dataclass
class Runtime:
    family: str
    device: str  # where float work may run: cpu or cuda


@dataclass
class Loaded:
    step: Callable[[], None]
    timed_call: Callable[[Callable[[], None]], float]
    predict: Callable[..., np.ndarray]  # the model's inputs (arrays, in declaration order) -> first output
    device_executed: str
    metrics: dict[str, Any] = field(default_factory=dict)
    compile_fn: Callable[[], None] | None = None


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


def import_runtime(config: dict, requested_device: str) -> Runtime:
    """Import what the configuration's backend needs (and nothing else) and decide the device."""
    if config["backend"] == "openvino":
        import openvino  # noqa: F401

        if requested_device == "cuda":
            raise RuntimeError("device 'cuda' requested but the openvino backend measures on the CPU plugin only")
        return Runtime("openvino", "cpu")
    if config["backend"] == "onnxruntime":
        import onnxruntime as ort

        has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
        device = "cuda" if requested_device in ("auto", "cuda") and has_cuda else "cpu"
        if requested_device == "cuda" and not has_cuda:
            raise RuntimeError("device 'cuda' requested but ONNX Runtime's CUDAExecutionProvider is not available")
        return Runtime("onnx", device)
    import torch

    if not str(config["precision"]).startswith("int8"):
        # a pickled torchvision module needs torchvision to load: it is part of the runtime (the baseline),
        # not of the artefact's footprint (int8 artefacts are TorchScript and need torch only)
        import torchvision  # noqa: F401
    if str(config["precision"]).startswith("int8"):
        return Runtime("torch", "cpu")  # PyTorch's quantised kernels exist only on the CPU
    if requested_device == "cpu":
        return Runtime("torch", "cpu")
    if torch.cuda.is_available():
        torch.zeros(1, device="cuda")  # the CUDA context belongs to the baseline
        return Runtime("torch", "cuda")
    if requested_device == "cuda":
        raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False "
                           "(no CUDA-capable device or driver)")
    return Runtime("torch", "cpu")


def _ort_device_check(ort: Any, artefact: dict, config: dict, providers: list[str], workdir: str) -> dict:
    """The executed-precision verdict on the providers the measurement runs on: a profiled run of one
    input. The artefact's own check ran on ONNX Runtime's CPU provider, which computes an fp16 model's
    kernels in fp32; on CUDA the same model runs in fp16, so a CUDA measurement is judged here."""
    import json

    from .artefacts import _ort_feed, _ort_session_options, ort_precision_shares, precision_verdict

    level = config.get("graph_optimization", "all")
    so = _ort_session_options(ort, 1, level, os.path.join(workdir, "profile-device"))
    sess = ort.InferenceSession(artefact["path"], so, providers=providers)
    sess.run(None, _ort_feed(sess, inputs_of(artefact), 1))
    prof = sess.end_profiling()
    with open(prof, encoding="utf-8") as fh:
        events = json.load(fh)
    os.remove(prof)
    return precision_verdict(str(config["precision"]), ort_precision_shares(events))


def _load_onnx(artefact: dict, config: dict, runtime: Runtime, workdir: str | None = None) -> Loaded:
    import onnxruntime as ort

    from .artefacts import _ort_feed, _ort_session_options, ort_inputs

    threads = int(config.get("threads") or 1)
    level = config.get("graph_optimization", "all")
    so = _ort_session_options(ort, threads, level)
    want_cuda = runtime.device == "cuda"
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if want_cuda else ["CPUExecutionProvider"]
    sess = ort.InferenceSession(artefact["path"], so, providers=providers)
    actual = list(sess.get_providers())
    on_cuda = bool(actual) and actual[0] == "CUDAExecutionProvider"
    if want_cuda and not on_cuda:  # a silent fall-back would record a CPU measurement as the GPU's
        raise RuntimeError(f"requested CUDAExecutionProvider but ONNX Runtime could only start {actual} "
                           "(no usable CUDA device or libraries): a machine problem, not the configuration's")
    metrics = {"providers": actual, "threads_used": threads, "graph_optimization": level}
    check_key = f"onnxruntime/{level}"
    if on_cuda:
        verdict = _ort_device_check(ort, artefact, config, actual, workdir or os.path.dirname(artefact["path"]))
        metrics.update(precision_executed=verdict["executed"], precision_shares=verdict["shares"],
                       precision_checked_on="cuda")
    else:
        verdict = (artefact.get("checks") or {}).get(check_key) or {"ok": True}
    if not verdict.get("ok", True):
        raise NotImplementedError(verdict.get("reason") or f"{config['precision']} did not execute")
    feed = _ort_feed(sess, inputs_of(artefact), int(config["batch_size"]))
    if on_cuda:
        binding = sess.io_binding()
        for name, array in feed.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0))
        binding.bind_output(sess.get_outputs()[0].name, "cuda")

        def step() -> None:
            sess.run_with_iobinding(binding)
    else:
        def step() -> None:
            sess.run(None, feed)

    def predict(*arrays: np.ndarray) -> np.ndarray:
        return np.asarray(sess.run(None, ort_inputs(sess, arrays))[0], dtype=np.float32)

    return Loaded(step=step, timed_call=_cpu_timer, predict=predict,
                  device_executed="cuda" if on_cuda else "cpu", metrics=metrics)


def _load_openvino(artefact: dict, config: dict) -> Loaded:
    import openvino as ov

    from .artefacts import openvino_compile, openvino_config, openvino_feed

    verdict = (artefact.get("checks") or {}).get("openvino") or {"ok": True}
    if not verdict.get("ok", True):
        raise NotImplementedError(verdict.get("reason") or f"{config['precision']} did not execute")
    threads = int(config.get("threads") or 1)
    hint = str(config.get("performance_hint", "latency"))
    properties = openvino_config(str(config["precision"]), threads, hint)
    core = ov.Core()
    arrays = make_batch(inputs_of(artefact), int(config["batch_size"]))
    compiled = openvino_compile(core, artefact["path"], arrays, properties)
    request = compiled.create_infer_request()
    feed = openvino_feed(compiled, arrays)

    def step() -> None:
        request.infer(feed)

    dynamic: dict[str, Any] = {}

    def predict(*inputs: np.ndarray) -> np.ndarray:
        """Any batch: a second compilation with the IR's own (dynamic) batch axis, made on first use."""
        if "compiled" not in dynamic:
            dynamic["compiled"] = core.compile_model(core.read_model(artefact["path"]), "CPU", properties)
        out = dynamic["compiled"](openvino_feed(dynamic["compiled"], inputs))
        return np.asarray(out[dynamic["compiled"].outputs[0]], dtype=np.float32)

    metrics = {"threads_used": threads, "performance_hint": hint,
               "openvino_streams": int(compiled.get_property("NUM_STREAMS")),
               "openvino_inference_precision": compiled.get_property("INFERENCE_PRECISION_HINT").to_string(),
               "artefact_format": artefact.get("format")}
    return Loaded(step=step, timed_call=_cpu_timer, predict=predict, device_executed="cpu", metrics=metrics)


def _load_torch(artefact: dict, config: dict, runtime: Runtime) -> Loaded:
    import torch

    if config.get("threads") is not None:
        torch.set_num_threads(int(config["threads"]))
    if artefact.get("quant_engine"):
        torch.backends.quantized.engine = artefact["quant_engine"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if artefact.get("format") == "torchscript":
            model = torch.jit.load(artefact["path"], map_location="cpu")
        else:
            model = torch.load(artefact["path"], map_location="cpu", weights_only=False)
    model.eval()
    dev = runtime.device
    half = artefact.get("precision") == "fp16"
    dtype = torch.float16 if half else torch.float32
    specs = inputs_of(artefact)
    channels_last = config.get("memory_format") == "channels_last"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if artefact.get("format") != "torchscript":
        model = model.to(dev)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)

    def tensors(arrays: list) -> tuple:
        """Arrays as the model's arguments: float inputs in the artefact's precision, the layout applied to
        4-D float inputs (the channels_last knob is offered only for one image input)."""
        out = []
        for array in arrays:
            t = torch.from_numpy(np.asarray(array)).to(dev)
            if t.is_floating_point():
                t = t.to(dtype)
                if t.dim() == 4:
                    t = t.contiguous(memory_format=fmt)
            out.append(t)
        return tuple(out)

    x = tensors(make_batch(specs, int(config["batch_size"])))
    metrics: dict[str, Any] = {"threads_used": torch.get_num_threads(), "artefact_format": artefact.get("format"),
                               "memory_format": config.get("memory_format", "contiguous")}
    if artefact.get("quant_engine"):
        metrics["quant_engine"] = artefact["quant_engine"]
    compiled = config["backend"] == "torch_compile"
    holder = {"model": model}
    compile_fn = None
    if compiled:
        def compile_now() -> None:
            import torch._dynamo as dynamo

            dynamo.config.suppress_errors = False
            dynamo.reset()
            mode = "reduce-overhead" if dev == "cuda" else "default"
            holder["model"] = torch.compile(model, mode=mode)
            metrics["compile_mode"] = mode
            with torch.no_grad():
                holder["model"](*x)  # compile now, so compilation is its own stage
            counters = dynamo.utils.counters
            graphs = int(counters["stats"].get("unique_graphs", 0))
            breaks = int(sum(counters["graph_break"].values()))
            metrics.update(compile_graphs=graphs, compile_graph_breaks=breaks)
            if graphs == 0:
                raise NotImplementedError("torch.compile produced no compiled graph (dynamo fell back to eager); "
                                          "not a compiled deployment")

        compile_fn = compile_now
    grad = torch.no_grad if compiled else torch.inference_mode

    def step() -> None:
        with grad():
            holder["model"](*x)

    def predict(*arrays: np.ndarray) -> np.ndarray:
        with grad():
            out = holder["model"](*tensors(list(arrays)))
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.float().cpu().numpy()

    timed = _cuda_timer() if dev == "cuda" else _cpu_timer
    return Loaded(step=step, timed_call=timed, predict=predict, device_executed=dev, metrics=metrics,
                  compile_fn=compile_fn)


def load_artefact(artefact: dict, config: dict, runtime: Runtime, workdir: str) -> Loaded:
    """Load ``artefact`` for ``config``'s backend and knobs; raises on what cannot run."""
    if runtime.family == "onnx":
        return _load_onnx(artefact, config, runtime, workdir)
    if runtime.family == "openvino":
        return _load_openvino(artefact, config)
    return _load_torch(artefact, config, runtime)
