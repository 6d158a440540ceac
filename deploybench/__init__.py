"""DeployBench: benchmark optimizers that choose ML deployment configurations under hard limits.

Everything a plugin author needs is importable from here. The names are resolved on first use
(PEP 562), so ``deploybench --version`` and other commands that need none of them do not pay for
importing NumPy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "ExitCode": "exit_codes",
    "hookimpl": "hookspecs",
    "hookspec": "hookspecs",
    "Optimizer": "optimizer",
    "OptimizerTags": "optimizer",
    "OptimizerContext": "optimizer",
    "build_optimizer": "optimizer",
    "OptimizerSpec": "specs",
    "ErrorKind": "outcome",
    "Outcome": "outcome",
    "Status": "outcome",
    "TrialError": "outcome",
    "outcome_rank_key": "outcome",
    "Categorical": "space",
    "Condition": "space",
    "Float": "space",
    "Integer": "space",
    "InvalidConfigError": "space",
    "Ordinal": "space",
    "Param": "space",
    "SearchSpace": "space",
    "Constraint": "task",
    "EvalContext": "task",
    "Objective": "task",
    "Task": "task",
    "TaskMetadata": "task",
    "TaskSpec": "task",
    "TaskParam": "task",
    "tune": "tuning",
    "TuneSpec": "tuning",
    "TuneResult": "tuning",
    "probe": "tuning.probe",
    "ProbeResult": "tuning.probe",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # later look-ups are plain attribute reads
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .exit_codes import ExitCode
    from .hookspecs import hookimpl, hookspec
    from .optimizer import Optimizer, OptimizerContext, OptimizerTags, build_optimizer
    from .outcome import ErrorKind, Outcome, Status, TrialError, outcome_rank_key
    from .space import Categorical, Condition, Float, Integer, InvalidConfigError, Ordinal, Param, SearchSpace
    from .specs import OptimizerSpec
    from .task import Constraint, EvalContext, Objective, Task, TaskMetadata, TaskParam, TaskSpec
