"""Your data for ``tune --data``: accuracy of a deployment on your own samples, and int8 calibration.

An ImageNet folder measures the zoo's classifiers; a practitioner's model needs its own data. ``--data``
also takes:

- ``path/to/data.npz``: one array per model input, named as the input (a one-input model may call it
  ``x``), and optionally ``labels`` (or ``y``), one class index per sample;
- ``package.module:function``: a function called with no arguments that returns the same as a mapping,
  or a tuple ``(inputs, labels)`` with ``inputs`` one array or a sequence of arrays in input order and
  ``labels`` an array or None.

The metric is **top-1 accuracy** against the labels when there are labels, else **agreement with the
fp32 model**: the share of samples whose top-1 class (argmax over the last axis of the first output)
equals the fp32 model's on the same sample. Either way ``accuracy_drop`` is the fp32 figure minus the
deployment's, measured on the same samples, which ``--max-accuracy-drop`` caps. The first
:data:`CALIBRATION_SAMPLES` samples calibrate ONNX Runtime's static int8 instead of generated inputs.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .inputs import InputSpec

__all__ = ["is_user_data", "load_user_data", "predict_all", "data_fingerprint", "UserDataError",
           "CALIBRATION_SAMPLES", "MAX_SAMPLES"]

CALIBRATION_SAMPLES = 32
#: accuracy is measured on at most this many samples (the first ones), so a trial stays a trial
MAX_SAMPLES = 2000
_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_LABEL_KEYS = ("labels", "y")


class UserDataError(ValueError):
    """Data that does not fit the model's inputs; the message says what was expected."""


def is_user_data(text: str | None) -> bool:
    """Whether ``--data`` names an ``.npz`` file or a ``module:function`` (else an ImageNet folder)."""
    return bool(text) and (str(text).lower().endswith(".npz") or bool(_CALLABLE.match(str(text))))


def data_fingerprint(text: str, cwd: str | None = None) -> str:
    """A short hash of the data's file (the ``.npz``, or the function's module), for artefact caches."""
    from .sources import file_fingerprint, module_file

    path: str | None = str(text)
    if _CALLABLE.match(str(text)):
        path = module_file(str(text).split(":", 1)[0], cwd or os.getcwd())
    return (file_fingerprint(path) if path and os.path.isfile(path)
            else hashlib.sha256(str(text).encode()).hexdigest()[:16])


def _raw(text: str, sys_path: str | None) -> Any:
    from .sources import SourceError, import_attribute

    if str(text).lower().endswith(".npz"):
        if not os.path.isfile(text):
            raise UserDataError(f"--data {text}: no such file")
        with np.load(text, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    try:
        function = import_attribute(str(text), sys_path)
    except SourceError as exc:
        raise UserDataError(f"--data {text}: {exc}") from None
    try:
        return function()
    except Exception as exc:  # noqa: BLE001 - the user's function: its error, said once
        raise UserDataError(f"--data {text}: {type(exc).__name__}: {exc}") from None


def load_user_data(text: str, specs: Sequence[InputSpec], sys_path: str | None = None,
                   limit: int | None = MAX_SAMPLES) -> tuple[list[np.ndarray], np.ndarray | None]:
    """(inputs in the order of ``specs``, labels or None), checked against the inputs: same number of
    samples, the rank and fixed sizes of each input (a dynamic axis may have any size)."""
    raw = _raw(text, sys_path)
    labels = None
    if isinstance(raw, Mapping):
        names = [s.name for s in specs]
        arrays = []
        for s in specs:
            key = s.name if s.name in raw else ("x" if len(specs) == 1 and "x" in raw else None)
            if key is None:
                raise UserDataError(f"--data {text}: no array for the input {s.name!r} (arrays: "
                                    f"{', '.join(sorted(raw))}); name one array per input: {', '.join(names)}")
            arrays.append(np.asarray(raw[key]))
        label_key = next((k for k in _LABEL_KEYS if k in raw), None)
        labels = None if label_key is None else np.asarray(raw[label_key])
    elif isinstance(raw, tuple) and 1 <= len(raw) <= 2:
        x = raw[0]
        arrays = [np.asarray(a) for a in x] if isinstance(x, (list, tuple)) else [np.asarray(x)]
        labels = None if len(raw) == 1 or raw[1] is None else np.asarray(raw[1])
    else:
        raise UserDataError(f"--data {text}: the function returned {type(raw).__name__}; expected a mapping of "
                            "arrays by input name (and 'labels'), or a tuple (inputs, labels)")
    if len(arrays) != len(specs):
        raise UserDataError(f"--data {text}: {len(arrays)} input arrays for a model with {len(specs)} inputs")
    n = len(arrays[0]) if arrays and arrays[0].ndim else 0
    out = []
    for s, a in zip(specs, arrays):
        dynamic = {axis for axis, _ in s.dynamic}
        fixed_ok = a.ndim == len(s.shape) + 1 and all(a.shape[i + 1] == v for i, v in enumerate(s.shape)
                                                      if i not in dynamic)
        if not fixed_ok:
            raise UserDataError(f"--data {text}: the array for {s.name!r} has shape {a.shape}; expected "
                                f"(samples, {', '.join(str(v) for v in s.shape)}) as declared ({s.describe()})")
        if len(a) != n:
            raise UserDataError(f"--data {text}: the inputs hold different numbers of samples "
                                f"({', '.join(str(len(x)) for x in arrays)})")
        out.append(a.astype(s.dtype, copy=False))
    if n == 0:
        raise UserDataError(f"--data {text}: no samples")
    if labels is not None:
        if labels.shape[:1] != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise UserDataError(f"--data {text}: labels must be {n} integer class indices, got shape "
                                f"{labels.shape} of {labels.dtype}")
    if limit is not None and n > limit:
        out = [a[:limit] for a in out]
        labels = None if labels is None else labels[:limit]
    return out, labels


def predict_all(predict: Callable[..., np.ndarray], inputs: Sequence[np.ndarray], batch: int) -> np.ndarray:
    """The top-1 class (argmax over the last axis of the first output) of every sample, run in batches of
    exactly ``batch`` (the last one padded with repeats and trimmed: a deployment keeps its batch size)."""
    n = len(inputs[0])
    preds = []
    for start in range(0, n, batch):
        chunk = [a[start:start + batch] for a in inputs]
        size = len(chunk[0])
        if size < batch:
            pad = np.resize(np.arange(size), batch - size)
            chunk = [np.concatenate([c, c[pad]]) for c in chunk]
        out = np.asarray(predict(*chunk))[:size]
        preds.append(out.argmax(axis=-1))
    return np.concatenate(preds)
