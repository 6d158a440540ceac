"""One summary of case files, shared by the run summary and the leaderboard.

``deploybench run`` prints a summary when it ends and ``deploybench leaderboard`` publishes
tables; both call :func:`summarize`, so the same records give the same "best" number, the same
success count and the same best configuration everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

from .metrics import DEFAULT_DISCOVERY_TOL, GroupResult, score_group
from .reading import CaseSummary, group_summaries, iter_summaries

__all__ = ["summarize", "summarize_cases"]


def summarize_cases(cases: Iterable[CaseSummary], *, extra_metrics: Sequence[Any] = (),
                    discovery_tol: float = DEFAULT_DISCOVERY_TOL, alpha: float = 0.05,
                    statistics: bool = True) -> list[GroupResult]:
    """Score case summaries: one :class:`GroupResult` per task label, task signature and budget."""
    return [score_group(key, items, extra_metrics=extra_metrics, discovery_tol=discovery_tol, alpha=alpha,
                        statistics=statistics)
            for key, items in group_summaries(cases).items()]


def summarize(paths: Iterable[Path | str], *, extra_metrics: Sequence[Any] = (),
              discovery_tol: float = DEFAULT_DISCOVERY_TOL, alpha: float = 0.05,
              statistics: bool = True) -> list[GroupResult]:
    """Read and score case files: the one summary behind the run summary and the leaderboard.

    ``paths`` are results folders or single case files (``seed_N.jsonl`` or ``.jsonl.gz``). Returns
    one :class:`~deploybench.scoring.metrics.GroupResult` per table (task label, signature, budget),
    tables in a stable order and rows best first. For each row (an optimizer with one parameter
    set):

    - ``row.best`` (an :class:`~deploybench.scoring.columns.Interval`): mean over seeds of the best
      feasible objective, where a seed that found nothing scores the task's penalty
      (``group.penalty``; ``group.context.penalty_source`` says whether the task declared it), with
      a 95% BCa bootstrap interval;
    - ``row.success``, ``row.waste``, ``row.ttff_trials``, ``row.cost``, ``row.regret``,
      ``row.normalised``, ``row.discovery`` and every other column in ``row.values``;
    - ``row.answer``: the best configuration found over the seeds with its measured metrics, the
      seed and trial that found it, how many seeds' best is that same configuration, and its regret
      to the known optimum (``group.known_optimum``) where there is one;
    - ``group.objective_metric`` and ``group.direction`` name what "best" means.

    ``statistics=False`` (for the run summary, which prints means): no bootstrap intervals (their
    bounds are NaN) and no significance tests, so scipy is not even imported; every mean, count and
    answer is the same as with statistics.
    """
    return summarize_cases(iter_summaries(paths), extra_metrics=extra_metrics, discovery_tol=discovery_tol,
                           alpha=alpha, statistics=statistics)
