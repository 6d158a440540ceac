"""The leaderboard's built-in columns, each one class of the same ``Metric`` protocol plugins use.

A column is an object with ``name`` (the header), ``description`` (the note printed under each
table) and ``compute(cases) -> float | Interval | None``, called once per table row with that
row's :class:`~deploybench.scoring.CaseSummary` objects (one per seed). That is the whole contract a
plugin implements (see ``deploybench_leaderboard_metrics`` in :mod:`deploybench.hookspecs`). The
list ``cases`` also carries ``cases.context``, a :class:`GroupContext` with what the table's rows
are scored against (the task's penalty, known optimum, random search's mean regret, ...).

A column may also define, and built-ins do:

- ``key``: its name in CSV and JSON (default: the name in snake_case);
- ``header(context) -> str``: a header that depends on the table (default: ``name``);
- ``describe(context) -> str``: the note under the table (default: ``**name** (plugin): description``);
- ``format(value) -> str``: the cell text (default: three significant digits).
- ``applies(cases) -> bool``: whether the column belongs in this table at all, given every case of
  the table (default: always); a column that applies only to some tasks stays out of the others.

Adding a built-in column is writing one class here and listing an instance in
:data:`BUILTIN_COLUMNS`; the markdown, LaTeX, HTML, CSV and JSON outputs all follow.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from .. import direction as direction_
from .reading import CaseSummary, GroupKey
from .statistics import bootstrap_mean_ci

__all__ = ["Metric", "Interval", "GroupContext", "RowCases", "BUILTIN_COLUMNS", "column_key", "column_header",
           "column_note", "column_text", "fmt_num", "DASH"]

DASH = "—"


@runtime_checkable
class Metric(Protocol):
    """What a leaderboard column provides (plugins and built-ins alike)."""

    name: str
    description: str

    def compute(self, cases: Sequence[CaseSummary]) -> "float | Interval | None":
        ...


@dataclass(frozen=True)
class Interval:
    """A mean over seeds with its 95% BCa bootstrap interval."""

    mean: float
    lo: float
    hi: float


@dataclass(frozen=True)
class GroupContext:
    """What one table's rows are scored against; shared by every row of the table.

    ``penalty`` is the objective a seed that found no feasible configuration is scored with, and
    ``penalty_source`` says where it came from: ``"task"`` (declared by the task, recorded in the
    case headers: never depends on which optimizers ran) or ``"observed"`` (records from a
    deploybench that did not record it: the worst feasible objective observed in the table).
    """

    key: GroupKey
    direction: str
    objective_metric: str
    known_optimum: float | None
    penalty: float | None
    penalty_source: str | None
    family_param: str | None
    best_family: Any
    baseline: str
    baseline_regret: float | None
    discovery_tol: float
    statistics: bool = True  # False: means only, no bootstrap intervals (NaN bounds), for a quick summary

    def penalised(self, case: CaseSummary) -> float | None:
        """The case's best feasible objective, or the penalty when it found none."""
        return case.best if case.best is not None else self.penalty

    def regret(self, value: float) -> float:
        """Simple regret against the known optimum, clipped at 0 (noise can land above it)."""
        assert self.known_optimum is not None
        return max(0.0, direction_.regret(self.known_optimum, value, self.direction))

    def seed_text(self, label: str, what: str) -> str:
        k = self.key
        return f"{k.task_label}|{k.task_signature}|{k.budget}|{label}|{what}"


class RowCases(list):
    """One row's case summaries (a plain list to plugins), with the table's ``context`` and the
    row's ``label``."""

    def __init__(self, cases: Sequence[CaseSummary], context: GroupContext, label: str) -> None:
        super().__init__(cases)
        self.context = context
        self.label = label


# -- formatting ---------------------------------------------------------------------------------------
def fmt_num(v: float | None) -> str:
    """Three significant digits, without exponent notation for ordinary magnitudes."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return DASH
    if v == 0:
        return "0"
    mag = math.floor(math.log10(abs(v)))
    if mag < -3:
        return f"{v:.2e}"
    text = f"{v:.{max(0, 2 - mag)}f}"
    return "0" if float(text) == 0 else text


def _pct(v: float | None) -> str:
    return DASH if v is None else f"{100 * v:.0f}%"


def _num1(v: float | None) -> str:
    return DASH if v is None else f"{v:.1f}"


def _ci(v: Interval | None) -> str:
    if v is None:
        return DASH
    if math.isnan(v.lo) and math.isnan(v.hi):
        return fmt_num(v.mean)
    return f"{fmt_num(v.mean)} [{fmt_num(v.lo)}, {fmt_num(v.hi)}]"


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _interval(values: Sequence[float], context: GroupContext, label: str, what: str) -> Interval | None:
    if not len(values):
        return None
    if not context.statistics:
        return Interval(float(np.mean(values)), math.nan, math.nan)
    lo, hi = bootstrap_mean_ci(values, seed_text=context.seed_text(label, what))
    return Interval(float(np.mean(values)), lo, hi)


# -- the protocol's optional parts, with their defaults ------------------------------------------------
def column_key(metric: Any) -> str:
    """The column's name in CSV and JSON."""
    key = getattr(metric, "key", None)
    return key if key else re.sub(r"[^0-9a-z]+", "_", str(metric.name).lower()).strip("_")


