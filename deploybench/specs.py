"""Registration by import path: a plugin names its optimizer as ``"package.module:ClassName"``.

Every command and every worker process builds the plugin manager, which imports each plugin's
entry-point module. If that module imported SMAC, Nevergrad or PyTorch, every ``deploybench
--version``, ``deploybench list`` and ``-n`` worker would pay seconds for libraries it never uses.
An :class:`OptimizerSpec` lets the entry-point module stay light: the class is imported when a case
(or ``deploybench.testing``) actually uses it, as setuptools entry points themselves do.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["OptimizerSpec", "load_object", "check_plugin_name", "NAME_PATTERN"]

#: names of tasks, optimizers and executors: they become folder names and parts of node ids
#: (``task[target]::optimizer[seed=3]``), so path separators, brackets and ``::`` are not allowed
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def check_plugin_name(kind: str, name: Any) -> str | None:
    """Why ``name`` cannot name a ``kind`` (task, optimizer, executor), or None when it can."""
    if not isinstance(name, str) or not name:
        return f"{kind} name {name!r} must be a non-empty string"
    if not NAME_PATTERN.match(name) or ".." in name:
        return (f"{kind} name {name!r} is not allowed: names become folder names and node ids, so use letters, "
                "digits and _ . + - (starting with a letter or digit, no '..')")
    return None


def load_object(import_path: str) -> Any:
    """Import ``"package.module:attr.sub"`` and return the attribute (``ImportError`` when missing)."""
    module_name, sep, attr = import_path.partition(":")
    if not sep or not module_name or not attr:
        raise ImportError(f"import path {import_path!r} must look like 'package.module:ClassName'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(f"{import_path!r}: module {module_name!r} has no attribute {attr!r}") from None
    return obj


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer offered by name, import path and one-line description; its module is imported
    only by :meth:`load`. Return it from ``deploybench_register_optimizers`` in place of the class::

        @hookimpl
        def deploybench_register_optimizers():
            return [OptimizerSpec("smac", "deploybench_smac.optimizer:SMACOptimizer",
                                  "SMAC3 random-forest BO through ask/tell")]
    """

    name: str
    import_path: str
    description: str = ""

    def load(self) -> type:
        """Import the class and check that it is an Optimizer named like the spec."""
        from .optimizer import Optimizer

        cls = load_object(self.import_path)
        if not (isinstance(cls, type) and issubclass(cls, Optimizer)):
            raise TypeError(f"{self.import_path} is not a deploybench.Optimizer subclass")
        if getattr(cls, "name", "") != self.name:
            raise TypeError(f"{self.import_path} is registered as {self.name!r} but its class is named "
                            f"{getattr(cls, 'name', '')!r}")
        return cls

    @classmethod
    def of(cls, optimizer_class: type) -> "OptimizerSpec":
        """The spec of a class a plugin registered directly (already imported)."""
        doc = (optimizer_class.__doc__ or "").strip().splitlines()
        return cls(getattr(optimizer_class, "name", ""),
                   f"{optimizer_class.__module__}:{optimizer_class.__qualname__}",
                   getattr(optimizer_class, "description", "") or (doc[0] if doc else ""))
