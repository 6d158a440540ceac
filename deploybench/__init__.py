"""DeployBench: benchmark optimizers that choose ML deployment configurations under hard limits.

Everything a plugin author needs is importable from here.
"""

from .hookspecs import hookimpl, hookspec
from .optimizer import Optimizer, OptimizerTags
from .outcome import ErrorKind, Outcome, Status, TrialError, outcome_rank_key
from .space import (
    Categorical,
    Condition,
    Float,
    Integer,
    InvalidConfigError,
    Ordinal,
    Param,
    SearchSpace,
)
from .task import Constraint, EvalContext, Objective, Task, TaskMetadata, TaskSpec

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "hookimpl",
    "hookspec",
    "Optimizer",
    "OptimizerTags",
    "ErrorKind",
    "Outcome",
    "Status",
    "TrialError",
    "outcome_rank_key",
    "Categorical",
    "Condition",
    "Float",
    "Integer",
    "InvalidConfigError",
    "Ordinal",
    "Param",
    "SearchSpace",
    "Constraint",
    "EvalContext",
    "Objective",
    "Task",
    "TaskMetadata",
    "TaskSpec",
]
