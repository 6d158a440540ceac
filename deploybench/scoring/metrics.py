"""Per task × optimizer metrics over seeds (one leaderboard row each).

Conventions (also printed under every table, see :data:`DEFINITIONS`):

- a seed that found no feasible configuration is never dropped: its best objective is the
  *penalty*, the worst feasible objective any run of the same group (task, signature, budget)
  observed; its time to first feasible is ``budget + 1`` trials and its total cost in seconds;
- simple regret is measured against the task's known optimum and clipped at 0 (a noisy
  measurement can land above the noise-free optimum);
- the normalised score divides each seed's regret by the random optimizer's mean regret in the
  same group (Bayesmark: 0 = optimum, 1 = random search);
- discovery: the seed's final best configuration is in the task's best family; for tasks whose
  families all reach the optimum (``best_family`` null), it means reaching the optimum within a
  tolerance of ``discovery_tol`` × random search's mean regret.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .reading import CaseSummary, GroupKey
from .statistics import PairTest, bootstrap_mean_ci, pairwise_wilcoxon_holm

__all__ = ["RowMetrics", "GroupResult", "score_group", "row_label", "loss", "DEFAULT_DISCOVERY_TOL", "BASELINE"]

#: the optimizer the normalised score is relative to
BASELINE = "random"
#: discovery tolerance (for tasks without a best family), as a share of random search's mean regret
DEFAULT_DISCOVERY_TOL = 0.05


@dataclass
class Interval:
    mean: float
    lo: float
    hi: float


@dataclass
class RowMetrics:
    """One leaderboard row: an optimizer (with one parameter set) on one group, over its seeds."""

    label: str
    optimizer: str
    cases: list[CaseSummary]
    seeds: int = 0
    n_errors: int = 0
    n_unfinished: int = 0
    best: Interval | None = None
    best_by_seed: dict[int, float] = field(default_factory=dict)  # penalised best objective per seed
    success: float = 0.0
    regret: Interval | None = None
    regret_by_seed: dict[int, float] = field(default_factory=dict)
    normalised: Interval | None = None
    waste: float | None = None
    duplicates: float | None = None
    ttff_trials: float | None = None
    ttff_cost: float | None = None
    discovery: float | None = None
    cost: float = 0.0
    extras: dict[str, float | None] = field(default_factory=dict)
    wins: list[str] = field(default_factory=list)


@dataclass
class GroupResult:
    """Every row of one group plus the group-wide quantities the rows were scored with."""

    key: GroupKey
    direction: str
    objective_metric: str
    known_optimum: float | None
    family_param: str | None
    best_family: Any
    penalty: float | None
    baseline_regret: float | None
    discovery_rule: str
    rows: list[RowMetrics]
    tests: list[PairTest] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def row(self, label: str) -> RowMetrics | None:
        return next((r for r in self.rows if r.label == label), None)


def loss(value: float, direction: str) -> float:
    """Lower is better, whatever the objective's direction."""
    return -value if direction == "maximize" else value


def _params_key(params: dict) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def row_label(optimizer: str, params: dict, variants: Sequence[dict]) -> str:
    """The optimizer name, plus the parameters that differ between its variants in the group."""
    if len({_params_key(v) for v in variants}) <= 1:
        return optimizer
    differing = sorted(k for k in {k for v in variants for k in v}
                       if len({json.dumps(v.get(k), sort_keys=True, default=str) for v in variants}) > 1)
    inner = ",".join(f"{k}={json.dumps(params.get(k), default=str)}" for k in differing)
    return f"{optimizer}[{inner}]"


def _regret(value: float, optimum: float, direction: str) -> float:
    r = optimum - value if direction == "maximize" else value - optimum
    return max(0.0, r)


