"""Figures (matplotlib, Agg backend, PNG and SVG): best-so-far curves, waste bars, CD diagram.

Matplotlib is imported only when a figure is drawn, so ``deploybench leaderboard`` without
``--plots`` starts fast. SVGs are written without a date and with a fixed hash salt, so
regenerating them does not churn the repository.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .metrics import GroupResult, RowMetrics
from .reading import GroupKey
from .statistics import bootstrap_mean_band, insignificant_cliques

if TYPE_CHECKING:  # pragma: no cover
    from .board import Leaderboard

__all__ = ["plot_stems", "CD_STEM", "write_plots"]

CD_STEM = "critical-difference"
_OUTCOME_COLOURS = {"infeasible": "#f2c14e", "early stopped": "#f78154", "timeout": "#5d576b"}
_CRASH_COLOURS = ["#b33f40", "#6c8ead", "#4d9078", "#9b5de5", "#8a6552", "#555555"]


def plot_stems(key: GroupKey) -> dict[str, str]:
    """File stems (no extension) of one group's figures."""
    slug = key.slug()
    return {"trials": f"{slug}-trials", "cost": f"{slug}-cost", "waste": f"{slug}-waste"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, folder: Path, stem: str) -> list[Path]:
    out = []
    for ext, meta in (("png", {"Software": None}), ("svg", {"Date": None, "Creator": None})):
        path = folder / f"{stem}.{ext}"
        fig.savefig(path, dpi=110 if ext == "png" else None, bbox_inches="tight", metadata=meta)
        out.append(path)
    return out


def _curve_values(group: GroupResult, row: RowMetrics) -> tuple[np.ndarray, bool]:
    """seeds × budget matrix of best-so-far (regret when the optimum is known), penalised before the
    first feasible trial and held after a run's last trial."""
    budget = max(group.key.budget, max((c.n_trials for c in row.cases), default=0), 1)
    penalty = group.penalty if group.penalty is not None else math.nan
    m = np.full((len(row.cases), budget), penalty, dtype=float)
    for i, c in enumerate(row.cases):
        curve = np.asarray(c.best_curve, dtype=float)
        if curve.size:
            m[i, :curve.size] = curve
            m[i, curve.size:] = curve[-1]
    m[np.isnan(m)] = penalty
    use_regret = group.known_optimum is not None
    if use_regret:
        sign = 1.0 if group.direction == "maximize" else -1.0
        m = np.clip(sign * (group.known_optimum - m), 0.0, None)
    return m, use_regret


def _cost_values(group: GroupResult, row: RowMetrics, grid: np.ndarray) -> np.ndarray:
    """seeds × grid matrix: the best-so-far reached once ``grid`` seconds of cost were charged."""
    penalty = group.penalty if group.penalty is not None else math.nan
    m = np.full((len(row.cases), grid.size), penalty, dtype=float)
    for i, c in enumerate(row.cases):
        if not len(c.cost_curve):
            continue
        cost = np.asarray(c.cost_curve, dtype=float)
        best = np.asarray(c.best_curve, dtype=float)
        idx = np.searchsorted(cost, grid, side="right") - 1  # last trial finished by then
        ok = idx >= 0
        m[i, ok] = best[idx[ok]]
    m[np.isnan(m)] = penalty
    if group.known_optimum is not None:
        sign = 1.0 if group.direction == "maximize" else -1.0
        m = np.clip(sign * (group.known_optimum - m), 0.0, None)
    return m


def _band_plot(ax: Any, x: np.ndarray, matrix: np.ndarray, label: str, colour: Any, seed_text: str) -> None:
    mean, lo, hi = bootstrap_mean_band(matrix, seed_text=seed_text)
    ax.plot(x, mean, label=label, color=colour, lw=1.8, drawstyle="steps-post")
    ax.fill_between(x, lo, hi, color=colour, alpha=0.18, step="post", lw=0)


def _ylabel(group: GroupResult, use_regret: bool) -> str:
    return "simple regret (log)" if use_regret else f"best feasible {group.objective_metric}"


def _finish_regret_axis(ax: Any, use_regret: bool, values: list[np.ndarray]) -> None:
    if not use_regret:
        return
    positive = np.concatenate([v[v > 0] for v in values]) if values else np.array([])
    if positive.size:
        ax.set_yscale("log")
        ax.set_ylim(bottom=max(positive.min() * 0.5, positive.max() * 1e-6))


