"""Per task × optimizer metrics over seeds (one leaderboard row each).

Conventions (also printed under every table, by each column's ``describe``):

- a seed that found no feasible configuration is never dropped: its best objective is the task's
  *penalty*, its worst feasible objective (declared by the task or derived from its ground truth,
  and recorded in every case header), so a score never depends on which other optimizers are in
  the table; records written before headers carried it fall back to the worst feasible objective
  observed in the table, and the notes say so;
- simple regret is measured against the task's known optimum and clipped at 0;
- the normalised score divides each seed's regret by the random optimizer's mean regret in the
  same table (Bayesmark: 0 = optimum, 1 = random search);
- every column is a :class:`~deploybench.scoring.columns.Metric` (see :mod:`.columns`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from .. import direction as direction_
from .columns import BUILTIN_COLUMNS, GroupContext, Interval, RowCases, column_key, discovery_rule
from .reading import CaseSummary, GroupKey
from .statistics import PairTest, pairwise_wilcoxon_holm

__all__ = ["RowMetrics", "GroupResult", "Answer", "score_group", "row_label", "loss", "DEFAULT_DISCOVERY_TOL",
           "BASELINE", "Interval"]

#: the optimizer the normalised score is relative to
BASELINE = "random"
#: discovery tolerance (for tasks without a best family), as a share of random search's mean regret
DEFAULT_DISCOVERY_TOL = 0.05


@dataclass
class Answer:
    """The best configuration a row found over its seeds: what a user of the optimizer came for."""

    config: dict
    objective: float
    metrics: dict
    seed: int
    trial: int  # 1-based
    seeds_found: int  # how many seeds' best configuration is this same configuration
    regret: float | None


@dataclass
class RowMetrics:
    """One leaderboard row: an optimizer (with one parameter set) on one group, over its seeds.

    ``values`` holds every column's value by its key (``best``, ``success``, ``normalised``, ...,
    and plugin columns); the properties below read the built-in ones."""

    label: str
    optimizer: str
    cases: list[CaseSummary]
    values: dict[str, Any] = field(default_factory=dict)
    best_by_seed: dict[int, float] = field(default_factory=dict)  # penalised best objective per seed
    regret_by_seed: dict[int, float] = field(default_factory=dict)
    wins: list[str] = field(default_factory=list)
    answer: Answer | None = None

    @property
    def seeds(self) -> int:
        return len(self.cases)

    @property
    def n_errors(self) -> int:
        return sum(c.status == "error" for c in self.cases)

    @property
    def n_unfinished(self) -> int:
        return sum(c.status == "unfinished" for c in self.cases)

    @property
    def best(self) -> Interval | None:
        return self.values.get("best")

    @property
    def regret(self) -> Interval | None:
        return self.values.get("regret")

    @property
    def normalised(self) -> Interval | None:
        return self.values.get("normalised")

    @property
    def success(self) -> float:
        return self.values.get("success") or 0.0

    @property
    def waste(self) -> float | None:
        return self.values.get("waste")

    @property
    def duplicates(self) -> float | None:
        return self.values.get("duplicates")

    @property
    def ttff_trials(self) -> float | None:
        return self.values.get("ttff_trials")

    @property
    def discovery(self) -> float | None:
        return self.values.get("discovery")

    @property
    def cost(self) -> float:
        return self.values.get("cost_s") or 0.0


@dataclass
class GroupResult:
    """Every row of one group plus the group-wide quantities the rows were scored with."""

    context: GroupContext
    rows: list[RowMetrics]
    columns: list[Any]
    tests: list[PairTest] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    key = property(lambda self: self.context.key)
    direction = property(lambda self: self.context.direction)
    objective_metric = property(lambda self: self.context.objective_metric)
    known_optimum = property(lambda self: self.context.known_optimum)
    family_param = property(lambda self: self.context.family_param)
    best_family = property(lambda self: self.context.best_family)
    penalty = property(lambda self: self.context.penalty)
    baseline_regret = property(lambda self: self.context.baseline_regret)

    @property
    def discovery_rule(self) -> str:
        return discovery_rule(self.context)

    @property
    def software(self) -> dict[str, str]:
        """Per row label: the optimizer's package and library versions, as the case headers record them."""
        out = {}
        for r in self.rows:
            texts = sorted({_software_text(c) for c in r.cases} - {""})
            if texts:
                out[r.label] = "; ".join(texts)
        return out

    def row(self, label: str) -> RowMetrics | None:
        return next((r for r in self.rows if r.label == label), None)


def _software_text(c: CaseSummary) -> str:
    libs = ", ".join(f"{k} {v}" for k, v in sorted(c.optimizer_libraries.items()))
    if not c.optimizer_version:
        return f"({libs})" if libs else ""
    return c.optimizer_version + (f" ({libs})" if libs else "")


def loss(value: float, direction: str) -> float:
    """Lower is better, whatever the objective's direction."""
    return direction_.loss(value, direction)


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