def column_header(metric: Any, context: GroupContext) -> str:
    header = getattr(metric, "header", None)
    return header(context) if callable(header) else str(metric.name)


def column_note(metric: Any, context: GroupContext) -> str:
    describe = getattr(metric, "describe", None)
    if callable(describe):
        return describe(context)
    return f"**{metric.name}** (plugin): {getattr(metric, 'description', '')}"


def column_text(metric: Any, value: Any) -> str:
    fmt = getattr(metric, "format", None)
    if callable(fmt):
        return fmt(value)
    if isinstance(value, Interval):
        return _ci(value)
    return fmt_num(value)


# -- built-in columns ---------------------------------------------------------------------------------
class Seeds:
    name = key = "seeds"
    description = "number of seeds (cases) in the row"

    def compute(self, cases: RowCases) -> float:
        return float(len(cases))

    def format(self, value: float | None) -> str:
        return DASH if value is None else str(int(value))

    def describe(self, context: GroupContext) -> str:
        return "**seeds**: cases in the row, one per seed; errored and unfinished cases are scored with what they ran."


class BestObjective:
    name = "best"
    key = "best"
    description = "mean over seeds of the best feasible objective, seeds that found nothing at the task's penalty"

    def header(self, context: GroupContext) -> str:
        return f"best {context.objective_metric} (95% CI)"

    def compute(self, cases: RowCases) -> Interval | None:
        ctx = cases.context
        if ctx.penalty is None:
            return None
        return _interval([ctx.penalised(c) for c in cases], ctx, cases.label, "best")

    def format(self, value: Interval | None) -> str:
        return _ci(value)

    def describe(self, context: GroupContext) -> str:
        worst = "lowest" if direction_.is_max(context.direction) else "highest"
        text = (f"**best {context.objective_metric}** ({context.direction}): mean over seeds of each seed's best "
                f"feasible objective, with a 95% BCa bootstrap interval of the mean (2000 resamples, "
                f"scipy.stats.bootstrap). Seeds that found no feasible configuration are counted, not dropped: ")
        if context.penalty_source == "task":
            return text + (f"they score the task's penalty, {fmt_num(context.penalty)}, its {worst} feasible "
                           f"objective (declared by the task or derived from its ground truth, so it does not depend "
                           f"on which optimizers are in this table).")
        if context.penalty_source == "observed":
            return text + (f"they score {fmt_num(context.penalty)}, the {worst} feasible objective any run in this "
                           f"table observed, because these records do not carry the task's penalty (written before "
                           f"deploybench recorded it); this value depends on the runs in the table, so rerun the "
                           f"cases to score them against the task's own penalty.")
        if context.penalty_source == "undeclared":
            return text + (f"they score {fmt_num(context.penalty)}, the {worst} feasible objective any run in this "
                           f"table observed, because the task declares no penalty (a task sets "
                           f"`TaskMetadata.penalty` to make this score independent of the runs in the table).")
        return text + "no seed of this table found a feasible configuration and the task declares no penalty."


class Success:
    name = key = "success"
    description = "share of seeds that found at least one feasible configuration"

    def compute(self, cases: RowCases) -> float | None:
        return _mean([float(c.found_feasible) for c in cases])

    def format(self, value: float | None) -> str:
        return _pct(value)

    def describe(self, context: GroupContext) -> str:
        return "**success**: share of seeds that found at least one feasible configuration."


class Regret:
    name = key = "regret"
    description = "mean simple regret to the task's known optimum"

    def compute(self, cases: RowCases) -> Interval | None:
        ctx = cases.context
        if ctx.known_optimum is None or ctx.penalty is None:
            return None
        return _interval([ctx.regret(ctx.penalised(c)) for c in cases], ctx, cases.label, "regret")

    def format(self, value: Interval | None) -> str:
        return DASH if value is None else fmt_num(value.mean)

    def describe(self, context: GroupContext) -> str:
        if context.known_optimum is None:
            return "**regret**: not available (the task's optimum is unknown)."
        return (f"**regret**: mean simple regret, |known optimum ({fmt_num(context.known_optimum)}) − best feasible|, "
                f"clipped at 0 (noisy measurements can land above the optimum).")


