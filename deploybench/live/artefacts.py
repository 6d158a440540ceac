"""Deployment artefacts: prepared once in their own process, then loaded alone by every measurement.

A deployment ships an artefact (a saved module, an ONNX file), not the Python process that built it.
Building one (constructing the model, quantising, calibrating, exporting) peaks far above what the
deployed artefact needs, so preparation runs in a separate worker (``prepare``) and the measuring
worker loads only the artefact: its memory is the deployment footprint, and the preparation peak is a
separate metric (``memory_prepare_peak_mb``).

Artefacts by family (see :func:`deploybench.device_tables.grid.artefact_key`):

- ``torch`` (serves ``pytorch_eager`` and ``torch_compile``): fp32/fp16 as a pickled ``nn.Module``
  (``torch.save``); int8 as TorchScript (eager-mode quantised modules do not survive pickling), with the
  quantised engine recorded. ``int8_static`` uses torchvision's quantizable definitions (fused,
  calibrated, converted with the engine torchvision documents for that architecture's quantised weights);
  ``int8_dynamic`` quantises ``nn.Linear`` layers only.
- ``onnx`` (serves ``onnxruntime``): ``torch.onnx.export`` with a dynamic batch axis; ``int8_dynamic``
  through ONNX Runtime's ``quantize_dynamic``; ``int8_static`` through ``quantize_static`` (QDQ,
  per-channel weights) calibrated on generated images.
- ``openvino`` (serves ``openvino``): the fp32 ONNX export (or the user's ONNX file) converted to
  OpenVINO IR (``ov.convert_model``, saved as ``model.xml`` + ``model.bin``); ``fp16`` keeps fp16
  weights and asks the CPU plugin for f16 inference; ``int8_static`` through NNCF's post-training
  quantisation (``nncf.quantize``, the calibration inputs as ONNX Runtime's). OpenVINO has no dynamic
  int8 for these models (its run-time activation quantisation targets weight-compressed language
  models), so ``int8_dynamic`` is ``unsupported`` without an artefact.

Preparation also checks which precision *executes* on this machine, per backend (and per ONNX Runtime
graph optimisation level): ONNX Runtime's session profile gives each compute kernel's input type
(OpenVINO's performance counters each node's kernel, whose name ends in its precision), and the share
of kernel time spent in the requested precision must be at least one half; for PyTorch the
share of FLOPs in the quantised layers (int8) is counted with ``torch.utils.flop_counter``. A
precision that does not execute as asked is recorded ``unsupported`` with the reason, never measured as
if it had.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from typing import Any, Callable, Sequence

import numpy as np

from .inputs import InputSpec, default_inputs, make_batch

__all__ = ["prepare_artefact", "EXECUTED_SHARE_REQUIRED", "ORT_COMPUTE_OPS", "ort_precision_shares",
           "openvino_precision_shares", "openvino_config", "openvino_compile", "precision_verdict"]

#: a precision "executes" when at least this share of compute (kernel time or FLOPs) runs in it
EXECUTED_SHARE_REQUIRED = 0.5
#: ONNX Runtime kernels that do the arithmetic (what decides the executed precision)
ORT_COMPUTE_OPS = frozenset({
    "Conv", "FusedConv", "NchwcConv", "ConvTranspose", "Gemm", "FusedGemm", "MatMul", "FusedMatMul",
    "ConvInteger", "QLinearConv", "MatMulInteger", "QLinearMatMul", "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat", "QGemm", "QAttention", "Attention", "MultiHeadAttention",
})
_ORT_INT8_OPS = frozenset({"ConvInteger", "QLinearConv", "MatMulInteger", "QLinearMatMul", "DynamicQuantizeMatMul",
                           "MatMulIntegerToFloat", "QGemm", "QAttention"})
_PRECISION_DTYPE = {"fp32": "fp32", "fp16": "fp16", "int8_dynamic": "int8", "int8_static": "int8"}
CALIBRATION_IMAGES = 8


DEFAULT_SHAPE = (3, 224, 224)
DEFAULT_INPUTS: tuple[InputSpec, ...] = default_inputs(DEFAULT_SHAPE)


def _images(batch: int, seed: int = 0, shape: tuple[int, ...] = DEFAULT_SHAPE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, *shape), dtype=np.float32)


def _torch_args(specs: Sequence[InputSpec], batch: int = 1, seed: int = 0, half: bool = False) -> tuple:
    """The model's positional arguments for a batch (float inputs in half precision when ``half``)."""
    import torch

    out = []
    for array in make_batch(specs, batch, seed):
        t = torch.from_numpy(array)
        out.append(t.half() if half and t.is_floating_point() else t)
    return tuple(out)


