"""Statistics across seeds and tasks: bootstrap intervals, ranks, Friedman, Wilcoxon + Holm.

Intervals of a mean over seeds are BCa (bias-corrected and accelerated) bootstrap intervals from
:func:`scipy.stats.bootstrap`: seeds that found nothing are scored with the task's penalty, which
makes the distributions skewed, and percentile intervals under-cover there (Efron & Tibshirani,
*An Introduction to the Bootstrap*, ch. 14). Everything here is deterministic: resampling uses a
generator seeded from a stable text (the row's identity), so a regenerated leaderboard is
byte-identical.
"""

from __future__ import annotations

import math
import warnings
import zlib
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

__all__ = ["bootstrap_mean_ci", "bootstrap_mean_band", "average_ranks", "friedman", "PairTest",
           "pairwise_wilcoxon_holm", "holm", "nemenyi_cd", "nemenyi_cliques",
           "SignificanceFloor", "significance_floor", "smallest_holm_p"]

N_BOOT = 2000


def scipy_stats():
    """scipy.stats, imported when a statistic is first computed (it takes most of a second to import,
    which the run summary, computed without intervals, never pays)."""
    from scipy import stats

    return stats


def _rng(seed_text: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(seed_text.encode("utf-8")))


def bootstrap_mean_ci(values: Sequence[float], *, level: float = 0.95, n_boot: int = N_BOOT,
                      seed_text: str = "", method: str = "BCa") -> tuple[float, float]:
    """Bootstrap interval of the mean, BCa by default (``method`` as :func:`scipy.stats.bootstrap`
    takes it). One value, or all equal: a zero-width interval. Where BCa is undefined (the
    jackknife is degenerate, e.g. all but one value equal) the percentile interval is returned."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return math.nan, math.nan
    if x.size == 1 or np.all(x == x[0]):
        return float(x[0]), float(x[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns when BCa degenerates; handled below
        res = scipy_stats().bootstrap((x,), np.mean, n_resamples=n_boot, confidence_level=level, method=method,
                              random_state=_rng(seed_text), vectorized=True)
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(lo) and math.isfinite(hi)) and method.lower() != "percentile":
        return bootstrap_mean_ci(x, level=level, n_boot=n_boot, seed_text=seed_text, method="percentile")
    return lo, hi


def bootstrap_mean_band(matrix: np.ndarray, *, level: float = 0.95, n_boot: int = 500,
                        seed_text: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and percentile-bootstrap band of the mean, per column of a (seeds × points) matrix
    (for curves: a visual guide, hundreds of points; the tables' intervals are BCa)."""
    m = np.asarray(matrix, dtype=float)
    mean = m.mean(axis=0)
    if m.shape[0] < 2:
        return mean, mean.copy(), mean.copy()
    idx = _rng(seed_text).integers(0, m.shape[0], size=(n_boot, m.shape[0]))
    # in chunks: m[idx] at once would hold n_boot × seeds × points floats (GBs for many seeds)
    means = np.concatenate([m[idx[i:i + 25]].mean(axis=1) for i in range(0, n_boot, 25)])  # n_boot × points
    alpha = (1.0 - level) / 2.0
    return mean, np.quantile(means, alpha, axis=0), np.quantile(means, 1.0 - alpha, axis=0)


def average_ranks(losses: np.ndarray) -> np.ndarray:
    """Mean rank of each column over the rows (blocks) of a blocks × methods matrix of losses
    (lower is better; rank 1 is best; ties share the average rank)."""
    m = np.asarray(losses, dtype=float)
    if m.size == 0:
        return np.full(m.shape[1] if m.ndim == 2 else 0, math.nan)
    return scipy_stats().rankdata(m, axis=1).mean(axis=0)


def friedman(losses: np.ndarray) -> tuple[float, float] | None:
    """Friedman χ² and p over a blocks × methods matrix; None when it is undefined (fewer than 3
    methods or 2 blocks, or every block tied)."""
    m = np.asarray(losses, dtype=float)
    if m.ndim != 2 or m.shape[1] < 3 or m.shape[0] < 2:
        return None
    if np.all(m == m[:, :1]):
        return None
    res = scipy_stats().friedmanchisquare(*[m[:, j] for j in range(m.shape[1])])
    if not math.isfinite(res.statistic) or not math.isfinite(res.pvalue):
        return None
    return float(res.statistic), float(res.pvalue)


@dataclass(frozen=True)
class PairTest:
    """One Wilcoxon signed-rank comparison of methods ``a`` and ``b`` (paired samples of losses)."""

    a: str
    b: str
    n: int
    p: float
    p_holm: float
    winner: str | None  # the better method when the difference is significant after Holm

    def significant(self) -> bool:
        return self.winner is not None


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni step-down adjusted p-values (monotone, capped at 1)."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p, kind="stable")
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return [float(v) for v in adjusted]


