"""What makes two case files "the same case", and the readable path of each parameter variant.

A case's identity is its task signature plus the optimizer's registered name, parameters and
version. The class's import path is recorded beside them but is not part of the identity, so moving
an optimizer to another module does not make its published records refuse ``--resume``.
Results of different identities are never mixed or overwritten silently: each parameter variant
gets its own folder (``tba[T_init=0.9]``), and ``--resume`` refuses a case file whose identity
differs from the case it would continue.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import re
from typing import Any, Mapping

from . import __version__

__all__ = ["optimizer_version", "variant_name", "case_identity", "identity_changes", "IDENTITY_FIELDS"]

#: header fields that make up a case's identity (besides the optimizer name, which is in the path)
IDENTITY_FIELDS = ("task_signature", "optimizer", "optimizer_params", "optimizer_version")
_PLAIN = re.compile(r"^[A-Za-z0-9_.+-]*$")
_MAX_NAME = 120


@functools.lru_cache(maxsize=1)
def _module_distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def optimizer_version(cls: type) -> str | None:
    """``"<distribution> <version>"`` of the package that ships ``cls`` (``deploybench 0.1.0`` for
    the built-ins), or None for a class loaded from a plain module (``-p module``)."""
    top = cls.__module__.split(".")[0]
    dists = _module_distributions().get(top) or []
    for dist in dists:
        try:
            return f"{dist} {importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    if top == "deploybench":
        return f"deploybench {__version__}"
    return None


def _value_text(value: Any) -> str:
    if isinstance(value, str) and _PLAIN.match(value):
        return value
    if isinstance(value, tuple) and value and all(isinstance(v, str) and _PLAIN.match(v) for v in value):
        return "+".join(value)  # a comma-list task parameter (models=mobilenet_v2+resnet18)
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return text.replace("/", "%2F").replace("\\", "%5C").replace("\0", "")


def variant_name(optimizer: str, params: Mapping[str, Any]) -> str:
    """The folder (and node-id) name of an optimizer with non-default parameters: ``tba`` without
    any, ``tba[T_init=0.9]`` with one, keys sorted so the name is stable. A name longer than 120
    characters ends in a hash of the parameters instead of listing them."""
    if not params:
        return optimizer
    inner = ",".join(f"{k}={_value_text(v)}" for k, v in sorted(params.items()))
    name = f"{optimizer}[{inner}]"
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha1(json.dumps(dict(params), sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{optimizer}[params-{digest}]"


def case_identity(task_signature: str, optimizer: str, cls: type, params: Mapping[str, Any]) -> dict:
    """The identity fields a case header records (``params`` as ``get_params()`` returns them)."""
    return {
        "task_signature": task_signature,
        "optimizer": optimizer,
        "optimizer_class": f"{cls.__module__}.{cls.__qualname__}",
        "optimizer_params": json.loads(json.dumps(dict(params), sort_keys=True, default=str)),
        "optimizer_version": optimizer_version(cls),
    }


def identity_changes(header: Mapping[str, Any], identity: Mapping[str, Any]) -> list[str]:
    """What differs between a case file's header and the identity of the case about to run, in
    words (empty when they are the same case). A field an older file lacks is not a change."""
    changes = []
    for key in IDENTITY_FIELDS:
        if key not in header:
            continue
        old, new = header[key], identity.get(key)
        if key == "optimizer_params":
            old = json.loads(json.dumps(old or {}, sort_keys=True, default=str))
        if old != new:
            label = key.replace("_", " ")
            changes.append(f"{label} {_short(old)} -> {_short(new)}")
    return changes


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."