def _interval(values: Sequence[float], seed_text: str) -> Interval | None:
    if not values:
        return None
    lo, hi = bootstrap_mean_ci(values, seed_text=seed_text)
    return Interval(float(np.mean(values)), lo, hi)


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def score_group(key: GroupKey, cases: Sequence[CaseSummary], *, extra_metrics: Sequence[Any] = (),
                discovery_tol: float = DEFAULT_DISCOVERY_TOL, alpha: float = 0.05) -> GroupResult:
    """Score every optimizer of one group. ``extra_metrics`` are plugin metric objects."""
    first = cases[0]
    direction = first.direction
    optimum = first.known_optimum
    feasible_values = [v for c in cases for v in (c.best, c.worst_feasible) if v is not None]
    penalty = None
    if feasible_values:
        penalty = min(feasible_values) if direction == "maximize" else max(feasible_values)
    problems = [p for c in cases for p in c.problems]

    by_opt: dict[str, list[dict]] = {}
    for c in cases:
        variants = by_opt.setdefault(c.optimizer, [])
        if all(_params_key(v) != _params_key(c.optimizer_params) for v in variants):
            variants.append(c.optimizer_params)
    rows: dict[str, RowMetrics] = {}
    for c in cases:
        label = row_label(c.optimizer, c.optimizer_params, by_opt[c.optimizer])
        row = rows.setdefault(label, RowMetrics(label=label, optimizer=c.optimizer, cases=[]))
        if any(x.seed == c.seed for x in row.cases):
            problems.append(f"{c.path}: a second case for {label} seed {c.seed} in {key.title()}; ignored")
            continue
        row.cases.append(c)

    for row in rows.values():
        _fill_basic(row, key, penalty, direction, optimum)
    baseline = rows.get(BASELINE)
    baseline_regret = baseline.regret.mean if baseline is not None and baseline.regret is not None else None

    if first.best_family is not None and first.family_param:
        rule = (f"share of seeds whose best feasible configuration has {first.family_param} = "
                f"{first.best_family}")
    elif baseline_regret is not None and baseline_regret > 0:
        rule = (f"share of seeds whose simple regret is at most {discovery_tol:g} × random search's mean regret "
                f"(= {discovery_tol * baseline_regret:.3g}); every {first.family_param or 'family'} reaches the optimum")
    else:
        rule = "not defined (no best family, and no random-search regret to set a tolerance)"

    for row in rows.values():
        seed_text = f"{key.task_label}|{key.task_signature}|{key.budget}|{row.label}"
        if baseline_regret is not None and baseline_regret > 0 and row.regret_by_seed:
            row.normalised = _interval([r / baseline_regret for r in row.regret_by_seed.values()], seed_text + "|norm")
        if first.best_family is not None and first.family_param:
            row.discovery = _mean([float(str(c.best_family_value) == str(first.best_family)) for c in row.cases])
        elif baseline_regret is not None and baseline_regret > 0 and row.regret_by_seed:
            tol = discovery_tol * baseline_regret
            row.discovery = _mean([float(c.found_feasible and row.regret_by_seed[c.seed] <= tol) for c in row.cases])
        for metric in extra_metrics:
            try:
                value = metric.compute(list(row.cases))
            except Exception as exc:  # noqa: BLE001 - a plugin's bug is reported, not fatal
                problems.append(f"leaderboard metric {getattr(metric, 'name', metric)!r} failed: "
                                f"{type(exc).__name__}: {exc}")
                value = None
            row.extras[metric.name] = None if value is None else float(value)

    ordered = sorted(rows.values(), key=lambda r: (math.inf if r.best is None else loss(r.best.mean, direction), r.label))
    samples = {r.label: {s: loss(v, direction) for s, v in r.best_by_seed.items()} for r in ordered if r.best_by_seed}
    tests = pairwise_wilcoxon_holm(samples, alpha=alpha) if len(samples) > 1 else []
    for t in tests:
        if t.winner is not None:
            loser = t.b if t.winner == t.a else t.a
            rows[t.winner].wins.append(loser)
    order = {r.label: i for i, r in enumerate(ordered)}
    for r in ordered:
        r.wins.sort(key=order.get)
    return GroupResult(key=key, direction=direction, objective_metric=first.objective_metric, known_optimum=optimum,
                       family_param=first.family_param, best_family=first.best_family, penalty=penalty,
                       baseline_regret=baseline_regret, discovery_rule=rule, rows=ordered, tests=tests,
                       problems=problems)


def _fill_basic(row: RowMetrics, key: GroupKey, penalty: float | None, direction: str, optimum: float | None) -> None:
    cases = row.cases
    seed_text = f"{key.task_label}|{key.task_signature}|{key.budget}|{row.label}"
    row.seeds = len(cases)
    row.n_errors = sum(c.status == "error" for c in cases)
    row.n_unfinished = sum(c.status == "unfinished" for c in cases)
    row.success = float(np.mean([c.found_feasible for c in cases]))
    if penalty is not None:
        row.best_by_seed = {c.seed: (c.best if c.best is not None else penalty) for c in cases}
        row.best = _interval(list(row.best_by_seed.values()), seed_text + "|best")
        if optimum is not None:
            row.regret_by_seed = {s: _regret(v, optimum, direction) for s, v in row.best_by_seed.items()}
            row.regret = _interval(list(row.regret_by_seed.values()), seed_text + "|regret")
    with_trials = [c for c in cases if c.n_trials]
    row.waste = _mean([c.n_wasted / c.n_trials for c in with_trials])
    row.duplicates = _mean([c.n_duplicates / c.n_trials for c in with_trials])
    row.ttff_trials = _mean([c.first_feasible_trial if c.first_feasible_trial is not None else key.budget + 1
                             for c in cases])
    row.ttff_cost = _mean([c.first_feasible_cost if c.first_feasible_cost is not None else c.total_cost
                           for c in cases])
    row.cost = float(np.mean([c.total_cost for c in cases]))
