"""Reading case files into compact per-case summaries, one line at a time.

A leaderboard over thousands of cases must not hold every trial in memory: each file is streamed
line by line and reduced to a :class:`CaseSummary` (counts, the best feasible result, the first
feasible trial, and two small curves: best-so-far and cumulative cost per trial). Summaries are
then grouped by :class:`GroupKey` (task label, task signature, budget), so runs of different task
versions or budgets never mix in one table.
"""

from __future__ import annotations

import json
import math
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from .. import direction as direction_
from ..outcome import counts_as_found
from ..results import CASE_PATTERNS, CaseLocation, case_location, iter_case_files, scan_case_file

__all__ = ["GroupKey", "CaseSummary", "summarize_case_file", "iter_summaries", "group_summaries",
           "iter_case_paths", "CASE_PATTERNS"]

#: case file names the leaderboard reads: plain, or gzip-compressed (the published ones are in archives)

#: outcome statuses that waste a trial (early-stopped trials are infeasible)
WASTED = ("infeasible", "crashed", "timeout")


@dataclass(frozen=True)
class GroupKey:
    """What makes runs comparable: the same task (label and signature) at the same budget."""

    task_label: str
    task_signature: str
    budget: int
    budget_seconds: float | None = None

    def title(self, *, with_signature: bool = False) -> str:
        text = f"{self.task_label} (B={self.budget}"
        if self.budget_seconds is not None:
            text += f", {self.budget_seconds:g} s of cost"
        if with_signature:
            text += f", signature {self.task_signature}"
        return text + ")"

    def slug(self) -> str:
        """A file-name-safe identifier (used for plot files)."""
        base = f"{self.task_label}-B{self.budget}"
        if self.budget_seconds is not None:
            base += f"-S{self.budget_seconds:g}"
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in base)
        return f"{safe}-{self.task_signature[:8]}"


@dataclass
class CaseSummary:
    """One case file reduced to what the leaderboard needs. Plugin metrics receive lists of these.

    ``best_curve[i]`` is the best feasible objective after trial ``i`` (NaN before the first
    feasible trial); ``cost_curve[i]`` the cumulative ``cost_s`` after trial ``i``. Only measured
    full-fidelity feasible outcomes count as found; a multi-fidelity optimizer's recommendation,
    validated at full fidelity after the budget (recorded in the end line), counts for ``best``
    but not for the curves or the cost. ``cost_by_fidelity`` splits the charged cost by level.
    """

    path: str
    group: GroupKey
    task: str
    target: str
    optimizer: str
    optimizer_params: dict
    seed: int
    direction: str
    objective_metric: str
    known_optimum: float | None
    family_param: str | None
    best_family: Any
    status: str  # completed | error | unfinished
    penalty: float | None = None  # the task's declared score for a seed that found nothing
    optimizer_version: str | None = None
    optimizer_libraries: dict = field(default_factory=dict)
    n_trials: int = 0
    best: float | None = None
    best_config: dict | None = None
    best_metrics: dict | None = None  # everything measured on the best feasible trial
    best_trial: int | None = None  # 1-based
    worst_feasible: float | None = None
    first_feasible_trial: int | None = None  # 1-based
    first_feasible_cost: float | None = None  # cumulative cost_s at that trial
    total_cost: float = 0.0
    n_ok: int = 0
    n_infeasible: int = 0
    n_early_stopped: int = 0
    n_crashed: int = 0
    n_timeout: int = 0
    n_duplicates: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)  # crashed + timeout trials by error kind
    best_curve: array = field(default_factory=lambda: array("d"))
    cost_curve: array = field(default_factory=lambda: array("d"))
    error: dict | None = None
    problems: list[str] = field(default_factory=list)
    cost_by_fidelity: dict[str, float] = field(default_factory=dict)
    n_lower_fidelity: int = 0
    recommendation: dict | None = None  # the end line's full-fidelity validation, if any
    constraints: list = field(default_factory=list)  # the header's constraints (metric, cap, scale)
    deploybench_version: str | None = None  # the harness that wrote the file
    penalty_recorded: bool = False  # the header has a "penalty" field (None: the task declares none)

    @property
    def found_feasible(self) -> bool:
        return self.best is not None

    @property
    def n_wasted(self) -> int:
        return self.n_infeasible + self.n_crashed + self.n_timeout

    @property
    def best_family_value(self) -> Any:
        if self.best_config is None or not self.family_param:
            return None
        return self.best_config.get(self.family_param)