def ort_inputs(session: Any, arrays: Sequence[np.ndarray]) -> dict:
    """An ONNX Runtime feed of ``arrays`` by position, cast to the types the session declares (an fp16
    artefact takes float16 even where the user's model took float32)."""
    from .inputs import onnx_dtype

    return {i.name: np.asarray(a).astype(onnx_dtype(i.type)) for i, a in zip(session.get_inputs(), arrays)}


def _ort_feed(session: Any, specs: Sequence[InputSpec], batch: int = 1, seed: int = 0) -> dict:
    """An ONNX Runtime feed of generated inputs (:func:`ort_inputs` of :func:`~.inputs.make_batch`)."""
    return ort_inputs(session, make_batch(specs, batch, seed))


def precision_verdict(requested: str, shares: dict[str, float]) -> dict:
    """Whether ``requested`` executed, from the share of compute per executed dtype."""
    want = _PRECISION_DTYPE.get(requested, requested)
    executed = max(shares, key=shares.get) if shares else "unknown"
    share = float(shares.get(want, 0.0))
    ok = share >= EXECUTED_SHARE_REQUIRED
    rounded = {k: round(v, 3) for k, v in sorted(shares.items())}
    reason = "" if ok else (f"asked for {requested} but only {100 * share:.0f} % of the compute ran in {want} "
                            f"(executed: {rounded})")
    return {"executed": executed, "shares": rounded, "ok": ok, "reason": reason}


# -- ONNX Runtime -------------------------------------------------------------------------------------------
def ort_precision_shares(profile_events: list[dict]) -> dict[str, float]:
    """Share of compute-kernel time per executed dtype (``fp32``, ``fp16``, ``int8``) in an ONNX Runtime
    session profile (the JSON list ``end_profiling`` writes)."""
    totals: dict[str, float] = {}
    for ev in profile_events:
        if ev.get("cat") != "Node" or not str(ev.get("name", "")).endswith("_kernel_time"):
            continue
        args = ev.get("args") or {}
        op = args.get("op_name", "")
        if op not in ORT_COMPUTE_OPS:
            continue
        if op in _ORT_INT8_OPS:
            dtype = "int8"
        else:
            types = [next(iter(t)) for t in args.get("input_type_shape") or [] if isinstance(t, dict) and t]
            first = types[0] if types else "float"
            dtype = {"float16": "fp16", "float": "fp32", "int8": "int8", "uint8": "int8"}.get(first, first)
        totals[dtype] = totals.get(dtype, 0.0) + float(ev.get("dur") or 0.0) + 1e-3
    total = sum(totals.values())
    return {k: v / total for k, v in totals.items()} if total > 0 else {}


def _ort_session_options(ort: Any, threads: int, level: str, profile_prefix: str | None = None) -> Any:
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if level == "all"
                                   else ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    so.log_severity_level = 3
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return so


def _ort_checks(path: str, precision: str, workdir: str, specs: Sequence[InputSpec] = DEFAULT_INPUTS,
                batch: int = 1) -> dict:
    import onnxruntime as ort

    checks = {}
    for level in ("basic", "all"):
        so = _ort_session_options(ort, 1, level, os.path.join(workdir, f"profile-{level}"))
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        sess.run(None, _ort_feed(sess, specs, batch))
        prof = sess.end_profiling()
        with open(prof, encoding="utf-8") as fh:
            events = json.load(fh)
        os.remove(prof)
        checks[f"onnxruntime/{level}"] = precision_verdict(precision, ort_precision_shares(events))
    return checks


