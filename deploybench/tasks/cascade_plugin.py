"""Registers the cascade serving tasks through the public hook, exactly as a third-party plugin would."""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..task import TaskSpec


def _factory(name: str):
    def build(target: str):
        from .cascade import build_cascade_task

        return build_cascade_task(name)

    return build


@hookimpl
def deploybench_register_tasks() -> list[TaskSpec]:
    from .cascade import SCENARIOS

    return [TaskSpec(name, _factory(name), targets=(s.source,), description=s.description, kind="analytic")
            for name, s in SCENARIOS.items()]
