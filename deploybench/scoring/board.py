"""Building a leaderboard: read → group → score each group (:func:`.summary.summarize`) → rank across groups.

Across groups, only optimizers present in every group are compared, in two ways that say what
they are over:

- **over tables** (Demšar 2006, the blocks are data sets): in each table the optimizers are ranked
  by their mean best objective (seeds that found nothing at the task's penalty); the average rank,
  the Friedman test and the Nemenyi critical difference (the CD diagram) are over the tables;
- **over (table, seed) pairs**: pairwise Wilcoxon signed-rank tests, Holm-corrected, on the
  normalised score (scale-free across tasks) when every table has one, else on the rank within
  the pair. Seeds give these tests their power, at the price of treating the seeds of different
  tables as exchangeable blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .metrics import DEFAULT_DISCOVERY_TOL, GroupResult, loss
from .reading import iter_summaries
from .references import ReferenceSet
from .statistics import PairTest, scipy_stats, average_ranks, friedman, nemenyi_cd, pairwise_wilcoxon_holm
from .summary import summarize_cases

__all__ = ["Leaderboard", "Overall", "build_leaderboard", "compare_across"]


@dataclass
class Overall:
    """The across-task comparison."""

    labels: list[str]  # in average-rank order
    excluded: list[str]
    n_tables: int
    avg_rank: dict[str, float]  # over tables
    friedman: tuple[float, float] | None  # over tables
    cd: float  # Nemenyi critical difference over tables
    n_blocks: int  # (table, seed) pairs of the pairwise tests
    paired_on: str  # "normalised score" | "rank within block"
    tests: list[PairTest]
    groups_best: dict[str, int]
    mean_normalised: dict[str, float | None]
    mean_success: dict[str, float]
    mean_waste: dict[str, float | None]
    mean_discovery: dict[str, float | None]


@dataclass
class Leaderboard:
    groups: list[GroupResult]
    overall: Overall | None
    references: list[ReferenceSet] = field(default_factory=list)
    extra_metrics: list[Any] = field(default_factory=list)
    discovery_tol: float = DEFAULT_DISCOVERY_TOL
    alpha: float = 0.05
    n_cases: int = 0
    n_trials: int = 0
    problems: list[str] = field(default_factory=list)

    def references_for(self, group: GroupResult) -> list[ReferenceSet]:
        return [r for r in self.references if r.task_label == group.key.task_label and r.budget == group.key.budget]

    def optimizer_order(self) -> list[str]:
        """Every row label, in one order for every figure and table: the across-task order, then
        the optimizers not in every table, alphabetically."""
        labels = sorted({r.label for g in self.groups for r in g.rows})
        first = list(self.overall.labels) if self.overall else []
        return first + [lab for lab in labels if lab not in first]


def build_leaderboard(paths: Iterable[Path | str], *, extra_metrics: Sequence[Any] = (),
                      references: Sequence[ReferenceSet] = (), discovery_tol: float = DEFAULT_DISCOVERY_TOL,
                      alpha: float = 0.05) -> Leaderboard:
    """Score every case file under ``paths``."""
    summaries = list(iter_summaries(paths))
    groups = summarize_cases(summaries, extra_metrics=extra_metrics, discovery_tol=discovery_tol, alpha=alpha)
    board = Leaderboard(groups=groups, overall=None, references=list(references), extra_metrics=list(extra_metrics),
                        discovery_tol=discovery_tol, alpha=alpha, n_cases=len(summaries),
                        n_trials=sum(s.n_trials for s in summaries))
    board.problems = [p for g in groups for p in g.problems]
    board.overall = compare_across(groups, alpha=alpha)
    return board


def compare_across(groups: Sequence[GroupResult], *, alpha: float = 0.05) -> Overall | None:
    """Ranks, Friedman and Nemenyi CD over tables; pairwise Wilcoxon–Holm over (table, seed) pairs, each
    table contributing the seeds all tables share (when they share any)."""
    if not groups:
        return None
    per_group = [{r.label for r in g.rows if r.best_by_seed} for g in groups]
    everywhere = set.intersection(*per_group)
    labels = sorted(everywhere)
    excluded = sorted(set.union(*per_group) - everywhere)
    if len(labels) < 2:
        return None
    # over tables: one block per table, each optimizer's mean penalised best objective
    table_losses = np.array([[loss(g.row(lab).best.mean, g.direction) for lab in labels] for g in groups])
    avg = average_ranks(table_losses)

    use_norm = all(r.normalised is not None for g in groups for r in g.rows if r.label in everywhere)
    blocks_loss: list[list[float]] = []
    blocks_norm: list[list[float]] = []
    block_ids: list[tuple[int, int]] = []
    table_seeds = [set.intersection(*[set(g.row(lab).best_by_seed) for lab in labels]) for g in groups]
    # every table contributes the seeds all tables have (when they share any), so a table run with
    # more seeds (the leaderboard's deployment scenarios run 100) does not outweigh the others
    shared = set.intersection(*table_seeds)
    for gi, g in enumerate(groups):
        rows = [g.row(lab) for lab in labels]
        seeds = table_seeds[gi] & shared if shared else table_seeds[gi]
        for seed in sorted(seeds):
            blocks_loss.append([loss(r.best_by_seed[seed], g.direction) for r in rows])
            if use_norm:
                blocks_norm.append([r.regret_by_seed[seed] / g.baseline_regret for r in rows])
            block_ids.append((gi, seed))
    tests: list[PairTest] = []
    if block_ids:
        paired = np.array(blocks_norm) if use_norm else scipy_stats().rankdata(np.array(blocks_loss), axis=1)
        samples = {lab: {block_ids[b]: float(paired[b, j]) for b in range(len(block_ids))}
                   for j, lab in enumerate(labels)}
        tests = pairwise_wilcoxon_holm(samples, alpha=alpha)
    order = [labels[j] for j in np.lexsort((np.array(labels), avg))]
    best_count = {lab: 0 for lab in labels}
    for g in groups:
        top = min((g.row(lab) for lab in labels), key=lambda r: (loss(r.best.mean, g.direction), r.label))
        best_count[top.label] += 1

    def mean_of(values: list[float | None]) -> float | None:
        vals = [v for v in values if v is not None]
        return float(np.mean(vals)) if vals else None

    return Overall(
        labels=order, excluded=excluded, n_tables=len(groups),
        avg_rank={lab: float(avg[j]) for j, lab in enumerate(labels)},
        friedman=friedman(table_losses), cd=nemenyi_cd(len(labels), len(groups), alpha),
        n_blocks=len(block_ids), paired_on="normalised score" if use_norm else "rank within block",
        tests=tests, groups_best=best_count,
        mean_normalised={lab: mean_of([g.row(lab).normalised.mean if g.row(lab).normalised else None for g in groups])
                         for lab in labels},
        mean_success={lab: float(np.mean([g.row(lab).success for g in groups])) for lab in labels},
        mean_waste={lab: mean_of([g.row(lab).waste for g in groups]) for lab in labels},
        mean_discovery={lab: mean_of([g.row(lab).discovery for g in groups]) for lab in labels},
    )