def _export_onnx(model: Any, args: tuple, path: str, specs: Sequence[InputSpec] = DEFAULT_INPUTS) -> str:
    """TorchScript exporter with a dynamic batch axis (one file serves every batch size) and the inputs'
    dynamic axes, else dynamo."""
    import torch

    errors = []
    names = [s.name for s in specs]
    for dynamo_flag in (False, True):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kwargs: dict = {"input_names": names, "output_names": ["output"], "dynamo": dynamo_flag}
                if dynamo_flag:
                    dims: dict[str, Any] = {"batch": torch.export.Dim("batch")}
                    shapes = []
                    for s in specs:
                        axes = {0: dims["batch"]}
                        for axis, label in s.dynamic:
                            axes[axis + 1] = dims.setdefault(label, torch.export.Dim(label))
                        shapes.append(axes)
                    kwargs.update(external_data=False, dynamic_shapes=tuple(shapes))
                else:
                    axes_by_input = {s.name: {0: "batch", **{axis + 1: label for axis, label in s.dynamic}}
                                     for s in specs}
                    kwargs.update(opset_version=17, dynamic_axes={**axes_by_input, "output": {0: "batch"}})
                torch.onnx.export(model, tuple(args), path, **kwargs)
            return "dynamo" if dynamo_flag else "torchscript"
        except Exception as exc:  # noqa: BLE001 - try the other exporter, re-raise the first error below
            errors.append(exc)
    raise errors[0]


class _Calibration:
    """ONNX Runtime calibration reader over generated inputs (latency does not depend on their content),
    or over the first samples of the user's data when there is some (accuracy does)."""

    def __init__(self, session: Any, specs: Sequence[InputSpec] = DEFAULT_INPUTS, batch: int = 1,
                 samples: Sequence[np.ndarray] | None = None) -> None:
        if samples is not None:
            total = len(samples[0])
            feeds = []
            for k in range(0, total, batch):
                rows = np.resize(np.arange(k, min(k + batch, total)), batch)  # a short last batch repeats rows
                feeds.append(ort_inputs(session, [a[rows] for a in samples]))
            self._batches = iter(feeds)
        else:
            self._batches = iter([_ort_feed(session, specs, batch, seed=i) for i in range(CALIBRATION_IMAGES)])

    def get_next(self) -> dict | None:
        return next(self._batches, None)

    def rewind(self) -> None:  # not needed by quantize_static's single pass
        pass


def _prepare_onnx(model: Any, precision: str, workdir: str, info: dict,
                  specs: Sequence[InputSpec] = DEFAULT_INPUTS, samples: Sequence[np.ndarray] | None = None) -> str:
    half = precision == "fp16"
    m = model.cpu().half() if half else model.cpu()
    path = os.path.join(workdir, "model.onnx")
    info["onnx_exporter"] = _export_onnx(m, _torch_args(specs, half=half), path, specs)
    return _quantise_onnx(path, precision, workdir, info, specs, samples=samples)


#: protobuf cannot serialise a message of 2 GiB or more; larger models keep their weights in a side file
_PROTOBUF_LIMIT = 2**31 - 1


def _save_onnx(model: Any, path: str) -> None:
    """Save ``model`` at ``path`` as one self-contained file, or with its weights in ``<name>.data``
    beside it when it is too large for one protobuf message."""
    import onnx

    if model.ByteSize() < _PROTOBUF_LIMIT:
        onnx.save(model, path)
    else:
        onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                  location=os.path.basename(path) + ".data")


