"""Scoring run records into a leaderboard: metrics, statistics, plots and rendered tables.

- :mod:`.reading`: stream case files (``.jsonl`` or ``.jsonl.gz``) into :class:`CaseSummary`
  objects, grouped by :class:`GroupKey`;
- :mod:`.summary`: :func:`summarize`, the one summary the run summary and the leaderboard share;
- :mod:`.columns`: every table column as a :class:`Metric` (built-ins and plugins alike);
- :mod:`.metrics`: one row per task × optimizer, scored with the task's penalty;
- :mod:`.statistics`: BCa bootstrap intervals, ranks, Friedman, Wilcoxon signed-rank with Holm;
- :mod:`.board`: read → summarize → compare across tasks;
- :mod:`.render` / :mod:`.document` / :mod:`.html_page`: markdown, LaTeX, a standalone HTML page, CSV, JSON;
- :mod:`.plots`: best-so-far curves, waste bars, critical-difference diagram (matplotlib);
- :mod:`.reproduce`: rerun published cases and compare them trial by trial;
- :mod:`.references`: numbers printed by papers, shown apart from measured rows.

A plugin adds a column with the ``deploybench_leaderboard_metrics`` hook (see
:mod:`deploybench.hookspecs`).
"""

from .board import Leaderboard, build_leaderboard
from .columns import BUILTIN_COLUMNS, GroupContext, Interval, Metric
from .metrics import Answer, GroupResult, RowMetrics, score_group
from .reading import CaseSummary, GroupKey, group_summaries, iter_case_paths, iter_summaries, summarize_case_file
from .references import ReferenceRow, ReferenceSet, load_references
from .render import FORMATS, render
from .summary import summarize, summarize_cases

__all__ = ["Leaderboard", "build_leaderboard", "BUILTIN_COLUMNS", "GroupContext", "Interval", "Metric", "Answer",
           "GroupResult", "RowMetrics", "score_group", "CaseSummary", "GroupKey", "group_summaries",
           "iter_case_paths", "iter_summaries", "summarize_case_file", "ReferenceRow", "ReferenceSet",
           "load_references", "FORMATS", "render", "summarize", "summarize_cases"]
