"""Registers the cascade serving tasks and their leaderboard column through the public hooks,
exactly as a third-party plugin would. Only the light scenario table is imported here; a task's
module (numpy, the instances, the records) is imported when the task is built."""

from __future__ import annotations

from typing import Any

from ..hookspecs import hookimpl
from ..task import TaskSpec
from .cascade_scenarios import RECORDS, SCENARIOS, HeldOutTestScore


def _factory(name: str, source: str):
    def build(target: str):
        from .cascade import build_cascade_task

        if target != source:
            raise ValueError(f"task {name!r} runs only on its own records, target {source!r}; got {target!r}")
        return build_cascade_task(name)

    return build


@hookimpl
def deploybench_register_tasks() -> list[TaskSpec]:
    return [TaskSpec(name, _factory(name, s.source), targets=(s.source,), description=s.description,
                     kind="replay" if s.source in RECORDS else "analytic")
            for name, s in SCENARIOS.items()]


@hookimpl
def deploybench_leaderboard_metrics() -> list[Any]:
    """Recorded cascade tasks add "held-out test": the test-split score of the configuration chosen on validation."""
    return [HeldOutTestScore()]