def plot_group(plt: Any, group: GroupResult, folder: Path, palette: dict[str, Any] | None = None) -> list[Path]:
    stems = plot_stems(group.key)
    cmap = plt.get_cmap("tab10")
    palette = palette or {r.label: cmap(i % 10) for i, r in enumerate(group.rows)}
    written: list[Path] = []
    title = group.key.title()

    # best so far against trials
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    mats = []
    for row in group.rows:
        m, use_regret = _curve_values(group, row)
        mats.append(m)
        x = np.arange(1, m.shape[1] + 1)
        _band_plot(ax, x, m, f"{row.label} (n={row.seeds})", palette[row.label], f"{title}|{row.label}|trials")
    _finish_regret_axis(ax, group.known_optimum is not None, mats)
    ax.set_xlabel("trial")
    ax.set_ylabel(_ylabel(group, group.known_optimum is not None))
    ax.set_title(f"{title}: best so far (mean, 95% bootstrap band)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    written += _save(fig, folder, stems["trials"])
    plt.close(fig)

    # best so far against seconds of cost
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    horizon = max((c.total_cost for r in group.rows for c in r.cases), default=1.0) or 1.0
    grid = np.linspace(0.0, horizon, 240)
    mats = []
    for row in group.rows:
        m = _cost_values(group, row, grid)
        mats.append(m)
        _band_plot(ax, grid, m, f"{row.label} (n={row.seeds})", palette[row.label], f"{title}|{row.label}|cost")
    _finish_regret_axis(ax, group.known_optimum is not None, mats)
    ax.set_xlabel("seconds of cost charged (cost_s)")
    ax.set_ylabel(_ylabel(group, group.known_optimum is not None))
    ax.set_title(f"{title}: best so far against cost", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    written += _save(fig, folder, stems["cost"])
    plt.close(fig)

    written += plot_waste(plt, group, folder / f"{stems['waste']}")
    return written


def plot_waste(plt: Any, group: GroupResult, stem_path: Path) -> list[Path]:
    """Stacked bars per optimizer: share of all trials by wasted-outcome kind."""
    kinds = sorted({k for r in group.rows for c in r.cases for k in c.error_kinds if k != "timeout"})
    categories = ["infeasible", "early stopped"] + [f"crash: {k}" for k in kinds] + ["timeout"]
    shares = {cat: [] for cat in categories}
    for r in group.rows:
        total = sum(c.n_trials for c in r.cases) or 1
        shares["infeasible"].append(sum(c.n_infeasible - c.n_early_stopped for c in r.cases) / total)
        shares["early stopped"].append(sum(c.n_early_stopped for c in r.cases) / total)
        for k in kinds:
            shares[f"crash: {k}"].append(sum(c.error_kinds.get(k, 0) for c in r.cases) / total)
        shares["timeout"].append(sum(c.n_timeout for c in r.cases) / total)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    labels = [r.label for r in group.rows]
    bottom = np.zeros(len(labels))
    for i, cat in enumerate(categories):
        vals = np.array(shares[cat])
        if not vals.any():
            continue
        colour = _OUTCOME_COLOURS.get(cat, _CRASH_COLOURS[(i - 2) % len(_CRASH_COLOURS)])
        ax.bar(labels, vals, bottom=bottom, label=cat, color=colour, width=0.6)
        bottom += vals
    for x, total in enumerate(bottom):
        ax.text(x, total + 0.01, f"{100 * total:.0f}%", ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, max(1.0, float(bottom.max(initial=0)) + 0.08))
    ax.set_ylabel("share of all trials")
    ax.set_title(f"{group.key.title()}: wasted trials by kind", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    paths = _save(fig, stem_path.parent, stem_path.name)
    plt.close(fig)
    return paths


def plot_cd(plt: Any, board: "Leaderboard", folder: Path) -> list[Path]:
    """Critical-difference diagram: average ranks on an axis; bars join optimizers that the
    Wilcoxon–Holm tests do not separate; the Nemenyi CD is drawn for scale."""
    o = board.overall
    if o is None:
        return []
    order = o.labels
    k = len(order)
    ranks = [o.avg_rank[lab] for lab in order]
    n_side = (k + 1) // 2
    fig_h = 1.5 + 0.3 * n_side
    fig, ax = plt.subplots(figsize=(7.0, fig_h))
    lo, hi = 1, max(k, 2)
    ax.set_xlim(lo - 0.3, hi + 0.3)
    ax.set_ylim(-(n_side * 0.8 + 0.4), 1.8)
    ax.axis("off")
    ax.hlines(0, lo, hi, color="black", lw=1)
    for t in range(lo, hi + 1):
        ax.vlines(t, 0, 0.15, color="black", lw=1)
        ax.text(t, 0.3, str(t), ha="center", va="bottom", fontsize=9)
    ax.text((lo + hi) / 2, 1.05, "average rank (1 = best)", ha="center", fontsize=9)
    if math.isfinite(o.cd):
        ax.hlines(1.5, lo, lo + o.cd, color="grey", lw=2)
        ax.text(lo + o.cd + 0.05, 1.5, f"Nemenyi CD = {o.cd:.2f}", va="center", fontsize=8, color="grey")
    left = list(range((k + 1) // 2))
    for i, (lab, r) in enumerate(zip(order, ranks)):
        if i in left:
            y = -(i + 1) * 0.8
            ax.plot([r, r, lo - 0.1], [0, y, y], color="black", lw=0.8)
            ax.text(lo - 0.15, y, f"{lab} ({r:.2f})", ha="right", va="center", fontsize=9)
        else:
            y = -(k - i) * 0.8
            ax.plot([r, r, hi + 0.1], [0, y, y], color="black", lw=0.8)
            ax.text(hi + 0.15, y, f"({r:.2f}) {lab}", ha="left", va="center", fontsize=9)
    for n, (a, b) in enumerate(insignificant_cliques(order, o.tests)):
        y = -0.25 - 0.18 * n
        ax.hlines(y, ranks[a] - 0.03, ranks[b] + 0.03, color="#b33f40", lw=3)
    ax.set_title(f"Critical difference: {o.n_blocks} (table, seed) blocks; red bars = not significantly different "
                 f"(Wilcoxon–Holm, α = {board.alpha:g})", fontsize=8)
    paths = _save(fig, folder, CD_STEM)
    plt.close(fig)
    return paths


def write_plots(board: "Leaderboard", folder: Path | str) -> list[Path]:
    """Every figure of the leaderboard into ``folder`` (created); returns the files written."""
    plt = _pyplot()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    cmap = plt.get_cmap("tab10")
    labels = sorted({r.label for g in board.groups for r in g.rows})
    palette = {lab: cmap(i % 10) for i, lab in enumerate(labels)}  # one colour per optimizer in every figure
    with plt.rc_context({"svg.hashsalt": "deploybench", "svg.fonttype": "none"}):
        for g in board.groups:
            written += plot_group(plt, g, folder, palette)
        written += plot_cd(plt, board, folder)
    return written
