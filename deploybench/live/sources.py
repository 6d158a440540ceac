"""Where a model to deploy comes from: a torchvision name, a factory function, or an ONNX file.

``deploybench tune`` and ``deploybench probe`` measure *your* model, not only the suite's zoo. A
:class:`ModelSource` names it in one of three forms (:func:`parse_model_source`):

- ``resnet18``: a torchvision classification model (randomly initialised unless its weights are in the
  local torch hub cache: latency and memory do not depend on weight values; accuracy is then the
  figure torchvision documents, see :mod:`deploybench.live.models`);
- ``package.module:factory``: an importable function returning a ``torch.nn.Module`` (called with no
  arguments); ``input_shape`` gives one sample's shape (default ``3,224,224``). The module is imported
  in the preparing worker with the caller's working directory on ``sys.path``, as ``python -c`` would;
- ``path/to/model.onnx``: an ONNX file, deployed with ONNX Runtime only (there is no PyTorch module to
  run eagerly or compile). Its input shape is read from the graph; a fixed batch dimension restricts
  the batch sizes to that value.

:func:`build_torch_module` and :func:`onnx_input` run inside the preparing worker; the parent only
parses and checks what it can without importing the user's code (:func:`check_source`).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

__all__ = ["ModelSource", "parse_model_source", "parse_input_shape", "check_source", "build_torch_module",
           "onnx_input", "SourceError", "DEFAULT_INPUT_SHAPE", "KINDS"]

DEFAULT_INPUT_SHAPE: tuple[int, ...] = (3, 224, 224)
KINDS = ("zoo", "torchvision", "factory", "onnx")
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
    - ``input_shape``: one sample's shape (channels first), the batch dimension excluded;
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

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SourceError(f"unknown model source kind {self.kind!r}; known: {', '.join(KINDS)}")
        object.__setattr__(self, "input_shape", tuple(int(v) for v in self.input_shape))

    @property
    def backends(self) -> tuple[str, ...]:
        """The backends that can run this source (an ONNX file has no PyTorch module)."""
        from ..device_tables.grid import BACKENDS

        return ("onnxruntime",) if self.kind == "onnx" else BACKENDS

    @property
    def custom(self) -> bool:
        """Whether the preparing worker needs the source (everything but the suite's own zoo)."""
        return self.kind != "zoo"

    def to_json(self) -> dict:
        return {"kind": self.kind, "ref": self.ref, "label": self.label, "input_shape": list(self.input_shape),
                "sys_path": self.sys_path, "fingerprint": self.fingerprint, "fixed_batch": self.fixed_batch}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ModelSource":
        return cls(kind=str(data["kind"]), ref=str(data["ref"]), label=str(data["label"]),
                   input_shape=tuple(data.get("input_shape") or DEFAULT_INPUT_SHAPE), sys_path=data.get("sys_path"),
                   fingerprint=data.get("fingerprint"), fixed_batch=data.get("fixed_batch"))


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


def _file_hash(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _torchvision_names() -> list[str]:
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm))


def parse_model_source(text: str, input_shape: str | Sequence[int] | None = None,
                       cwd: str | None = None) -> ModelSource:
    """A :class:`ModelSource` from what a user typed; raises :class:`SourceError` with the closest
    valid name when it names nothing."""
    from ..device_tables.grid import MODELS
    from ..space import closest_name

    text = str(text).strip()
    cwd = os.path.abspath(cwd or os.getcwd())
    shape = parse_input_shape(input_shape)
    if not text:
        raise SourceError("empty model: give a torchvision name, package.module:factory, or a .onnx file")
    if text.lower().endswith(".onnx"):
        path = os.path.abspath(os.path.join(cwd, text))
        if not os.path.isfile(path):
            raise SourceError(f"ONNX file {text!r} does not exist (looked for {path})")
        file_shape, fixed = onnx_input(path)
        if shape is None:
            if any(v is None for v in file_shape):
                raise SourceError(f"{text}: the input shape has symbolic dimensions besides the batch "
                                  f"({file_shape}); give --input-shape")
            shape = tuple(int(v) for v in file_shape)
        label = os.path.splitext(os.path.basename(path))[0]
        return ModelSource("onnx", path, label, shape, fingerprint=_file_hash(path), fixed_batch=fixed)
    if ":" in text:
        if not _FACTORY.match(text):
            raise SourceError(f"{text!r} is not an import path: use package.module:function (a function that "
                              "returns a torch.nn.Module)")
        module = text.split(":", 1)[0]
        fingerprint = None
        spec_file = _module_file(module, cwd)
        if spec_file:
            fingerprint = _file_hash(spec_file)
        return ModelSource("factory", text, text, shape or DEFAULT_INPUT_SHAPE, sys_path=cwd, fingerprint=fingerprint)
    if text in MODELS:
        return ModelSource("zoo", text, text, shape or DEFAULT_INPUT_SHAPE)
    names = _torchvision_names()
    if text in names:
        return ModelSource("torchvision", text, text, shape or DEFAULT_INPUT_SHAPE)
    hint = closest_name(text, list(MODELS) + names)
    raise SourceError(f"unknown model {text!r}: not a torchvision classification model, not an import path "
                      f"(package.module:function) and not a .onnx file" + (f"; did you mean {hint!r}?" if hint else ""))


def _module_file(module: str, cwd: str) -> str | None:
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
        if _module_file(module, source.sys_path or os.getcwd()) is None:
            raise SourceError(f"cannot import {source.ref!r}: no module named {module!r} on the Python path "
                              f"(run from the directory that holds it, or install it)")


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
        module_name, attr = source.ref.split(":", 1)
        if source.sys_path and source.sys_path not in sys.path:
            sys.path.insert(0, source.sys_path)
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise SourceError(f"cannot import {module_name!r} for {source.ref!r}: {type(exc).__name__}: {exc}") from exc
        target: Any = module
        for part in attr.split("."):
            if not hasattr(target, part):
                raise SourceError(f"{module_name!r} has no attribute {attr!r} (from {source.ref!r})")
            target = getattr(target, part)
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
    raise SourceError(f"an ONNX source ({source.ref}) has no PyTorch module; it runs on onnxruntime only")


def onnx_input(path: str) -> tuple[tuple[int | None, ...], int | None]:
    """(one sample's input shape, the fixed batch size or None) of an ONNX file's first input.
    Raises :class:`SourceError` when the file does not load as ONNX."""
    import onnx

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
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if not inputs:
        raise SourceError(f"{path}: the ONNX graph has no input")
    dims = inputs[0].type.tensor_type.shape.dim
    values = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if len(values) < 2:
        raise SourceError(f"{path}: the first input has {len(values)} dimension(s); expected a batch dimension "
                          "and a sample shape")
    return tuple(values[1:]), values[0]
