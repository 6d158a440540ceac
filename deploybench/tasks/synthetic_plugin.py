"""Registers the synthetic tasks through the public hook, exactly as a third-party plugin would."""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..task import TaskSpec
from .synthetic import CrashCliff, CrashyBranin, HierarchicalRosenbrock
from .synthetic_mf import CrashyBraninMF


@hookimpl
def deploybench_register_tasks() -> list[TaskSpec]:
    return [
        TaskSpec("crashy_branin", lambda target: CrashyBranin(), description=CrashyBranin.__doc__.splitlines()[0]),
        TaskSpec("hierarchical_rosenbrock", lambda target: HierarchicalRosenbrock(),
                 description=HierarchicalRosenbrock.__doc__.splitlines()[0]),
        TaskSpec("crash_cliff", lambda target: CrashCliff(), description=CrashCliff.__doc__.splitlines()[0]),
        TaskSpec("crashy_branin_mf", lambda target: CrashyBraninMF(),
                 description=CrashyBraninMF.__doc__.splitlines()[0]),
    ]