class NormalisedScore:
    name = "norm. score"
    key = "normalised"
    description = "regret divided by random search's mean regret (0 = optimum, 1 = random search)"

    def header(self, context: GroupContext) -> str:
        return "norm. score (95% CI)"

    def compute(self, cases: RowCases) -> Interval | None:
        ctx = cases.context
        if not ctx.baseline_regret or ctx.known_optimum is None or ctx.penalty is None:
            return None
        values = [ctx.regret(ctx.penalised(c)) / ctx.baseline_regret for c in cases]
        return _interval(values, ctx, cases.label, "norm")

    def describe(self, context: GroupContext) -> str:
        if context.known_optimum is None:
            return "**norm. score**: not available (the task's optimum is unknown)."
        if not context.baseline_regret:
            return f"**norm. score**: not available (no `{context.baseline}` rows to normalise by)."
        return (f"**norm. score**: regret ÷ the mean regret of `{context.baseline}` in this table "
                f"({fmt_num(context.baseline_regret)}); 0 = optimum, 1 = random search (as Bayesmark), "
                f"95% BCa interval.")


class Waste:
    name = key = "waste"
    description = "mean share of trials that crashed, timed out or were infeasible"

    def compute(self, cases: RowCases) -> float | None:
        return _mean([c.n_wasted / c.n_trials for c in cases if c.n_trials])

    def format(self, value: float | None) -> str:
        return _pct(value)

    def describe(self, context: GroupContext) -> str:
        return "**waste**: mean share of trials that crashed, timed out or were infeasible (early-stopped included)."


class Duplicates:
    name = "dup."
    key = "duplicates"
    description = "mean share of trials that re-evaluated a configuration already measured"

    def compute(self, cases: RowCases) -> float | None:
        return _mean([c.n_duplicates / c.n_trials for c in cases if c.n_trials])

    def format(self, value: float | None) -> str:
        return _pct(value)

    def describe(self, context: GroupContext) -> str:
        return "**dup.**: mean share of trials that re-evaluated a configuration already measured in the same run."


class TimeToFirstFeasibleTrials:
    name = "TTFF trials"
    key = "ttff_trials"
    description = "mean trials to the first feasible configuration (budget + 1 when none)"

    def compute(self, cases: RowCases) -> float | None:
        budget = cases.context.key.budget
        return _mean([c.first_feasible_trial if c.first_feasible_trial is not None else budget + 1 for c in cases])

    def format(self, value: float | None) -> str:
        return _num1(value)

    def describe(self, context: GroupContext) -> str:
        return ("**TTFF**: time to first feasible, in trials (1-based) and in seconds of charged cost; seeds that "
                "found nothing count as budget + 1 trials and their total cost.")


class TimeToFirstFeasibleCost:
    name = "TTFF cost s"
    key = "ttff_cost_s"
    description = "mean seconds of cost to the first feasible configuration (total cost when none)"

    def compute(self, cases: RowCases) -> float | None:
        return _mean([c.first_feasible_cost if c.first_feasible_cost is not None else c.total_cost for c in cases])

    def format(self, value: float | None) -> str:
        return _num1(value)

    def describe(self, context: GroupContext) -> str:
        return ""  # explained with TTFF trials


def discovery_rule(context: GroupContext) -> str:
    """What counts as discovering the best family in this table (printed in the notes)."""
    if context.best_family is not None and context.family_param:
        return f"share of seeds whose best feasible configuration has {context.family_param} = {context.best_family}"
    if context.baseline_regret:
        return (f"share of seeds whose simple regret is at most {context.discovery_tol:g} × random search's mean "
                f"regret (= {context.discovery_tol * context.baseline_regret:.3g}); every "
                f"{context.family_param or 'family'} reaches the optimum")
    return "not defined (no best family, and no random-search regret to set a tolerance)"


class Discovery:
    name = key = "discovery"
    description = "share of seeds that found the best family"

    def compute(self, cases: RowCases) -> float | None:
        ctx = cases.context
        if ctx.best_family is not None and ctx.family_param:
            return _mean([float(str(c.best_family_value) == str(ctx.best_family)) for c in cases])
        if ctx.baseline_regret and ctx.known_optimum is not None:
            tol = ctx.discovery_tol * ctx.baseline_regret
            return _mean([float(c.found_feasible and ctx.regret(c.best) <= tol) for c in cases])
        return None

    def format(self, value: float | None) -> str:
        return _pct(value)

    def describe(self, context: GroupContext) -> str:
        return f"**discovery**: {discovery_rule(context)}."


class Cost:
    name = "cost s"
    key = "cost_s"
    description = "mean total seconds of cost charged per seed"

    def compute(self, cases: RowCases) -> float | None:
        return _mean([c.total_cost for c in cases])

    def format(self, value: float | None) -> str:
        return _num1(value)

    def describe(self, context: GroupContext) -> str:
        return "**cost s**: mean total seconds of cost charged per seed (modelled on analytic tasks)."


#: the built-in columns, in table order (plugin columns follow them)
BUILTIN_COLUMNS: tuple[Any, ...] = (Seeds(), BestObjective(), Success(), Regret(), NormalisedScore(), Waste(),
                                    Duplicates(), TimeToFirstFeasibleTrials(), TimeToFirstFeasibleCost(),
                                    Discovery(), Cost())
