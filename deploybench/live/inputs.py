"""What a model takes: named inputs with a shape, a dtype and dynamic axes (``--input``).

An image classifier takes one float tensor ``(batch, 3, 224, 224)``; a language model takes token ids
and an attention mask, integers of a sequence length that changes from request to request; a
recommender takes several tensors of different ranks. :class:`InputSpec` describes one input of one
sample (the batch axis is always axis 0 and is not written), in the form a user types::

    NAME:SHAPE[:DTYPE[:LOW..HIGH]]

    image:3,224,224                       one float32 image (the default form, as --input-shape 3,224,224)
    input_ids:seq=128:int64:0..30522      token ids of a dynamic axis "seq", measured at length 128
    attention_mask:seq=128:int64:0..2     a 0/1 mask on the same axis
    features:64:float16

- ``SHAPE``: comma-separated sizes of one sample; ``LABEL=N`` marks a *dynamic* axis (exported as a
  symbolic dimension, so one artefact serves every length) measured at size ``N``. Inputs that share a
  label share the axis.
- ``DTYPE``: ``float32`` (default), ``float16``, ``int64``, ``int32``, ``uint8`` or ``bool``.
- ``LOW..HIGH``: integer inputs are drawn uniformly from ``[LOW, HIGH)`` (default ``0..2``: valid ids
  of any vocabulary and valid mask values). Latency does not depend on the values, only on shapes and
  dtypes; the range only has to be valid for the model (an embedding's vocabulary).

Inputs are given to a PyTorch model positionally, in the order declared, and to an ONNX model by name.
The generated values are seeded, so every measurement of a configuration sees the same tensors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["InputSpec", "InputSpecError", "parse_input_spec", "parse_inputs", "default_inputs", "make_batch",
           "layout_applies", "DTYPES", "from_json_list", "inputs_of"]

DTYPES: tuple[str, ...] = ("float32", "float16", "int64", "int32", "uint8", "bool")
_FLOAT = ("float32", "float16")
_NAME = re.compile(r"^[A-Za-z_][\w.\-/]*$")
_DYNAMIC = re.compile(r"^([A-Za-z_]\w*)=(\d+)$")
#: ONNX TensorProto element types, by number (onnx.TensorProto.FLOAT == 1, ...)
ONNX_DTYPES: dict[int, str] = {1: "float32", 10: "float16", 7: "int64", 6: "int32", 2: "uint8", 9: "bool"}
_FORM = "NAME:SHAPE[:DTYPE[:LOW..HIGH]], e.g. input_ids:seq=128:int64:0..30522"


class InputSpecError(ValueError):
    """An input description that cannot be used; the message shows the expected form."""


@dataclass(frozen=True)
class InputSpec:
    """One named input of one sample (batch axis excluded).

    - ``shape``: the sizes measured (a dynamic axis at its measured size);
    - ``dynamic``: ``(axis, label)`` pairs, axes of ``shape`` that are symbolic in the artefact;
    - ``low``/``high``: the range of generated integer values (``high`` exclusive).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    dynamic: tuple[tuple[int, str], ...] = ()
    low: int = 0
    high: int = 2

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise InputSpecError(f"input {self.name!r}: unknown dtype {self.dtype!r}; allowed: {', '.join(DTYPES)}")
        object.__setattr__(self, "shape", tuple(int(v) for v in self.shape))
        object.__setattr__(self, "dynamic", tuple((int(a), str(lbl)) for a, lbl in self.dynamic))
        if any(v <= 0 for v in self.shape):
            raise InputSpecError(f"input {self.name!r}: sizes must be positive, got {list(self.shape)}")
        if self.high <= self.low:
            raise InputSpecError(f"input {self.name!r}: the value range {self.low}..{self.high} is empty")

    @property
    def is_float(self) -> bool:
        return self.dtype in _FLOAT

    def describe(self) -> str:
        """The spec in the form a user types (dynamic axes as ``label=size``)."""
        labels = dict(self.dynamic)
        dims = ",".join(f"{labels[i]}={v}" if i in labels else str(v) for i, v in enumerate(self.shape))
        text = f"{self.name}:{dims}:{self.dtype}"
        return text if self.is_float else f"{text}:{self.low}..{self.high}"

    def to_json(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "dynamic": [list(d) for d in self.dynamic], "low": self.low, "high": self.high}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "InputSpec":
        return cls(name=str(data["name"]), shape=tuple(data["shape"]), dtype=str(data.get("dtype", "float32")),
                   dynamic=tuple(tuple(d) for d in data.get("dynamic") or ()), low=int(data.get("low", 0)),
                   high=int(data.get("high", 2)))


def from_json_list(data: Sequence[Mapping[str, Any]] | None) -> tuple[InputSpec, ...]:
    return tuple(InputSpec.from_json(d) for d in data or ())


