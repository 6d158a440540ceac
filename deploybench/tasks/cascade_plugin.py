"""Registers the cascade serving tasks through the public hook, exactly as a third-party plugin would."""

from __future__ import annotations

from typing import Any

from ..hookspecs import hookimpl
from ..task import TaskSpec


def _factory(name: str, source: str):
    def build(target: str):
        from .cascade import build_cascade_task

        if target != source:
            raise ValueError(f"task {name!r} runs only on its own records, target {source!r}; got {target!r}")
        return build_cascade_task(name)

    return build


@hookimpl
def deploybench_register_tasks() -> list[TaskSpec]:
    from .cascade import SCENARIOS

    from .cascade_records import RECORDS

    return [TaskSpec(name, _factory(name, s.source), targets=(s.source,), description=s.description,
                     kind="replay" if s.source in RECORDS else "analytic")
            for name, s in SCENARIOS.items()]


@hookimpl
def deploybench_leaderboard_metrics() -> list[Any]:
    """Recorded cascade tasks add "held-out test": the test-split score of the configuration chosen on validation."""
    from .cascade_records import HeldOutTestScore

    return [HeldOutTestScore()]
