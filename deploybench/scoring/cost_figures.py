"""Figures for runs under a budget in seconds on multi-fidelity tasks, from one case file each.

Only measured full-fidelity feasible outcomes count as found (and the recommendation validated at
full fidelity after the budget, at the case's final cost); lower levels count only as spent cost.

- :func:`best_at_costs`: the best found after given amounts of charged cost (the curve a
  cost-aware comparison needs, since trials of different levels cost different amounts);
- :func:`cost_to_reach`: charged cost until something within a tolerance of a target was found;
- :func:`cost_shares`: the share of charged cost per level;
- :func:`disagreement`: per lower level, how often its feasibility verdict on a configuration
  differed from the full evaluation of the same configuration in the same case.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .. import direction as direction_
from ..outcome import counts_as_found
from ..results import read_case_file

__all__ = ["CaseTrace", "read_trace", "best_at_costs", "cost_to_reach", "cost_shares", "disagreement", "within"]


@dataclass
class CaseTrace:
    """A case as (cumulative cost, found value) steps plus what the levels did."""

    direction: str
    steps: list[tuple[float, float]]  # (cumulative cost, best found so far) at each improvement
    total_cost: float
    cost_by_level: dict[str, float]
    verdicts: dict[str, dict[str, bool]]  # level -> config key -> feasible
    n_trials: int



def read_trace(path: Path | str) -> CaseTrace:
    case = read_case_file(path)
    direction = (case.header.get("objective") or {}).get("direction", "maximize")
    cost, best = 0.0, None
    steps: list[tuple[float, float]] = []
    by_level: dict[str, float] = {}
    verdicts: dict[str, dict[str, bool]] = {}
    for t in case.trials:
        o = t["outcome"]
        cost += float(o.get("cost_s") or 0.0)
        level = o.get("fidelity") or "full"
        by_level[level] = by_level.get(level, 0.0) + float(o.get("cost_s") or 0.0)
        key = repr(sorted(t["config"].items()))
        verdicts.setdefault(level, {})[key] = o["status"] == "ok"
        if counts_as_found(o) and o.get("objective") is not None and direction_.better(o["objective"], best, direction):
            best = o["objective"]
            steps.append((cost, best))
    rec = (case.end or {}).get("recommendation")
    if rec and counts_as_found(rec["outcome"]) and direction_.better(rec["outcome"]["objective"], best, direction):
        steps.append((cost, rec["outcome"]["objective"]))
    return CaseTrace(direction, steps, cost, by_level, verdicts, len(case.trials))


def best_at_costs(trace: CaseTrace, costs: Sequence[float]) -> list[float | None]:
    """The best found once each amount of cost was spent (None: nothing found yet)."""
    out = []
    for c in costs:
        found = [v for spent, v in trace.steps if spent <= c + 1e-9]
        out.append(found[-1] if found else None)
    return out


def within(value: float, target: float, tolerance: float) -> bool:
    """``value`` is within ``tolerance`` (a share of ``|target|``) of ``target``."""
    return abs(value - target) <= tolerance * max(abs(target), 1e-12)


def cost_to_reach(trace: CaseTrace, target: float, tolerance: float = 0.01) -> float | None:
    """Charged cost until a found value was within ``tolerance`` of ``target`` or better (None: never)."""
    for spent, v in trace.steps:
        better = direction_.at_least_as_good(v, target, trace.direction)
        if better or within(v, target, tolerance):
            return spent
    return None


def cost_shares(trace: CaseTrace) -> dict[str, float]:
    total = sum(trace.cost_by_level.values())
    return {k: v / total for k, v in trace.cost_by_level.items()} if total > 0 else {}


def disagreement(trace: CaseTrace) -> dict[str, tuple[int, int]]:
    """Per lower level: (configurations evaluated at that level and at full, how many got a different
    feasibility verdict)."""
    full = trace.verdicts.get("full", {})
    out = {}
    for level, verdicts in trace.verdicts.items():
        if level == "full":
            continue
        both = [k for k in verdicts if k in full]
        out[level] = (len(both), sum(verdicts[k] != full[k] for k in both))
    return out