def _prepare_onnx_file(source_path: str, precision: str, workdir: str, info: dict, specs: Sequence[InputSpec],
                       fixed_batch: int | None, samples: Sequence[np.ndarray] | None = None) -> str:
    """The artefact of a user's ONNX file: the model itself (fp32), converted to fp16, or quantised.

    The file is loaded with its external data (``torch.onnx.export`` writes the weights of even a small
    model to a side file, ``model.onnx.data``, named inside the graph relative to the ``.onnx``), so
    copying the ``.onnx`` alone would leave the artefact without its weights."""
    import onnx

    path = os.path.join(workdir, "model.onnx")
    info["onnx_exporter"] = "user file"
    model = onnx.load(source_path)  # reads the external data files the graph names, beside source_path
    if precision == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        _save_onnx(convert_float_to_float16(model, keep_io_types=False), path)
        return path
    if precision.startswith("int8") and len(model.graph.value_info):
        # shapes an exporter recorded for intermediate tensors can disagree with what ONNX's shape inference
        # derives (torch.onnx's dynamo export of MobileNetV3: 576 vs 1024), which stops ONNX Runtime's
        # quantiser; they are annotations, not the model: the quantiser infers them again
        del model.graph.value_info[:]
        info["value_info_cleared"] = True
    _save_onnx(model, path)
    return _quantise_onnx(path, precision, workdir, info, specs, batch=fixed_batch or 1, samples=samples)


