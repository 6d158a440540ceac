"""Figures (matplotlib, Agg backend, PNG and SVG): best-so-far curves, waste bars, CD diagram.

Every figure shows the optimizers in one order (the across-task ranking, then the rest) with one
colour and line style each, so an optimizer looks the same in every figure and eight of them stay
distinguishable; legends sit outside the axes; the value axes are fitted to what is drawn (the
means and their bands), not to per-seed values. Matplotlib is imported only when a figure is
drawn, so ``deploybench leaderboard`` without ``--plots`` starts fast. SVGs are written without a
date and with a fixed hash salt, so regenerating them does not churn the repository.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import direction as direction_
from .metrics import GroupResult, RowMetrics
from .reading import GroupKey
from .statistics import bootstrap_mean_band, nemenyi_cliques

if TYPE_CHECKING:  # pragma: no cover
    from .board import Leaderboard

__all__ = ["plot_stems", "CD_STEM", "write_plots"]

CD_STEM = "critical-difference"
_OUTCOME_COLOURS = {"infeasible": "#f2c14e", "early stopped": "#f78154", "timeout": "#5d576b"}
_CRASH_COLOURS = ["#b33f40", "#6c8ead", "#4d9078", "#9b5de5", "#8a6552", "#555555"]
#: one colour per optimizer (Okabe–Ito and Tableau colours, distinguishable for colour-blind readers
#: first), with line styles cycling every five so eight or more optimizers stay apart
_OPTIMIZER_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000", "#999933",
                      "#882255", "#44AA99", "#6c6c6c", "#F0E442"]
_LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1))]
_LEGEND = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "borderaxespad": 0.0, "fontsize": 8, "frameon": False}


def optimizer_styles(order: list[str]) -> dict[str, dict]:
    """Colour and line style for each optimizer label, fixed by its position in ``order``."""
    return {lab: {"color": _OPTIMIZER_COLOURS[i % len(_OPTIMIZER_COLOURS)], "linestyle": _LINESTYLES[(i // 5) % len(_LINESTYLES)]
                  if len(order) > 5 else "-"} for i, lab in enumerate(order)}


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
        m = np.clip(direction_.regret(group.known_optimum, m, group.direction), 0.0, None)
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
        m = np.clip(direction_.regret(group.known_optimum, m, group.direction), 0.0, None)
    return m


def _band_plot(ax: Any, x: np.ndarray, matrix: np.ndarray, label: str, style: dict, seed_text: str,
               step: str = "post") -> list[np.ndarray]:
    mean, lo, hi = bootstrap_mean_band(matrix, seed_text=seed_text)
    ax.plot(x, mean, label=label, color=style["color"], linestyle=style["linestyle"], lw=1.8, drawstyle=f"steps-{step}")
    ax.fill_between(x, lo, hi, color=style["color"], alpha=0.10, step=step, lw=0)
    return [mean, lo, hi]


def _ylabel(group: GroupResult, use_regret: bool) -> str:
    return "simple regret (log)" if use_regret else f"best feasible {group.objective_metric}"


def _fit_value_axis(ax: Any, use_regret: bool, drawn: list[np.ndarray]) -> None:
    """Limits from the plotted means and bands (log scale for regret), with a small margin."""
    values = np.concatenate([np.ravel(v) for v in drawn]) if drawn else np.array([])
    values = values[np.isfinite(values)]
    if use_regret:
        positive = values[values > 0]
        if positive.size:
            from matplotlib import ticker

            lo, hi = float(positive.min()), float(positive.max())
            ax.set_yscale("log")
            ax.set_ylim(lo / 1.6, hi * 1.6 if hi > lo else lo * 10)
            plain = ticker.FuncFormatter(lambda v, _: f"{v:g}")  # 0.3, 2, 100 rather than 3×10⁻¹
            ax.yaxis.set_major_formatter(plain)
            if math.log10(hi * 1.6 / (lo / 1.6)) < 2.5:  # few decades: label 2 and 5 of each too
                ax.yaxis.set_minor_locator(ticker.LogLocator(base=10.0, subs=(2.0, 5.0)))
                ax.yaxis.set_minor_formatter(plain)
            else:
                ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        return
    if values.size:
        lo, hi = float(values.min()), float(values.max())
        pad = (hi - lo) * 0.05 or max(abs(hi) * 0.05, 1e-9)
        ax.set_ylim(lo - pad, hi + pad)


def _rows_in_order(group: GroupResult, order: list[str]) -> list[RowMetrics]:
    position = {lab: i for i, lab in enumerate(order)}
    return sorted(group.rows, key=lambda r: (position.get(r.label, len(order)), r.label))


def plot_group(plt: Any, group: GroupResult, folder: Path, styles: dict[str, dict] | None = None,
               order: list[str] | None = None) -> list[Path]:
    order = order or [r.label for r in group.rows]
    styles = styles or optimizer_styles(order)
    rows = _rows_in_order(group, order)
    stems = plot_stems(group.key)
    written: list[Path] = []
    title = group.key.title()
    use_regret = group.known_optimum is not None

    # best so far against trials
    fig, ax = plt.subplots(figsize=(7.6, 4.0))
    drawn: list[np.ndarray] = []
    for row in rows:
        m, _ = _curve_values(group, row)
        x = np.arange(1, m.shape[1] + 1)
        # steps-pre: the best after trial i is drawn over (i - 1, i], so the final value is visible too
        drawn += _band_plot(ax, x, m, f"{row.label} (n={row.seeds})", styles[row.label], f"{title}|{row.label}|trials",
                            step="pre")
    _fit_value_axis(ax, use_regret, drawn)
    ax.set_xlabel("trial")
    ax.set_ylabel(_ylabel(group, use_regret))
    ax.set_title(f"{title}: best so far (mean over seeds, 95% percentile-bootstrap band)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(**_LEGEND)
    written += _save(fig, folder, stems["trials"])
    plt.close(fig)

    # best so far against seconds of cost
    fig, ax = plt.subplots(figsize=(7.6, 4.0))
    horizon = max((c.total_cost for r in rows for c in r.cases), default=1.0) or 1.0
    grid = np.linspace(0.0, horizon, 240)
    drawn = []
    for row in rows:
        m = _cost_values(group, row, grid)
        drawn += _band_plot(ax, grid, m, f"{row.label} (n={row.seeds})", styles[row.label], f"{title}|{row.label}|cost")
    _fit_value_axis(ax, use_regret, drawn)
    ax.set_xlabel("seconds of cost charged (cost_s)")
    ax.set_ylabel(_ylabel(group, use_regret))
    ax.set_title(f"{title}: best so far against cost (mean over seeds, 95% percentile-bootstrap band)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(**_LEGEND)
    written += _save(fig, folder, stems["cost"])
    plt.close(fig)

    written += plot_waste(plt, group, folder / f"{stems['waste']}", order)
    return written


def plot_waste(plt: Any, group: GroupResult, stem_path: Path, order: list[str] | None = None) -> list[Path]:
    """Stacked bars per optimizer (in the common order): share of all trials by wasted-outcome kind."""
    rows = _rows_in_order(group, order or [r.label for r in group.rows])
    kinds = sorted({k for r in rows for c in r.cases for k in c.error_kinds if k != "timeout"})
    categories = ["infeasible", "early stopped"] + [f"crash: {k}" for k in kinds] + ["timeout"]
    shares: dict[str, list[float]] = {cat: [] for cat in categories}
    for r in rows:
        total = sum(c.n_trials for c in r.cases) or 1
        shares["infeasible"].append(sum(c.n_infeasible - c.n_early_stopped for c in r.cases) / total)
        shares["early stopped"].append(sum(c.n_early_stopped for c in r.cases) / total)
        for k in kinds:
            shares[f"crash: {k}"].append(sum(c.error_kinds.get(k, 0) for c in r.cases) / total)
        shares["timeout"].append(sum(c.n_timeout for c in r.cases) / total)
    fig, ax = plt.subplots(figsize=(7.6, 3.8))
    labels = [r.label for r in rows]
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
    ax.set_ylim(0, min(1.0, float(bottom.max(initial=0))) + 0.1)
    ax.set_ylabel("share of all trials")
    ax.set_title(f"{group.key.title()}: wasted trials by kind", fontsize=10)
    ax.tick_params(axis="x", labelrotation=30)
    for tick in ax.get_xticklabels():
        tick.set_horizontalalignment("right")
    ax.legend(**_LEGEND)
    ax.grid(axis="y", alpha=0.3)
    paths = _save(fig, stem_path.parent, stem_path.name)
    plt.close(fig)
    return paths


def plot_cd(plt: Any, board: "Leaderboard", folder: Path) -> list[Path]:
    """Critical-difference diagram (Demšar 2006): average ranks over tables on an axis; bars join
    optimizers whose average ranks differ by less than the Nemenyi critical difference."""
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
    for n, (a, b) in enumerate(nemenyi_cliques(order, o.avg_rank, o.cd)):
        y = -0.25 - 0.18 * n
        ax.hlines(y, ranks[a] - 0.03, ranks[b] + 0.03, color="#b33f40", lw=3)
    ax.set_title(f"Critical difference over {o.n_tables} tables: red bars join optimizers whose average ranks "
                 f"differ by less than the Nemenyi CD (α = {board.alpha:g})", fontsize=8)
    paths = _save(fig, folder, CD_STEM)
    plt.close(fig)
    return paths


def write_plots(board: "Leaderboard", folder: Path | str) -> list[Path]:
    """Every figure of the leaderboard into ``folder`` (created); returns the files written."""
    plt = _pyplot()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    order = board.optimizer_order()
    styles = optimizer_styles(order)  # one colour and line style per optimizer in every figure
    with plt.rc_context({"svg.hashsalt": "deploybench", "svg.fonttype": "none"}):
        for g in board.groups:
            written += plot_group(plt, g, folder, styles, order)
        written += plot_cd(plt, board, folder)
    return written