def _group_penalty(cases: Sequence[CaseSummary], direction: str, problems: list[str]) -> tuple[float | None, str | None]:
    """The task's declared penalty (the worst if headers disagree), else the worst observed feasible value."""
    worst = lambda values: direction_.worst(values, direction)  # noqa: E731
    declared = {c.penalty for c in cases if c.penalty is not None}
    if declared:
        if len(declared) > 1:
            problems.append(f"case headers of one table declare different penalties {sorted(declared)}; "
                            f"scored with the worst")
        return worst(declared), "task"
    observed = [v for c in cases for v in (c.best, c.worst_feasible) if v is not None]
    if observed:
        # "undeclared": the task has no penalty; "observed": records written before the harness stored it
        return worst(observed), "undeclared" if all(c.penalty_recorded for c in cases) else "observed"
    return None, None


def best_found(cases: Sequence[CaseSummary], direction: str, known_optimum: float | None = None) -> Answer | None:
    """The best feasible configuration over ``cases`` (ties: the lowest seed), and how many seeds'
    best configuration is the same one."""
    found = [c for c in cases if c.best is not None and c.best_config is not None]
    if not found:
        return None
    top = min(found, key=lambda c: (loss(c.best, direction), c.seed))
    key = _params_key(top.best_config)
    regret = None
    if known_optimum is not None:
        regret = max(0.0, direction_.regret(known_optimum, top.best, direction))
    return Answer(config=dict(top.best_config), objective=top.best, metrics=dict(top.best_metrics or {}),
                  seed=top.seed, trial=top.best_trial or 0,
                  seeds_found=sum(_params_key(c.best_config) == key for c in found), regret=regret)


def _applies(metric: Any, cases: Sequence[CaseSummary], problems: list[str]) -> bool:
    """A column that defines ``applies(cases)`` is left out of tables it returns False for (a
    plugin's bug there is reported and the column kept)."""
    check = getattr(metric, "applies", None)
    if check is None:
        return True
    try:
        return bool(check(cases))
    except Exception as exc:  # noqa: BLE001 - a plugin's bug is reported, not fatal
        problems.append(f"leaderboard metric {getattr(metric, 'name', metric)!r}: applies() failed: "
                        f"{type(exc).__name__}: {exc}")
        return True


def score_group(key: GroupKey, cases: Sequence[CaseSummary], *, extra_metrics: Sequence[Any] = (),
                discovery_tol: float = DEFAULT_DISCOVERY_TOL, alpha: float = 0.05,
                statistics: bool = True) -> GroupResult:
    """Score every optimizer of one group: each row gets every column of :data:`BUILTIN_COLUMNS`
    followed by ``extra_metrics`` (plugin columns), all through the same ``Metric`` protocol.
    ``statistics=False`` skips the bootstrap intervals (NaN bounds) and the Wilcoxon tests."""
    first = cases[0]
    direction = first.direction
    problems = [p for c in cases for p in c.problems]
    penalty, source = _group_penalty(cases, direction, problems)

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

    context = GroupContext(key=key, direction=direction, objective_metric=first.objective_metric,
                           known_optimum=first.known_optimum, penalty=penalty, penalty_source=source,
                           family_param=first.family_param, best_family=first.best_family, baseline=BASELINE,
                           baseline_regret=None, discovery_tol=discovery_tol, statistics=statistics)
    for row in rows.values():
        if penalty is not None:
            row.best_by_seed = {c.seed: context.penalised(c) for c in row.cases}
            if context.known_optimum is not None:
                row.regret_by_seed = {s: context.regret(v) for s, v in row.best_by_seed.items()}
        row.answer = best_found(row.cases, direction, context.known_optimum)
    baseline = rows.get(BASELINE)
    if baseline is not None and baseline.regret_by_seed:
        regrets = list(baseline.regret_by_seed.values())
        context = GroupContext(**{**context.__dict__, "baseline_regret": sum(regrets) / len(regrets)})

    columns = [m for m in (*BUILTIN_COLUMNS, *extra_metrics) if _applies(m, cases, problems)]
    for row in rows.values():
        view = RowCases(row.cases, context, row.label)
        for metric in columns:
            try:
                value = metric.compute(view)
            except Exception as exc:  # noqa: BLE001 - a plugin's bug is reported, not fatal
                problems.append(f"leaderboard metric {getattr(metric, 'name', metric)!r} failed: "
                                f"{type(exc).__name__}: {exc}")
                value = None
            if value is not None and not isinstance(value, Interval):
                value = float(value)
            row.values[column_key(metric)] = value

    ordered = sorted(rows.values(), key=lambda r: (math.inf if r.best is None else loss(r.best.mean, direction), r.label))
    samples = {r.label: {s: loss(v, direction) for s, v in r.best_by_seed.items()} for r in ordered if r.best_by_seed}
    tests = pairwise_wilcoxon_holm(samples, alpha=alpha) if statistics and len(samples) > 1 else []
    for t in tests:
        if t.winner is not None:
            rows[t.winner].wins.append(t.b if t.winner == t.a else t.a)
    order = {r.label: i for i, r in enumerate(ordered)}
    for r in ordered:
        r.wins.sort(key=order.get)
    return GroupResult(context=context, rows=ordered, columns=columns, tests=tests, problems=problems)