def inputs_of(description: Mapping[str, Any]) -> tuple[InputSpec, ...]:
    """The inputs an artefact or a deployment description records (``inputs``); one prepared before named
    inputs existed has one float input of its ``input_shape``."""
    return from_json_list(description.get("inputs")) or default_inputs(
        tuple(int(v) for v in description.get("input_shape") or (3, 224, 224)))


def default_inputs(shape: Sequence[int]) -> tuple[InputSpec, ...]:
    """The single float32 input ``input`` of shape ``shape`` (what ``--input-shape`` declares)."""
    return (InputSpec("input", tuple(shape)),)


def parse_input_spec(text: str, dtype_default: str = "float32") -> InputSpec:
    """``NAME:SHAPE[:DTYPE[:LOW..HIGH]]`` as an :class:`InputSpec` (see the module docstring); an
    omitted dtype is ``dtype_default`` (an ONNX file's own input type, when the input is the file's)."""
    parts = str(text).strip().split(":")
    if len(parts) < 2 or len(parts) > 4 or not parts[0] or not parts[1]:
        raise InputSpecError(f"--input {text!r}: expected {_FORM}")
    name = parts[0].strip()
    if not _NAME.match(name):
        raise InputSpecError(f"--input {text!r}: {name!r} is not an input name (letters, digits, _ . - /)")
    shape, dynamic = [], []
    for axis, dim in enumerate(d.strip() for d in parts[1].split(",")):
        match = _DYNAMIC.match(dim)
        if match:
            dynamic.append((axis, match.group(1)))
            dim = match.group(2)
        if not dim.isdigit() or int(dim) <= 0:
            raise InputSpecError(f"--input {text!r}: size {dim!r} is not a positive integer or LABEL=SIZE "
                                 f"(a dynamic axis measured at SIZE); expected {_FORM}")
        shape.append(int(dim))
    dtype = parts[2].strip() if len(parts) > 2 and parts[2].strip() else dtype_default
    if dtype not in DTYPES:
        from ..errors import did_you_mean

        raise InputSpecError(f"--input {text!r}: unknown dtype {dtype!r}; allowed: {', '.join(DTYPES)}"
                             + did_you_mean(dtype, list(DTYPES)))
    low, high = 0, 2
    if len(parts) == 4:
        match = re.match(r"^(-?\d+)\.\.(-?\d+)$", parts[3].strip())
        if not match:
            raise InputSpecError(f"--input {text!r}: value range {parts[3]!r} is not LOW..HIGH (e.g. 0..30522)")
        if dtype in _FLOAT:
            raise InputSpecError(f"--input {text!r}: a value range applies to integer inputs only, not {dtype}")
        low, high = int(match.group(1)), int(match.group(2))
    return InputSpec(name, tuple(shape), dtype, tuple(dynamic), low, high)


def parse_inputs(texts: Sequence[str]) -> tuple[InputSpec, ...]:
    """Several ``--input`` values; names must be distinct and a shared dynamic label the same size."""
    specs = tuple(parse_input_spec(t) for t in texts)
    names = [s.name for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InputSpecError(f"--input names {', '.join(twice)} more than once; each input is declared once")
    check_dynamic_sizes(specs)
    return specs


def check_dynamic_sizes(specs: Sequence[InputSpec]) -> None:
    """Inputs sharing a dynamic axis label must be measured at the same size."""
    sizes: dict[str, set[int]] = {}
    for s in specs:
        for axis, label in s.dynamic:
            sizes.setdefault(label, set()).add(s.shape[axis])
    mixed = {k: sorted(v) for k, v in sizes.items() if len(v) > 1}
    if mixed:
        label, values = next(iter(mixed.items()))
        raise InputSpecError(f"the dynamic axis {label!r} has different sizes {values} in different inputs; "
                             "inputs that share an axis share its size")


def layout_applies(specs: Sequence[InputSpec]) -> bool:
    """Whether the NHWC ``channels_last`` knob means anything: one float image input (C, H, W)."""
    return len(specs) == 1 and specs[0].is_float and len(specs[0].shape) == 3


def make_batch(specs: Sequence[InputSpec], batch: int, seed: int = 0) -> list[np.ndarray]:
    """Seeded arrays for a batch, in declaration order: floats standard normal, integers uniform in
    ``[low, high)``, booleans uniform."""
    rng = np.random.default_rng(seed)
    out = []
    for s in specs:
        shape = (int(batch), *s.shape)
        if s.is_float:
            out.append(rng.standard_normal(shape, dtype=np.float32).astype(s.dtype))
        elif s.dtype == "bool":
            out.append(rng.integers(0, 2, size=shape).astype(bool))
        else:
            out.append(rng.integers(s.low, s.high, size=shape).astype(s.dtype))
    return out


def onnx_dtype(type_string: str) -> str:
    """ONNX Runtime's ``tensor(float16)`` as ``float16`` (the numpy name)."""
    inner = type_string[type_string.find("(") + 1:type_string.rfind(")")] if "(" in type_string else type_string
    return {"float": "float32", "double": "float64"}.get(inner, inner)