def summarize_case_file(path: CaseLocation | str) -> CaseSummary:
    """Stream one case file (``.jsonl``, ``.jsonl.gz`` or a case in a records archive) into a :class:`CaseSummary` through the one strict case-file reader,
    :func:`deploybench.results.scan_case_file` (the runner and ``--resume`` use it too): a torn,
    corrupt or mistyped line is skipped and noted in ``problems``; an unusable file (no header, a
    newer format, a mistyped header) raises :class:`ResultsFormatError`."""
    path = case_location(path)
    summary: CaseSummary | None = None
    direction = "maximize"
    end: dict | None = None
    problems: list[str] = []
    best = worst = None
    for rtype, record in scan_case_file(path, problems):
        if rtype == "case":
            summary = _from_header(path, record)
            direction = summary.direction
            continue
        assert summary is not None  # scan_case_file yields the header first
        if rtype == "end":
            end = record
            continue
        o = record["outcome"]
        status = o["status"]
        summary.n_trials += 1
        cost = float(o.get("cost_s") or 0.0)
        summary.total_cost += cost
        level = o.get("fidelity") or "full"
        summary.cost_by_fidelity[level] = summary.cost_by_fidelity.get(level, 0.0) + cost
        summary.n_lower_fidelity += level != "full"
        summary.n_duplicates += bool(record.get("duplicate"))
        if status == "ok" and not counts_as_found(o):
            pass  # a simulator's or probe's "feasible" is not a finding
        elif status == "ok":
            summary.n_ok += 1
            v = o.get("objective")
            if v is not None and math.isfinite(v):
                if summary.first_feasible_trial is None:
                    summary.first_feasible_trial = summary.n_trials
                    summary.first_feasible_cost = summary.total_cost
                if best is None or direction_.better(v, best, direction):
                    best = v
                    summary.best_config = record.get("config")
                    summary.best_metrics = o.get("metrics")
                    summary.best_trial = summary.n_trials
                if worst is None or direction_.better(worst, v, direction):
                    worst = v
        elif status == "infeasible":
            summary.n_infeasible += 1
            summary.n_early_stopped += bool(o.get("early_stopped"))
        else:
            if status == "timeout":
                summary.n_timeout += 1
            else:
                summary.n_crashed += 1
            kind = (o.get("error") or {}).get("kind") or status
            summary.error_kinds[kind] = summary.error_kinds.get(kind, 0) + 1
        summary.best_curve.append(math.nan if best is None else best)
        summary.cost_curve.append(summary.total_cost)
    assert summary is not None  # scan_case_file raises without a header
    rec = (end or {}).get("recommendation")
    if isinstance(rec, dict) and isinstance(rec.get("outcome"), dict) and counts_as_found(rec["outcome"]):
        summary.recommendation = rec
        v = rec["outcome"].get("objective")
        if isinstance(v, (int, float)) and math.isfinite(v) and (best is None or direction_.better(v, best, direction)):
            best = v
            summary.best_config = rec.get("config")
            summary.best_metrics = rec["outcome"].get("metrics")
            summary.best_trial = summary.n_trials
            if summary.first_feasible_trial is None:
                summary.first_feasible_trial = summary.n_trials
                summary.first_feasible_cost = summary.total_cost
        if isinstance(v, (int, float)) and math.isfinite(v) and (worst is None or direction_.better(worst, v, direction)):
            worst = v
    summary.best, summary.worst_feasible = best, worst
    summary.problems = problems
    if end is None:
        summary.status = "unfinished"
    else:
        summary.status = "completed" if end.get("status") == "completed" else "error"
        summary.error = end.get("error")
    return summary



def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _from_header(path: CaseLocation, h: dict) -> CaseSummary:
    objective = h.get("objective") or {}
    label = h.get("task_label") or h.get("task") or "?"
    group = GroupKey(label, str(h.get("task_signature") or "unknown"), int(h.get("budget") or 0),
                     h.get("budget_seconds"))
    return CaseSummary(
        path=str(path), group=group, task=str(h.get("task") or label), target=str(h.get("target") or ""),
        optimizer=str(h.get("optimizer") or "?"), optimizer_params=dict(h.get("optimizer_params") or {}),
        seed=int(h.get("seed") or 0), direction=str(objective.get("direction") or "maximize"),
        objective_metric=str(objective.get("metric") or "objective"), known_optimum=h.get("known_optimum"),
        family_param=h.get("family_param"), best_family=h.get("best_family"), status="unfinished",
        penalty=_number(h.get("penalty")), optimizer_version=h.get("optimizer_version"),
        optimizer_libraries=dict(h.get("optimizer_libraries") or {}),
        constraints=[dict(c) for c in h.get("constraints") or [] if isinstance(c, dict)],
        deploybench_version=h.get("deploybench_version"), penalty_recorded="penalty" in h)


#: every case file under a root: the one listing, :func:`deploybench.results.iter_case_files`
iter_case_paths = iter_case_files


def iter_summaries(roots: Iterable[Path | str]) -> Iterator[CaseSummary]:
    """Summaries of every case file under each root (a directory or a single file)."""
    for root in roots:
        if not Path(root).exists():
            raise FileNotFoundError(f"results path {root} does not exist")
        for path in iter_case_paths(root):
            yield summarize_case_file(path)


def group_summaries(summaries: Iterable[CaseSummary]) -> dict[GroupKey, list[CaseSummary]]:
    """Group by task label, signature and budget; within a group, sorted by optimizer then seed."""
    groups: dict[GroupKey, list[CaseSummary]] = {}
    for s in summaries:
        groups.setdefault(s.group, []).append(s)
    for items in groups.values():
        items.sort(key=lambda s: (s.optimizer, json.dumps(s.optimizer_params, sort_keys=True, default=str), s.seed))
    def order(key: GroupKey) -> tuple:
        return (key.task_label, key.budget, -1.0 if key.budget_seconds is None else key.budget_seconds,
                key.task_signature)

    return {k: groups[k] for k in sorted(groups, key=order)}