def _wilcoxon_p(x: np.ndarray, y: np.ndarray) -> float:
    d = x - y
    if d.size == 0 or np.all(d == 0):
        return 1.0
    try:
        res = scipy_stats().wilcoxon(x, y, zero_method="wilcox", alternative="two-sided")
    except ValueError:
        return 1.0
    p = float(res.pvalue)
    return p if math.isfinite(p) else 1.0


def pairwise_wilcoxon_holm(samples: Mapping[str, Mapping[object, float]], *, alpha: float = 0.05) -> list[PairTest]:
    """Every pair of methods, Wilcoxon signed-rank on the blocks both have (paired by block id, e.g.
    the seed), Holm-corrected over all pairs. ``samples[method][block] = loss`` (lower is better)."""
    names = list(samples)
    raw = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            common = sorted(set(samples[a]) & set(samples[b]), key=repr)
            x = np.array([samples[a][k] for k in common], dtype=float)
            y = np.array([samples[b][k] for k in common], dtype=float)
            p = _wilcoxon_p(x, y)
            d = x - y
            centre = float(np.median(d)) if d.size else 0.0
            if centre == 0.0 and d.size:
                centre = float(np.mean(d))
            raw.append((a, b, len(common), p, centre))
    adjusted = holm([r[3] for r in raw]) if raw else []
    out = []
    for (a, b, n, p, centre), ph in zip(raw, adjusted):
        winner = None
        if ph < alpha and centre != 0.0:
            winner = a if centre < 0 else b
        out.append(PairTest(a, b, n, p, ph, winner))
    return out


@dataclass(frozen=True)
class SignificanceFloor:
    """What a table's size allows its Wilcoxon–Holm tests to show, whatever the results.

    With ``n`` blocks (seeds) the smallest two-sided p-value an exact Wilcoxon signed-rank test
    can give is ``2 / 2**n`` (every block favours the same method); Holm's first step multiplies the
    smallest p-value by the number of pairs ``m``. When ``m * 2**(1 - n) >= alpha``, no pair can be
    significant, however large the differences: the table is too small, not the optimizers equal.
    """

    n_pairs: int
    n_blocks: int
    smallest_p_holm: float
    blocks_needed: int  # the fewest blocks at which one pair could reach alpha (real power needs more)
    alpha: float

    @property
    def can_show_a_difference(self) -> bool:
        return self.smallest_p_holm < self.alpha


def smallest_holm_p(n_pairs: int, n_blocks: int) -> float:
    """The smallest Holm-adjusted p-value any of ``n_pairs`` Wilcoxon tests over ``n_blocks`` can reach."""
    if n_pairs < 1 or n_blocks < 1:
        return 1.0
    return min(1.0, n_pairs * 2.0 ** (1 - n_blocks))


def significance_floor(tests: Sequence[PairTest], alpha: float = 0.05) -> SignificanceFloor | None:
    """The floor of a set of pairwise tests (None without tests). ``n_blocks`` is the largest number
    of paired blocks of any pair: the most any pair had to work with."""
    if not tests:
        return None
    m = len(tests)
    n = max(t.n for t in tests)
    needed = max(1, math.ceil(1 + math.log2(m / alpha)))
    while smallest_holm_p(m, needed) >= alpha:  # guard the float edge of the logarithm
        needed += 1
    return SignificanceFloor(n_pairs=m, n_blocks=n, smallest_p_holm=smallest_holm_p(m, n), blocks_needed=needed,
                             alpha=alpha)


def nemenyi_cd(k: int, n_blocks: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference of average ranks (Demšar 2006), from the studentized range."""
    if k < 2 or n_blocks < 1:
        return math.nan
    q = scipy_stats().studentized_range.ppf(1.0 - alpha, k, 1e6) / math.sqrt(2.0)
    return float(q * math.sqrt(k * (k + 1) / (6.0 * n_blocks)))


def nemenyi_cliques(order: Sequence[str], avg_rank: Mapping[str, float], cd: float) -> list[tuple[int, int]]:
    """Maximal runs ``(i, j)`` of methods (in rank order) whose average ranks differ by less than the
    critical difference ``cd``: the bars of Demšar's critical-difference diagram."""
    if not math.isfinite(cd):
        return []
    ranks = [avg_rank[m] for m in order]
    runs: list[tuple[int, int]] = []
    for i in range(len(order)):
        j = i
        while j + 1 < len(order) and ranks[j + 1] - ranks[i] < cd:
            j += 1
        if j > i and not any(a <= i and j <= b for a, b in runs):
            runs.append((i, j))
    return runs