def _quantise_onnx(path: str, precision: str, workdir: str, info: dict, specs: Sequence[InputSpec],
                   batch: int = 1, samples: Sequence[np.ndarray] | None = None) -> str:
    if precision == "int8_dynamic":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        qpath = os.path.join(workdir, "model.int8_dynamic.onnx")
        quantize_dynamic(path, qpath, weight_type=QuantType.QInt8)
        os.remove(path)
        path = qpath
    elif precision == "int8_static":
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        pre = os.path.join(workdir, "model.pre.onnx")
        try:
            quant_pre_process(path, pre, skip_symbolic_shape=True)
        except Exception:  # noqa: BLE001 - pre-processing is an optimisation; quantise the plain export
            pre = path
        qpath = os.path.join(workdir, "model.int8_static.onnx")
        import onnxruntime as ort

        session = ort.InferenceSession(pre, providers=["CPUExecutionProvider"])
        quantize_static(pre, qpath, _Calibration(session, specs, batch, samples), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        for p in {path, pre}:
            if os.path.exists(p):
                os.remove(p)
        path = qpath
        info["calibration"] = (f"{len(samples[0])} samples of your data" if samples is not None else
                               f"{CALIBRATION_IMAGES} generated inputs") + ", QDQ, per-channel int8 weights, uint8 activations"
    return path


# -- OpenVINO ---------------------------------------------------------------------------------------------
#: OpenVINO CPU nodes that do the arithmetic (what decides the executed precision)
OPENVINO_COMPUTE_NODES = ("Convolution", "GroupConvolution", "FullyConnected", "MatMul", "Deconvolution",
                          "ConvolutionBackpropData", "ScaledDotProductAttention")
#: the precision suffix of an OpenVINO CPU kernel name (``brgconv_avx512_I8``, ``gemm_mlas_f32``)
_OPENVINO_DTYPE = {"f32": "fp32", "fp32": "fp32", "f16": "fp16", "fp16": "fp16", "bf16": "bf16", "i8": "int8",
                   "u8": "int8"}
#: the inference precision asked of OpenVINO's CPU plugin per grid precision (int8 comes from the IR)
_OPENVINO_HINT = {"fp32": "f32", "fp16": "f16", "int8_static": "f32"}


def openvino_config(precision: str, threads: int = 1, hint: str = "latency", perf_count: bool = False) -> dict:
    """The CPU plugin's properties for one configuration."""
    config = {"INFERENCE_NUM_THREADS": int(threads), "PERFORMANCE_HINT": hint.upper(),
              "INFERENCE_PRECISION_HINT": _OPENVINO_HINT.get(precision, "f32")}
    if perf_count:
        config["PERF_COUNT"] = True
    return config


def openvino_precision_shares(profiling_info: Sequence[Any]) -> dict[str, float]:
    """Share of compute-node time per executed dtype in an infer request's ``profiling_info``."""
    totals: dict[str, float] = {}
    for p in profiling_info:
        if not str(p.node_type).startswith(OPENVINO_COMPUTE_NODES) or str(p.status).endswith("NOT_RUN"):
            continue
        suffix = str(p.exec_type).rsplit("_", 1)[-1].lower()
        dtype = _OPENVINO_DTYPE.get(suffix, suffix)
        totals[dtype] = totals.get(dtype, 0.0) + p.real_time.total_seconds() + 1e-9
    total = sum(totals.values())
    return {k: v / total for k, v in totals.items()} if total > 0 else {}


def openvino_feed(model: Any, arrays: Sequence[np.ndarray]) -> dict:
    """Arrays keyed by the OpenVINO model's input names, in its element types."""
    feed = {}
    for port, array in zip(model.inputs, arrays):
        feed[port.get_any_name()] = np.asarray(array, dtype=port.get_element_type().to_dtype())
    return feed


def openvino_compile(core: Any, xml: str, arrays: Sequence[np.ndarray], properties: dict) -> Any:
    """The IR at ``xml`` reshaped to the shapes of ``arrays`` (static, as a deployment with a known batch
    compiles it) and compiled on the CPU plugin with ``properties``."""
    model = core.read_model(xml)
    model.reshape({p.get_any_name(): list(a.shape) for p, a in zip(model.inputs, arrays)})
    return core.compile_model(model, "CPU", properties)


def _openvino_checks(xml: str, precision: str, specs: Sequence[InputSpec], batch: int = 1) -> dict:
    import openvino as ov

    arrays = make_batch(specs, batch)
    compiled = openvino_compile(ov.Core(), xml, arrays, openvino_config(precision, 1, "latency", perf_count=True))
    request = compiled.create_infer_request()
    request.infer(openvino_feed(compiled, arrays))
    return {"openvino": precision_verdict(precision, openvino_precision_shares(request.profiling_info))}


def _prepare_openvino(onnx_path: str, precision: str, workdir: str, info: dict, specs: Sequence[InputSpec],
                      batch: int = 1, samples: Sequence[np.ndarray] | None = None) -> str:
    """OpenVINO IR of the fp32 ONNX model at ``onnx_path``; int8 through NNCF on the calibration inputs."""
    import openvino as ov

    model = ov.convert_model(onnx_path)
    if precision == "int8_static":
        import nncf

        if samples is not None:
            total = len(samples[0])
            items = [openvino_feed(model, [a[k:k + 1] for a in samples]) for k in range(total)]
            info["calibration"] = f"{total} samples of your data, NNCF post-training quantisation"
        else:
            items = [openvino_feed(model, make_batch(specs, batch, seed=i)) for i in range(CALIBRATION_IMAGES)]
            info["calibration"] = f"{CALIBRATION_IMAGES} generated inputs, NNCF post-training quantisation"
        model = nncf.quantize(model, nncf.Dataset(items), subset_size=len(items))
    xml = os.path.join(workdir, "model.xml")
    ov.save_model(model, xml, compress_to_fp16=precision == "fp16")
    for path in os.listdir(workdir):
        if path.startswith("model.onnx") or path.endswith(".onnx"):
            os.remove(os.path.join(workdir, path))
    info["format"] = "openvino_ir"
    info["checks"] = _openvino_checks(xml, precision, specs, batch)
    info["artefact_mb"] = round((os.path.getsize(xml) + os.path.getsize(xml[:-4] + ".bin")) / 2**20, 3)
    return xml


def _openvino_unsupported(precision: str) -> str | None:
    if precision == "int8_dynamic":
        return ("OpenVINO quantises activations at run time only in the weight-compressed matrix products of "
                "language models; a dynamic int8 deployment of this model would run in fp32")
    return None


# -- PyTorch ----------------------------------------------------------------------------------------------
def _flop_share(model: Any, is_quantised: Callable[[Any], bool], specs: Sequence[InputSpec] = DEFAULT_INPUTS) -> float:
    """Share of the model's FLOPs (batch 1) in the modules ``is_quantised`` selects."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(*_torch_args(specs))
    per_module = counter.get_flop_counts()
    total = sum(per_module.get("Global", {}).values())
    if total <= 0:
        return 0.0
    selected = 0
    for name, module in model.named_modules():
        if name and is_quantised(module):
            key = f"{type(model).__name__}.{name}" if f"{type(model).__name__}.{name}" in per_module else name
            selected += sum(per_module.get(key, {}).values())
    return min(1.0, selected / total)


def _prepare_torch(model_name: str, model: Any, precision: str, workdir: str, info: dict,
                   specs: Sequence[InputSpec] = DEFAULT_INPUTS, custom: bool = False) -> str:
    import torch

    from .models import QUANTIZABLE, build_quantizable

    path = os.path.join(workdir, f"model.{precision}.pt")
    checks: dict[str, dict] = {}
    if precision in ("fp32", "fp16"):
        if precision == "fp32":  # what PyTorch's dynamic int8 would cover: tune leaves it out below one half
            try:
                info["linear_flop_share"] = round(_flop_share(model, lambda m: isinstance(m, torch.nn.Linear), specs), 4)
            except Exception:  # noqa: BLE001 - a model that rejects its input is reported by the smoke run
                info["linear_flop_share"] = None
        m = model.half() if precision == "fp16" else model
        torch.save(m, path)
        info["format"] = "torch_pickle"
        dtype = str(next(m.parameters()).dtype).replace("torch.", "")
        verdict = precision_verdict(precision, {{"float32": "fp32", "float16": "fp16"}.get(dtype, dtype): 1.0})
        checks = {"pytorch_eager": verdict, "torch_compile": verdict}
        info["checks"] = checks
        return path
    if precision == "int8_dynamic":
        from torch.ao.quantization import quantize_dynamic

        share = _flop_share(model, lambda m: isinstance(m, torch.nn.Linear), specs)
        info["int8_flop_share"] = round(share, 4)
        verdict = precision_verdict(precision, {"int8": share, "fp32": 1.0 - share})
        if not verdict["ok"]:
            verdict["reason"] = (f"PyTorch's dynamic quantisation covers nn.Linear layers only: {100 * share:.1f} % "
                                 f"of {model_name}'s FLOPs would run in int8, the rest in fp32")
            info["checks"] = {"pytorch_eager": verdict, "torch_compile": verdict}
            return ""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            q = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    else:  # int8_static
        if custom or model_name not in QUANTIZABLE:
            reason = (f"torchvision ships no quantizable definition of {model_name} (eager static int8 needs one: "
                      f"quant/dequant stubs and fusable blocks); quantizable: {', '.join(QUANTIZABLE)}; "
                      "ONNX Runtime's int8_static quantises any exported model")
            verdict = {"executed": "none", "shares": {}, "ok": False, "reason": reason}
            info["checks"] = {"pytorch_eager": verdict, "torch_compile": verdict}
            return ""
        q, engine = build_quantizable(model_name, calibration=[_images(2, seed=i) for i in range(4)])
        info["quant_engine"] = engine
        share = _flop_share_quantized(q)
        info["int8_flop_share"] = round(share, 4)
        verdict = precision_verdict(precision, {"int8": share, "fp32": 1.0 - share})
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.trace(q, _torch_args(specs), check_trace=False)
    scripted.save(path)
    info["format"] = "torchscript"
    checks["pytorch_eager"] = verdict
    checks["torch_compile"] = _compile_check(scripted, verdict, specs)
    info["checks"] = checks
    return path


def _flop_share_quantized(q: Any) -> float:
    """Share of conv/linear parameters held by quantised modules (FLOP counting does not see quantised ops)."""
    import torch

    total = quantised = 0
    for m in q.modules():
        mod = type(m).__module__
        if "quantized" in mod and type(m).__name__ in ("Conv2d", "ConvReLU2d", "Linear", "LinearReLU", "ConvAdd2d",
                                                        "ConvAddReLU2d"):
            w = m.weight() if callable(getattr(m, "weight", None)) else None
            n = int(w.numel()) if w is not None else 0
            total += n
            quantised += n
        elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            total += int(m.weight.numel())
    return quantised / total if total else 0.0


def _compile_check(scripted: Any, verdict: dict, specs: Sequence[InputSpec] = DEFAULT_INPUTS) -> dict:
    """Whether torch.compile accepts the saved int8 artefact (it refuses TorchScript modules)."""
    import torch

    try:
        compiled = torch.compile(scripted)
        with torch.no_grad():
            compiled(*_torch_args(specs))
    except Exception as exc:  # noqa: BLE001 - the refusal is the verdict
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return {"executed": "none", "shares": {}, "ok": False,
                "reason": f"torch.compile cannot run the saved int8 artefact (TorchScript): {first}"}
    return verdict


# -- entry point (runs in the prepare worker) -------------------------------------------------------------
def prepare_artefact(model_name: str, family: str, precision: str, workdir: str, *, weights: str = "auto",
                     allow_test_models: bool = False, source: dict | None = None,
                     calibration_data: str | None = None) -> dict:
    """Build the artefact of (model, family, precision) in ``workdir``; returns its description
    (``path`` empty when the precision cannot execute: ``checks`` say why). ``source`` (a
    :class:`~deploybench.live.sources.ModelSource` as JSON) builds a user's model instead of the zoo's;
    ``calibration_data`` (``tune --data``) calibrates ONNX Runtime's static int8 on the user's samples."""
    import torch

    from .models import build_model
    from .sources import ModelSource, build_torch_module

    info: dict[str, Any] = {"model": model_name, "family": family, "precision": precision}
    src = ModelSource.from_json(source) if source else None
    specs = src.input_specs if src is not None else DEFAULT_INPUTS
    info["input_shape"] = list(specs[0].shape)
    info["inputs"] = [s.to_json() for s in specs]
    samples = None
    if calibration_data and precision == "int8_static":
        from .user_data import CALIBRATION_SAMPLES, load_user_data

        samples, _ = load_user_data(calibration_data, specs, src.sys_path if src else None, limit=CALIBRATION_SAMPLES)
    t0 = time.perf_counter()
    torch.manual_seed(0)
    if family == "openvino" and _openvino_unsupported(precision):
        info["checks"] = {"openvino": {"ok": False, "executed": "fp32", "shares": {},
                                       "reason": _openvino_unsupported(precision)}}
        info.update(path="", artefact_mb=None, build_s=round(time.perf_counter() - t0, 3),
                    weights_source="onnx file" if src is not None and src.kind == "onnx" else None)
        return info
    if src is not None and src.kind == "onnx":
        if family not in ("onnx", "openvino"):
            raise ValueError(f"an ONNX file runs on onnxruntime or openvino, not on the {family} family")
        info["weights_source"] = "onnx file"
        if family == "openvino":
            onnx_path = _prepare_onnx_file(src.ref, "fp32", workdir, info, specs, src.fixed_batch)
            path = _prepare_openvino(onnx_path, precision, workdir, info, specs, src.fixed_batch or 1, samples)
            info["path"] = path
            info["build_s"] = round(time.perf_counter() - t0, 3)
            return info
        path = _prepare_onnx_file(src.ref, precision, workdir, info, specs, src.fixed_batch, samples)
        info["format"] = "onnx"
        info["checks"] = _ort_checks(path, precision, workdir, specs, src.fixed_batch or 1)
        info["path"] = path
        info["artefact_mb"] = round(os.path.getsize(path) / 2**20, 3)
        info["build_s"] = round(time.perf_counter() - t0, 3)
        return info
    if src is not None and src.custom:
        model, weights_source = build_torch_module(src, weights)
    else:
        model, weights_source = build_model(model_name, weights, allow_test_models=allow_test_models)
    info["weights_source"] = weights_source
    info["param_mb"] = round(sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20, 3)
    if family == "onnx":
        path = _prepare_onnx(model, precision, workdir, info, specs, samples)
        info["format"] = "onnx"
        info["checks"] = _ort_checks(path, precision, workdir, specs)
    elif family == "openvino":
        onnx_path = _prepare_onnx(model, "fp32", workdir, info, specs)
        path = _prepare_openvino(onnx_path, precision, workdir, info, specs, samples=samples)
    elif family == "torch":
        path = _prepare_torch(model_name, model, precision, workdir, info, specs, custom=bool(src and src.custom))
    else:
        raise ValueError(f"unknown artefact family {family!r}")
    info["path"] = path
    if "artefact_mb" not in info:
        info["artefact_mb"] = round(os.path.getsize(path) / 2**20, 3) if path else None
    info["build_s"] = round(time.perf_counter() - t0, 3)
    return info
