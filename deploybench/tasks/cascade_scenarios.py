"""The cascade scenarios (names, sources, limits) and the held-out test column, without numpy.

Kept apart from :mod:`deploybench.tasks.cascade` so registering the tasks and the leaderboard column
(which every command does) imports nothing heavy; the tasks themselves are built on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CascadeScenario", "SCENARIOS", "RECORDS", "HeldOutTestScore"]

#: recorded sources and their files (made by :mod:`deploybench.tasks.cascade_records`)
RECORDS = {"digits_ee": "cascade_digits_ee.npz", "synth_ee": "cascade_synth_ee.npz",
           "sklearn": "cascade_sklearn.npz"}


@dataclass(frozen=True)
class CascadeScenario:
    """One task: a source, the objective, the caps and the device memory (above it: ``oom``)."""

    name: str
    source: str
    objective: str  # "accuracy" (maximise) or "mean_latency_ms" (minimise)
    mean_latency_ms: float | None
    p95_latency_ms: float | None
    memory_mb: float
    device_memory_mb: float
    accuracy_drop: float | None = None  # points below the full model
    budget: int = 40
    time_limit_s: float = 60.0
    description: str = ""
    #: recorded sources: caps are multiples of the full model's latency and of all members' memory
    relative: bool = False


SCENARIOS: dict[str, CascadeScenario] = {
    s.name: s for s in (
        CascadeScenario("cascade_line", "line", "accuracy", 16.0, 32.0, 1200.0, 1600.0,
                 description="maximise accuracy under a 16 ms mean latency cap on a benign four-member line"),
        CascadeScenario("cascade_overthink", "overthink", "accuracy", 16.0, 32.0, 1200.0, 1600.0,
                 description="maximise accuracy under a 16 ms mean latency cap; the deepest member over-thinks"),
        CascadeScenario("cascade_skip", "skip", "accuracy", 20.0, 60.0, 2200.0, 2800.0,
                 description="maximise accuracy under a 20 ms mean latency cap; the best chains skip a member"),
        CascadeScenario("cascade_tree", "tree", "accuracy", 10.0, 24.0, 1300.0, 1700.0,
                 description="maximise accuracy under a 10 ms mean latency cap on a router-to-specialists tree"),
        CascadeScenario("cascade_trap", "trap", "accuracy", 2.5, 2.5, 100.0, 120.0,
                 description="the necessity-of-recall trap: recall-free policies are 10x worse in error"),
        CascadeScenario("cascade_line_latency", "line", "mean_latency_ms", None, 32.0, 1200.0, 1600.0, accuracy_drop=1.0,
                 description="minimise mean latency with at most 1 accuracy point below the full model (Apparate's "
                             "form)"),
        CascadeScenario("cascade_digits_ee", "digits_ee", "accuracy", 0.7, 1.5, 0.8, 1.0, relative=True,
                 description="early-exit MLP on scikit-learn's digits: maximise validation accuracy under 70 % of "
                             "the full network's mean latency"),
        CascadeScenario("cascade_synth_ee", "synth_ee", "accuracy", 0.7, 1.5, 0.8, 1.0, relative=True,
                 description="early-exit MLP on make_classification data: maximise validation accuracy under 70 % "
                             "of the full network's mean latency"),
        CascadeScenario("cascade_sklearn", "sklearn", "mean_latency_ms", None, 1.5, 0.8, 0.95, accuracy_drop=0.3,
                 relative=True, description="cascade of five scikit-learn classifiers ordered by measured cost: "
                                            "minimise mean latency within 0.3 accuracy points of the costliest model"),
    )
}


class HeldOutTestScore:
    """Leaderboard column for recorded cascade tasks: the optimizer chose its configuration on the
    validation split; this scores that choice on the held-out test split (like Bayesmark's hidden
    generalisation objective). ``None`` for tasks without test metrics."""

    name = "held-out test"
    key = "held_out_test"
    description = ("mean over seeds that found a feasible configuration of the test-split value (test accuracy, or "
                   "test mean latency for latency objectives) of the configuration chosen on validation; recorded "
                   "cascade tasks only")

    def applies(self, cases: Any) -> bool:
        """Only tables of recorded cascade tasks get the column."""
        recorded = {name for name, s in SCENARIOS.items() if s.source in RECORDS}
        return any(getattr(c, "task", None) in recorded for c in cases)

    def compute(self, cases: Any) -> float | None:
        values = []
        for case in cases:
            metrics = getattr(case, "best_metrics", None) or {}
            key = f"test_{getattr(case, 'objective_metric', '')}"
            if key not in metrics:
                if metrics:
                    return None  # a task without test metrics: the column does not apply
                continue
            values.append(float(metrics[key]))
        return sum(values) / len(values) if values else None
