"""Scoring run records into a leaderboard: metrics, statistics, plots and rendered tables.

- :mod:`.reading`: stream case files into :class:`CaseSummary` objects, grouped by :class:`GroupKey`;
- :mod:`.metrics`: one row per task × optimizer (best feasible objective, regret, waste, ...);
- :mod:`.statistics`: bootstrap intervals, ranks, Friedman, Wilcoxon signed-rank with Holm;
- :mod:`.board`: read → group → score → compare across tasks;
- :mod:`.render` / :mod:`.document`: tables (tabulate) in markdown, LaTeX, HTML, CSV, JSON;
- :mod:`.plots`: best-so-far curves, waste bars, critical-difference diagram (matplotlib);
- :mod:`.references`: numbers printed by papers, shown apart from measured rows.

A plugin adds a column with the ``deploybench_leaderboard_metrics`` hook (see
:mod:`deploybench.hookspecs`).
"""

from .board import Leaderboard, build_leaderboard
from .metrics import GroupResult, RowMetrics, score_group
from .reading import CaseSummary, GroupKey, group_summaries, iter_summaries, summarize_case_file
from .references import ReferenceRow, ReferenceSet, load_references
from .render import FORMATS, render

__all__ = ["Leaderboard", "build_leaderboard", "GroupResult", "RowMetrics", "score_group", "CaseSummary",
           "GroupKey", "group_summaries", "iter_summaries", "summarize_case_file", "ReferenceRow", "ReferenceSet",
           "load_references", "FORMATS", "render"]
