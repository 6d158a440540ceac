"""Where a model to deploy comes from: a torchvision name, a factory function, or an ONNX file.

``deploybench tune`` and ``deploybench probe`` measure *your* model, not only the suite's zoo. A
:class:`ModelSource` names it in one of three forms (:func:`parse_model_source`):

- ``resnet18``: a torchvision classification model (randomly initialised unless its weights are in the
  local torch hub cache: latency and memory do not depend on weight values; accuracy is then the
  figure torchvision documents, see :mod:`deploybench.live.models`);
- ``package.module:factory``: an importable function returning a ``torch.nn.Module`` (called with no
  arguments); ``input_shape`` gives one sample's shape (default ``3,224,224``), or ``inputs`` several
  named inputs with dtypes and dynamic axes (:mod:`deploybench.live.inputs`). The module is imported
  in the preparing worker with the caller's working directory on ``sys.path``, as ``python -c`` would;
- ``path/to/model.pt``: a whole module saved with ``torch.save(model, path)`` (a pickle: its class must
  be importable from the working directory; load only files you trust). The Python API saves a module
  object it is given this way;
- ``path/to/model.onnx``: an ONNX file, deployed with ONNX Runtime or OpenVINO (there is no PyTorch module to
  run eagerly or compile). Its inputs (names, dtypes, ranks, symbolic axes) are read from the graph;
  ``inputs`` gives the sizes of symbolic axes; a fixed batch dimension restricts the batch sizes to
  that value.

:func:`build_torch_module` runs inside the preparing worker; the parent only parses and checks what it
can without importing the user's code (:func:`check_source`, :func:`onnx_inputs`).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .inputs import InputSpec, InputSpecError, check_dynamic_sizes, default_inputs, from_json_list, parse_input_spec

__all__ = ["ModelSource", "parse_model_source", "parse_input_shape", "check_source", "build_torch_module",
           "onnx_inputs", "SourceError", "DEFAULT_INPUT_SHAPE", "KINDS"]

DEFAULT_INPUT_SHAPE: tuple[int, ...] = (3, 224, 224)
KINDS = ("zoo", "torchvision", "factory", "onnx", "module")
#: a whole saved module (``torch.save(model, path)``); the Python API saves a module object this way
MODULE_SUFFIXES = (".pt", ".pth")
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class SourceError(ValueError):
    """A model source that cannot be used (bad name, missing file, failing import): the message says why."""


@dataclass(frozen=True)
class ModelSource:
    """One model to deploy.

    - ``kind``: ``zoo`` (a model of the suite's grid, :data:`deploybench.device_tables.grid.MODELS`),
      ``torchvision`` (another torchvision classifier), ``factory`` or ``onnx``;
    - ``ref``: the torchvision name, ``package.module:function``, or the ONNX file's absolute path;
    - ``label``: the value of the ``model`` parameter in configurations and reports;
    - ``input_shape``: one sample's shape (channels first), the batch dimension excluded, of a model
      with one float input; ``inputs``: the inputs of any other model (names, shapes, dtypes, dynamic
      axes), and :attr:`input_specs` gives either as a list;
    - ``sys_path``: directory put first on ``sys.path`` before importing a factory;
    - ``fingerprint``: a hash of the ONNX file or of the factory's module file, so a resumed run
      refuses a model that changed under it.
    """

    kind: str
    ref: str
    label: str
    input_shape: tuple[int, ...] = DEFAULT_INPUT_SHAPE
    sys_path: str | None = None
    fingerprint: str | None = None
    fixed_batch: int | None = None
    inputs: tuple[InputSpec, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SourceError(f"unknown model source kind {self.kind!r}; known: {', '.join(KINDS)}")
        object.__setattr__(self, "input_shape", tuple(int(v) for v in self.input_shape))
        object.__setattr__(self, "inputs", tuple(self.inputs))

    @property
    def input_specs(self) -> tuple[InputSpec, ...]:
        """The model's inputs: the declared ones, else one float32 input of ``input_shape``."""
        return self.inputs or default_inputs(self.input_shape)

    @property
    def backends(self) -> tuple[str, ...]:
        """The backends that can run this source (an ONNX file has no PyTorch module)."""
        from ..device_tables.grid import KNOWN_BACKENDS

        return ("onnxruntime", "openvino") if self.kind == "onnx" else KNOWN_BACKENDS

    @property
    def custom(self) -> bool:
        """Whether the preparing worker needs the source (everything but the suite's own zoo)."""
        return self.kind != "zoo"

    def to_json(self) -> dict:
        data = {"kind": self.kind, "ref": self.ref, "label": self.label, "input_shape": list(self.input_shape),
                "sys_path": self.sys_path, "fingerprint": self.fingerprint, "fixed_batch": self.fixed_batch}
        if self.inputs:  # only when declared: a single-image model keeps the JSON (and task signature) it had
            data["inputs"] = [i.to_json() for i in self.inputs]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ModelSource":
        return cls(kind=str(data["kind"]), ref=str(data["ref"]), label=str(data["label"]),
                   input_shape=tuple(data.get("input_shape") or DEFAULT_INPUT_SHAPE), sys_path=data.get("sys_path"),
                   fingerprint=data.get("fingerprint"), fixed_batch=data.get("fixed_batch"),
                   inputs=from_json_list(data.get("inputs")))


def parse_input_shape(text: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """``"3,224,224"`` (or a sequence) as a tuple of positive ints; None stays None."""
    if text is None:
        return None
    parts = text.replace("x", ",").split(",") if isinstance(text, str) else list(text)
    try:
        shape = tuple(int(str(p).strip()) for p in parts if str(p).strip())
    except ValueError:
        raise SourceError(f"input shape {text!r} is not a comma-separated list of integers (e.g. 3,224,224)") from None
    if not shape or any(v <= 0 for v in shape):
        raise SourceError(f"input shape {text!r} needs positive sizes, one sample without the batch (e.g. 3,224,224)")
    return shape


def file_fingerprint(path: str) -> str:
    """A short hash of a file's bytes (a model file, a factory's or data function's module)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _torchvision_names() -> list[str]:
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm))


def parse_model_source(text: str, input_shape: str | Sequence[int] | None = None,
                       cwd: str | None = None, inputs: Sequence[str] | None = None) -> ModelSource:
    """A :class:`ModelSource` from what a user typed; raises :class:`SourceError` with the closest
    valid name when it names nothing. ``inputs`` are ``--input`` texts (:mod:`deploybench.live.inputs`);
    give either them or ``input_shape``."""
    from ..device_tables.grid import MODELS
    from ..errors import did_you_mean

    text = str(text).strip()
    cwd = os.path.abspath(cwd or os.getcwd())
    shape = parse_input_shape(input_shape)
    if inputs and shape is not None:
        raise SourceError("give --input-shape (one float input) or --input (named inputs), not both")
    if not text:
        raise SourceError("empty model: give a torchvision name, package.module:factory, or a .onnx file")
    if text.lower().endswith(MODULE_SUFFIXES):
        path = os.path.abspath(os.path.join(cwd, text))
        if not os.path.isfile(path):
            raise SourceError(f"saved module {text!r} does not exist (looked for {path})")
        label = os.path.splitext(os.path.basename(path))[0]
        return ModelSource("module", path, label, shape or DEFAULT_INPUT_SHAPE, sys_path=cwd,
                           fingerprint=file_fingerprint(path), inputs=_declared_inputs(inputs))
    if text.lower().endswith(".onnx"):
        path = os.path.abspath(os.path.join(cwd, text))
        if not os.path.isfile(path):
            raise SourceError(f"ONNX file {text!r} does not exist (looked for {path})")
        specs, fixed = resolve_onnx_inputs(path, onnx_inputs(path), inputs or (), shape)
        label = os.path.splitext(os.path.basename(path))[0]
        single = len(specs) == 1 and specs[0].dtype == "float32" and not specs[0].dynamic
        return ModelSource("onnx", path, label, specs[0].shape if single else DEFAULT_INPUT_SHAPE,
                           fingerprint=file_fingerprint(path), fixed_batch=fixed, inputs=() if single else specs)
    declared = _declared_inputs(inputs)
    if ":" in text:
        if not _FACTORY.match(text):
            raise SourceError(f"{text!r} is not an import path: use package.module:function (a function that "
                              "returns a torch.nn.Module)")
        module = text.split(":", 1)[0]
        fingerprint = None
        spec_file = module_file(module, cwd)
        if spec_file:
            fingerprint = file_fingerprint(spec_file)
        return ModelSource("factory", text, text, shape or DEFAULT_INPUT_SHAPE, sys_path=cwd, fingerprint=fingerprint,
                           inputs=declared)
    if text in MODELS:
        return ModelSource("zoo", text, text, shape or DEFAULT_INPUT_SHAPE, inputs=declared)
    names = _torchvision_names()
    if text in names:
        return ModelSource("torchvision", text, text, shape or DEFAULT_INPUT_SHAPE, inputs=declared)
    raise SourceError(f"unknown model {text!r}: not a torchvision classification model, not an import path "
                      f"(package.module:function), not a saved module (.pt) and not a .onnx file"
                      + did_you_mean(text, list(MODELS) + names))


def _declared_inputs(texts: Sequence[str] | None) -> tuple[InputSpec, ...]:
    from .inputs import parse_inputs

    try:
        return parse_inputs(list(texts or ()))
    except InputSpecError as exc:
        raise SourceError(str(exc)) from None


def module_file(module: str, cwd: str) -> str | None:
    """The file a module would be imported from (without importing it), or None."""
    import importlib.util

    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    finally:
        if added:
            sys.path.remove(cwd)
    origin = getattr(spec, "origin", None) if spec is not None else None
    return origin if origin and os.path.isfile(origin) else None


def check_source(source: ModelSource) -> None:
    """Cheap checks in the parent (no user code runs here): a factory's module must be findable."""
    if source.kind == "factory":
        module = source.ref.split(":", 1)[0]
        if module_file(module, source.sys_path or os.getcwd()) is None:
            raise SourceError(f"cannot import {source.ref!r}: no module named {module!r} on the Python path "
                              f"(run from the directory that holds it, or install it)")


def import_attribute(ref: str, sys_path: str | None = None) -> Any:
    """The object ``package.module:name`` names (``name`` may be dotted), imported with ``sys_path`` first
    on the path, as ``python -c`` run from there would; :class:`SourceError` says what failed."""
    module_name, attr = ref.split(":", 1)
    if sys_path and sys_path not in sys.path:
        sys.path.insert(0, sys_path)
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise SourceError(f"cannot import {module_name!r} for {ref!r}: {type(exc).__name__}: {exc}") from exc
    for part in attr.split("."):
        if not hasattr(target, part):
            raise SourceError(f"{module_name!r} has no attribute {attr!r} (from {ref!r})")
        target = getattr(target, part)
    return target


# -- inside the preparing worker -----------------------------------------------------------------------------
def build_torch_module(source: ModelSource, weights: str = "auto") -> tuple[Any, str]:
    """The source's ``torch.nn.Module`` in eval mode and where its weights came from."""
    import torch

    if source.kind == "zoo":
        from .models import build_model

        return build_model(source.ref, weights)
    if source.kind == "torchvision":
        import torchvision.models as tvm

        torch.manual_seed(0)
        return tvm.get_model(source.ref, weights=None).eval(), "random"
    if source.kind == "factory":
        target = import_attribute(source.ref, source.sys_path)
        if not callable(target):
            raise SourceError(f"{source.ref!r} is not callable: it must be a function returning a torch.nn.Module")
        torch.manual_seed(0)
        try:
            net = target()
        except Exception as exc:
            raise SourceError(f"the factory {source.ref!r} raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(net, torch.nn.Module):
            raise SourceError(f"the factory {source.ref!r} returned {type(net).__name__}, not a torch.nn.Module")
        return net.eval(), "factory"
    if source.kind == "module":
        if source.sys_path and source.sys_path not in sys.path:
            sys.path.insert(0, source.sys_path)
        try:
            net = torch.load(source.ref, map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001 - the user's file
            raise SourceError(f"cannot load the saved module {source.ref}: {type(exc).__name__}: {exc} (its class must "
                              "be importable here: defined in a module, not in __main__ or a notebook)") from None
        if not isinstance(net, torch.nn.Module):
            raise SourceError(f"{source.ref} holds {type(net).__name__}, not a torch.nn.Module (save the module "
                              "itself with torch.save(model, path), not its state_dict)")
        return net.eval(), "saved module"
    raise SourceError(f"an ONNX source ({source.ref}) has no PyTorch module; it runs on onnxruntime or openvino")


@dataclass(frozen=True)
class GraphInput:
    """One input of an ONNX graph: its name, numpy dtype and dimensions (an int, the name of a symbolic
    dimension, or None for an unnamed one); axis 0 is the batch axis."""

    name: str
    dtype: str
    dims: tuple[int | str | None, ...]


def onnx_inputs(path: str) -> list[GraphInput]:
    """The inputs of an ONNX file (initialisers excluded). Raises :class:`SourceError` when the file does
    not load as ONNX, its external data is not beside it, or the graph is invalid."""
    import onnx

    from .inputs import ONNX_DTYPES

    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the user's file
        raise SourceError(f"{path} does not load as an ONNX model: {type(exc).__name__}: {str(exc)[:300]}") from None
    here = os.path.dirname(path)
    missing = sorted({os.path.join(here, entry.value)
                      for tensor in model.graph.initializer if tensor.data_location == onnx.TensorProto.EXTERNAL
                      for entry in tensor.external_data if entry.key == "location"
                      and not os.path.isfile(os.path.join(here, entry.value))})
    if missing:
        raise SourceError(f"{path} keeps its weights in external data that is not beside it: "
                          f"{', '.join(missing)} (copy the .onnx together with its data file)")
    try:
        onnx.checker.check_model(path)  # by path: external data is resolved beside the file
    except Exception as exc:  # noqa: BLE001 - an invalid graph is the user's file
        raise SourceError(f"{path} is not a valid ONNX model: {type(exc).__name__}: {str(exc)[:300]}") from None
    initializers = {i.name for i in model.graph.initializer}
    out = []
    for graph_input in model.graph.input:
        if graph_input.name in initializers:
            continue
        tensor = graph_input.type.tensor_type
        dtype = ONNX_DTYPES.get(tensor.elem_type)
        if dtype is None:
            raise SourceError(f"{path}: input {graph_input.name!r} has ONNX element type {tensor.elem_type}, which "
                              f"tune cannot generate (supported: {', '.join(sorted(set(ONNX_DTYPES.values())))})")
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim)
        out.append(GraphInput(graph_input.name, dtype, dims))
    if not out:
        raise SourceError(f"{path}: the ONNX graph has no input")
    return out


def resolve_onnx_inputs(path: str, graph: Sequence[GraphInput], texts: Sequence[str],
                        input_shape: tuple[int, ...] | None = None) -> tuple[tuple[InputSpec, ...], int | None]:
    """The inputs to measure an ONNX file with, and its fixed batch size (None: the batch is symbolic).

    Each graph input keeps its name and dtype; its symbolic axes (besides the batch) become dynamic
    axes whose sizes come from ``--input`` (``NAME:SHAPE``, with ``LABEL=N`` or a plain size) or, for a
    single input, ``input_shape``. A graph input with unknown sizes and no ``--input`` is refused with the
    form to use."""
    from ..errors import did_you_mean

    names = [g.name for g in graph]
    by_name = {g.name: g for g in graph}
    given: dict[str, InputSpec] = {}
    for text in texts:
        name = str(text).split(":", 1)[0].strip()
        if name not in by_name:
            raise SourceError(f"--input {text!r}: {os.path.basename(path)} has no input {name!r}; its inputs: "
                              f"{', '.join(names)}" + did_you_mean(name, names))
        try:
            given[name] = parse_input_spec(text, dtype_default=by_name[name].dtype)
        except InputSpecError as exc:
            raise SourceError(str(exc)) from None
    if input_shape is not None:
        if len(graph) != 1:
            raise SourceError(f"{os.path.basename(path)} has {len(graph)} inputs ({', '.join(names)}): "
                              "--input-shape describes one; give each as --input NAME:SHAPE")
        given[graph[0].name] = InputSpec(graph[0].name, tuple(input_shape), graph[0].dtype)
    specs, batches = [], set()
    for g in graph:
        if len(g.dims) < 1:
            raise SourceError(f"{path}: input {g.name!r} is a scalar; expected a batch dimension first")
        batch, sample = g.dims[0], g.dims[1:]
        if isinstance(batch, int) and batch > 0:
            batches.add(batch)
        symbolic = [(axis, d) for axis, d in enumerate(sample) if not (isinstance(d, int) and d > 0)]
        spec = given.get(g.name)
        if spec is None:
            if symbolic:
                shown = ",".join(str(d) if isinstance(d, int) and d > 0 else f"{d or '?'}=N" for d in sample)
                raise SourceError(f"{os.path.basename(path)}: input {g.name!r} has symbolic sizes "
                                  f"({', '.join(str(d or '?') for _, d in symbolic)}); give the sizes to measure, "
                                  f"e.g. --input {g.name}:{shown}:{g.dtype}")
            spec = InputSpec(g.name, tuple(int(d) for d in sample), g.dtype)  # type: ignore[arg-type]
        if len(spec.shape) != len(sample):
            raise SourceError(f"--input {g.name}: {len(spec.shape)} sizes given, but the graph's input has "
                              f"{len(sample)} dimensions besides the batch ({list(sample)})")
        if spec.dtype != g.dtype:
            raise SourceError(f"--input {g.name}: dtype {spec.dtype} given, but the graph's input is {g.dtype}")
        for axis, d in enumerate(sample):
            if isinstance(d, int) and d > 0 and spec.shape[axis] != d:
                raise SourceError(f"--input {g.name}: size {spec.shape[axis]} at axis {axis + 1}, but the graph "
                                  f"fixes it to {d}")
        labels = dict(spec.dynamic)
        dynamic = tuple((axis, labels.get(axis) or (d if isinstance(d, str) else f"{g.name}_{axis + 1}"))
                        for axis, d in symbolic)
        specs.append(InputSpec(spec.name, spec.shape, spec.dtype, dynamic, spec.low, spec.high))
    if len(batches) > 1:
        raise SourceError(f"{os.path.basename(path)}: its inputs fix different batch sizes {sorted(batches)}")
    try:
        check_dynamic_sizes(specs)
    except InputSpecError as exc:
        raise SourceError(str(exc)) from None
    return tuple(specs), (batches.pop() if batches else None)
