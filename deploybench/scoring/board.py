"""Building a leaderboard: read → group → score each group → rank across groups.

Across groups, only optimizers present in every group are compared. Blocks are (group, seed)
pairs that every compared optimizer ran: ranks are taken within each block, the Friedman test runs
over the blocks, and the pairwise Wilcoxon signed-rank tests (Holm-corrected) pair the blocks. The
paired quantity is the normalised score when every group has one (scale-free across tasks), and
otherwise the rank within the block.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from scipy import stats

from .metrics import DEFAULT_DISCOVERY_TOL, GroupResult, loss, score_group
from .reading import group_summaries, iter_summaries
from .references import ReferenceSet
from .statistics import PairTest, average_ranks, friedman, nemenyi_cd, pairwise_wilcoxon_holm

__all__ = ["Leaderboard", "Overall", "build_leaderboard"]


@dataclass
class Overall:
    """The across-task comparison."""

    labels: list[str]  # in average-rank order
    excluded: list[str]
    n_blocks: int
    avg_rank: dict[str, float]
    friedman: tuple[float, float] | None
    paired_on: str  # "normalised score" | "rank within block"
    tests: list[PairTest]
    cd: float
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


def build_leaderboard(paths: Iterable[Path | str], *, extra_metrics: Sequence[Any] = (),
                      references: Sequence[ReferenceSet] = (), discovery_tol: float = DEFAULT_DISCOVERY_TOL,
                      alpha: float = 0.05) -> Leaderboard:
    """Score every case file under ``paths``."""
    summaries = list(iter_summaries(paths))
    grouped = group_summaries(summaries)
    groups = [score_group(k, v, extra_metrics=extra_metrics, discovery_tol=discovery_tol, alpha=alpha)
              for k, v in grouped.items()]
    board = Leaderboard(groups=groups, overall=None, references=list(references), extra_metrics=list(extra_metrics),
                        discovery_tol=discovery_tol, alpha=alpha, n_cases=len(summaries),
                        n_trials=sum(s.n_trials for s in summaries))
    board.problems = [p for g in groups for p in g.problems]
    board.overall = compare_across(groups, alpha=alpha)
    return board


def compare_across(groups: Sequence[GroupResult], *, alpha: float = 0.05) -> Overall | None:
    """Average ranks, Friedman and pairwise Wilcoxon–Holm over (group, seed) blocks."""
    if not groups:
        return None
    per_group = [{r.label for r in g.rows if r.best_by_seed} for g in groups]
    everywhere = set.intersection(*per_group)
    labels = sorted(everywhere)
    excluded = sorted(set.union(*per_group) - everywhere)
    if len(labels) < 2:
        return None
    use_norm = all(r.normalised is not None for g in groups for r in g.rows if r.label in everywhere)
    blocks_loss: list[list[float]] = []
    blocks_norm: list[list[float]] = []
    block_ids: list[tuple[int, int]] = []
    for gi, g in enumerate(groups):
        rows = [g.row(lab) for lab in labels]
        seeds = set.intersection(*[set(r.best_by_seed) for r in rows])
        for seed in sorted(seeds):
            blocks_loss.append([loss(r.best_by_seed[seed], g.direction) for r in rows])
            if use_norm:
                blocks_norm.append([r.regret_by_seed[seed] / g.baseline_regret for r in rows])
            block_ids.append((gi, seed))
    if not blocks_loss:
        return None
    losses = np.array(blocks_loss)
    ranks_by_block = stats.rankdata(losses, axis=1)
    avg = average_ranks(losses)
    paired = np.array(blocks_norm) if use_norm else ranks_by_block
    samples = {lab: {block_ids[b]: float(paired[b, j]) for b in range(len(block_ids))} for j, lab in enumerate(labels)}
    tests = pairwise_wilcoxon_holm(samples, alpha=alpha)
    order = [labels[j] for j in np.lexsort((np.array(labels), avg))]
    best_count = {lab: 0 for lab in labels}
    for g in groups:
        candidates = [g.row(lab) for lab in labels]
        top = min(candidates, key=lambda r: (loss(r.best.mean, g.direction), r.label))
        best_count[top.label] += 1

    def mean_of(values: list[float | None]) -> float | None:
        vals = [v for v in values if v is not None]
        return float(np.mean(vals)) if vals else None

    return Overall(
        labels=order, excluded=excluded, n_blocks=len(block_ids),
        avg_rank={lab: float(avg[j]) for j, lab in enumerate(labels)},
        friedman=friedman(losses), paired_on="normalised score" if use_norm else "rank within block",
        tests=tests, cd=nemenyi_cd(len(labels), len(block_ids), alpha), groups_best=best_count,
        mean_normalised={lab: mean_of([g.row(lab).normalised.mean if g.row(lab).normalised else None for g in groups])
                         for lab in labels},
        mean_success={lab: float(np.mean([g.row(lab).success for g in groups])) for lab in labels},
        mean_waste={lab: mean_of([g.row(lab).waste for g in groups]) for lab in labels},
        mean_discovery={lab: mean_of([g.row(lab).discovery for g in groups]) for lab in labels},
    )
