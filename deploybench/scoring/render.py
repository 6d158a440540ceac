"""Turning a :class:`~deploybench.scoring.board.Leaderboard` into text: tables, statistics, notes.

Output is deterministic (no dates, no timings, fixed number formats), so a regenerated README can
be compared byte for byte with the committed one (``deploybench leaderboard --check``).
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from .board import Leaderboard
from .document import Block, Bullets, Heading, Image, Paragraph, Table, render_blocks
from .metrics import BASELINE, GroupResult, RowMetrics
from .plots import CD_STEM, plot_stems

__all__ = ["render", "FORMATS", "fmt_num", "leaderboard_blocks", "to_json_data"]

FORMATS = ("github", "markdown", "latex", "html", "csv", "json")
DASH = "—"


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


def _ci(interval: Any) -> str:
    if interval is None:
        return DASH
    return f"{fmt_num(interval.mean)} [{fmt_num(interval.lo)}, {fmt_num(interval.hi)}]"


def _num1(v: float | None) -> str:
    return DASH if v is None else f"{v:.1f}"


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _group_table(g: GroupResult, extra: list[Any]) -> Table:
    headers = ["optimizer", "seeds", f"best {g.objective_metric} (95% CI)", "success", "regret",
               "norm. score (95% CI)", "waste", "dup.", "TTFF trials", "TTFF cost s", "discovery", "cost s"]
    headers += [m.name for m in extra] + ["significantly better than"]
    rows = []
    for r in g.rows:
        label = r.label + (f" ({r.n_errors} errored)" if r.n_errors else "") + \
            (f" ({r.n_unfinished} unfinished)" if r.n_unfinished else "")
        row = [label, r.seeds, _ci(r.best), _pct(r.success), fmt_num(r.regret.mean) if r.regret else DASH,
               _ci(r.normalised), _pct(r.waste), _pct(r.duplicates), _num1(r.ttff_trials), _num1(r.ttff_cost),
               _pct(r.discovery), _num1(r.cost)]
        row += [fmt_num(r.extras.get(m.name)) for m in extra]
        row.append(", ".join(r.wins) or DASH)
        rows.append(row)
    align = ["left"] + ["right"] * (len(headers) - 2) + ["left"]
    return Table(headers, rows, align)


def _definitions(g: GroupResult, board: Leaderboard) -> list[str]:
    worst = "lowest" if g.direction == "maximize" else "highest"
    items = [
        f"**best {g.objective_metric}** ({g.direction}): mean over seeds of each seed's best feasible objective, "
        f"with a 95% percentile-bootstrap interval of the mean (2000 resamples). Seeds that found no feasible "
        f"configuration are counted with a penalty: the {worst} feasible objective any run in this table observed"
        f" ({fmt_num(g.penalty)}).",
        "**success**: share of seeds that found at least one feasible configuration.",
    ]
    if g.known_optimum is not None:
        items.append(f"**regret**: mean simple regret, |known optimum ({fmt_num(g.known_optimum)}) − best feasible|, "
                     f"clipped at 0 (noisy measurements can land above the optimum).")
        items.append(f"**norm. score**: regret ÷ the mean regret of `{BASELINE}` in this table "
                     f"({fmt_num(g.baseline_regret)}); 0 = optimum, 1 = random search (as Bayesmark)."
                     if g.baseline_regret else f"**norm. score**: not available (no `{BASELINE}` rows to normalise by).")
    else:
        items.append("**regret**, **norm. score**: not available (the task's optimum is unknown).")
    items += [
        "**waste**: mean share of trials that crashed, timed out or were infeasible (early-stopped included).",
        "**dup.**: mean share of trials that re-evaluated a configuration already measured in the same run.",
        "**TTFF**: time to first feasible, in trials (1-based) and in seconds of charged cost; seeds that found "
        "nothing count as budget + 1 trials and their total cost.",
        f"**discovery**: {g.discovery_rule}.",
        "**cost s**: mean total seconds of cost charged per seed (modelled on analytic tasks).",
    ]
    items += [f"**{m.name}** (plugin): {getattr(m, 'description', '')}" for m in board.extra_metrics]
    items.append(f"**significantly better than**: two-sided Wilcoxon signed-rank test on the best objective, "
                 f"paired by seed, Holm-corrected over all pairs in this table, α = {board.alpha:g}.")
    return items


def _reference_blocks(g: GroupResult, board: Leaderboard) -> list[Block]:
    blocks: list[Block] = []
    for ref in board.references_for(g):
        rows = []
        for r in ref.rows:
            # as printed: no re-rounding of the papers' numbers
            best = DASH if r.best is None else f"{r.best:g}" + ("" if r.best_std is None else f" ± {r.best_std:g}")
            rows.append([r.label, r.maps_to or DASH, DASH if r.seeds is None else r.seeds, best, _pct(r.waste),
                         _pct(r.success), _pct(r.discovery)])
        blocks.append(Paragraph(f"**Reference rows** (printed in {ref.source}; not measured here, excluded from "
                                f"ranks and tests):"))
        blocks.append(Table(["as printed", "closest optimizer here", "seeds", f"best {g.objective_metric} (mean ± std)",
                             "waste", "success", "discovery"], rows,
                            ["left", "left", "right", "right", "right", "right", "right"]))
        if ref.note:
            blocks.append(Paragraph(ref.note))
    return blocks


def _overall_blocks(board: Leaderboard, plots_rel: str | None) -> list[Block]:
    o = board.overall
    if o is None:
        return [Heading(2, "Across tasks"), Paragraph("Not enough optimizers in common across the tables to rank.")]
    wins: dict[str, list[str]] = {lab: [] for lab in o.labels}
    for t in o.tests:
        if t.winner:
            wins[t.winner].append(t.b if t.winner == t.a else t.a)
    rows = []
    for i, lab in enumerate(o.labels, start=1):
        rows.append([i, lab, f"{o.avg_rank[lab]:.2f}", f"{o.groups_best[lab]}/{len(board.groups)}",
                     ", ".join(sorted(wins[lab], key=o.labels.index)) or DASH, fmt_num(o.mean_normalised[lab]),
                     _pct(o.mean_success[lab]), _pct(o.mean_waste[lab]), _pct(o.mean_discovery[lab])])
    blocks: list[Block] = [
        Heading(2, "Across tasks"),
        Table(["#", "optimizer", "avg rank", "best mean", "significantly better than", "mean norm. score",
               "mean success", "mean waste", "mean discovery"], rows,
              ["right", "left", "right", "right", "left", "right", "right", "right", "right"]),
    ]
    if o.friedman is None:
        fr = "Friedman test: not defined (fewer than three optimizers, or all tied)."
    else:
        fr = (f"Friedman test over {o.n_blocks} blocks: χ² = {o.friedman[0]:.2f}, p = {_p(o.friedman[1])} "
              f"({'the optimizers differ' if o.friedman[1] < board.alpha else 'no evidence that the optimizers differ'}"
              f" at α = {board.alpha:g}).")
    notes = [
        f"Blocks are (table, seed) pairs that every compared optimizer ran ({o.n_blocks}); each block ranks the "
        f"optimizers by best feasible objective (1 = best, ties share the mean rank). **avg rank** is the mean over "
        f"blocks; **best mean**: tables where the optimizer has the best mean objective.",
        fr,
        f"Pairwise: two-sided Wilcoxon signed-rank tests on the {o.paired_on}, paired by block, Holm-corrected over "
        f"all {len(o.tests)} pairs, α = {board.alpha:g}. Nemenyi critical difference of average ranks: "
        f"{o.cd:.3f} (for reference; the diagram's bars join optimizers the Wilcoxon–Holm tests do not separate).",
    ]
    if o.excluded:
        notes.append(f"Not in every table, so left out of this comparison: {', '.join(o.excluded)}.")
    blocks.append(Bullets(notes))
    test_rows = [[t.a, t.b, t.n, _p(t.p), _p(t.p_holm), t.winner or DASH] for t in o.tests]
    blocks.append(Table(["a", "b", "blocks", "p", "p (Holm)", "better"], test_rows,
                        ["left", "left", "right", "right", "right", "left"]))
    if plots_rel is not None:
        blocks.append(Image("critical-difference diagram", f"{plots_rel}/{CD_STEM}.png"))
    return blocks


def leaderboard_blocks(board: Leaderboard, *, plots_rel: str | None = None, title: str = "DeployBench leaderboard",
                       preamble: str | None = None) -> list[Block]:
    """The whole document. ``plots_rel``: the plots folder relative to the document (None: no images)."""
    blocks: list[Block] = [Heading(1, title)]
    if preamble:
        blocks.append(Paragraph(preamble))
    tasks = sorted({g.key.task_label for g in board.groups})
    blocks.append(Paragraph(f"{board.n_cases} cases, {board.n_trials} trials, {len(board.groups)} "
                            f"table{'s' if len(board.groups) != 1 else ''} ({', '.join(tasks) or 'none'}). "
                            f"One table per task, task signature and budget: runs of different task versions or "
                            f"budgets are never mixed."))
    labels = [g.key.task_label for g in board.groups]
    for g in board.groups:
        k = g.key
        blocks.append(Heading(2, k.title(with_signature=labels.count(k.task_label) > 1)))
        facts = [f"task signature `{k.task_signature}`", f"{g.direction} `{g.objective_metric}`"]
        if g.known_optimum is not None:
            facts.append(f"known optimum {fmt_num(g.known_optimum)}")
        if g.family_param:
            facts.append(f"families: `{g.family_param}`" + (f", best family `{g.best_family}`" if g.best_family is not None else ""))
        blocks.append(Paragraph("; ".join(facts) + "."))
        blocks.append(_group_table(g, board.extra_metrics))
        blocks.append(Bullets(_definitions(g, board)))
        blocks += _reference_blocks(g, board)
        if plots_rel is not None:
            stems = plot_stems(k)
            blocks.append(Image(f"{k.task_label}: best so far against trials", f"{plots_rel}/{stems['trials']}.png"))
            blocks.append(Image(f"{k.task_label}: best so far against seconds of cost", f"{plots_rel}/{stems['cost']}.png"))
            blocks.append(Image(f"{k.task_label}: waste by outcome kind", f"{plots_rel}/{stems['waste']}.png"))
    blocks += _overall_blocks(board, plots_rel)
    if board.problems:
        blocks.append(Heading(2, "Problems found while reading"))
        blocks.append(Bullets([p.replace("\\", "/") for p in board.problems[:50]]))
    return blocks


def _row_data(r: RowMetrics) -> dict:
    def iv(x: Any) -> dict | None:
        return None if x is None else {"mean": x.mean, "lo": x.lo, "hi": x.hi}

    return {"optimizer": r.label, "seeds": r.seeds, "errored": r.n_errors, "unfinished": r.n_unfinished,
            "best": iv(r.best), "success": r.success, "regret": iv(r.regret), "normalised": iv(r.normalised),
            "waste": r.waste, "duplicates": r.duplicates, "ttff_trials": r.ttff_trials, "ttff_cost_s": r.ttff_cost,
            "discovery": r.discovery, "cost_s": r.cost, "extras": dict(r.extras), "better_than": list(r.wins),
            "best_by_seed": {str(s): v for s, v in sorted(r.best_by_seed.items())}}


def to_json_data(board: Leaderboard) -> dict:
    """Everything the tables show, as plain data (the ``json`` format)."""
    groups = []
    for g in board.groups:
        groups.append({
            "task_label": g.key.task_label, "task_signature": g.key.task_signature, "budget": g.key.budget,
            "budget_seconds": g.key.budget_seconds, "direction": g.direction, "objective": g.objective_metric,
            "known_optimum": g.known_optimum, "family_param": g.family_param, "best_family": g.best_family,
            "penalty": g.penalty, "baseline_regret": g.baseline_regret, "discovery_rule": g.discovery_rule,
            "rows": [_row_data(r) for r in g.rows],
            "tests": [t.__dict__ for t in g.tests],
            "references": [{"source": ref.source, "note": ref.note, "rows": [r.__dict__ for r in ref.rows]}
                           for ref in board.references_for(g)],
        })
    o = board.overall
    overall = None if o is None else {
        "optimizers": o.labels, "excluded": o.excluded, "blocks": o.n_blocks, "avg_rank": o.avg_rank,
        "friedman": None if o.friedman is None else {"chi2": o.friedman[0], "p": o.friedman[1]},
        "paired_on": o.paired_on, "tests": [t.__dict__ for t in o.tests], "nemenyi_cd": o.cd,
        "best_mean_count": o.groups_best, "mean_normalised": o.mean_normalised, "mean_success": o.mean_success,
        "mean_waste": o.mean_waste, "mean_discovery": o.mean_discovery}
    return {"cases": board.n_cases, "trials": board.n_trials, "alpha": board.alpha,
            "discovery_tol": board.discovery_tol, "groups": groups, "overall": overall, "problems": board.problems}


def _csv(board: Leaderboard) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    extra = [m.name for m in board.extra_metrics]
    w.writerow(["task_label", "task_signature", "budget", "budget_seconds", "optimizer", "seeds", "best_mean",
                "best_lo", "best_hi", "success", "regret_mean", "normalised_mean", "normalised_lo", "normalised_hi",
                "waste", "duplicates", "ttff_trials", "ttff_cost_s", "discovery", "cost_s", *extra, "better_than"])

    def num(v: Any) -> str:
        return "" if v is None else repr(float(v))

    for g in board.groups:
        for r in g.rows:
            w.writerow([g.key.task_label, g.key.task_signature, g.key.budget, num(g.key.budget_seconds), r.label,
                        r.seeds, num(r.best and r.best.mean), num(r.best and r.best.lo), num(r.best and r.best.hi),
                        num(r.success), num(r.regret and r.regret.mean), num(r.normalised and r.normalised.mean),
                        num(r.normalised and r.normalised.lo), num(r.normalised and r.normalised.hi), num(r.waste),
                        num(r.duplicates), num(r.ttff_trials), num(r.ttff_cost), num(r.discovery), num(r.cost),
                        *[num(r.extras.get(n)) for n in extra], " ".join(r.wins)])
    return buf.getvalue()


def render(board: Leaderboard, fmt: str = "github", *, plots_rel: str | None = None,
           preamble: str | None = None) -> str:
    """The leaderboard in one of :data:`FORMATS`."""
    if fmt == "json":
        return json.dumps(to_json_data(board), indent=2, sort_keys=True, default=str, allow_nan=False) + "\n"
    if fmt == "csv":
        return _csv(board)
    return render_blocks(leaderboard_blocks(board, plots_rel=plots_rel, preamble=preamble), fmt)
