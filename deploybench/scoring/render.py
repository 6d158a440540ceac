"""Turning a :class:`~deploybench.scoring.board.Leaderboard` into text: tables, statistics, notes.

Output is deterministic (no dates, no timings, fixed number formats), so a regenerated README can
be compared byte for byte with the committed one (``deploybench leaderboard --check``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

from .board import Leaderboard
from .columns import DASH, Interval, column_header, column_key, column_note, column_text, fmt_num
from .document import Block, Bullets, Heading, Image, Paragraph, TableBlock, render_blocks
from .html_page import html_page
from .metrics import GroupResult, RowMetrics
from .plots import CD_STEM, plot_stems
from .statistics import SignificanceFloor, significance_floor
from ..results import archive_of, is_archive

__all__ = ["render", "FORMATS", "fmt_num", "leaderboard_blocks", "to_json_data"]

FORMATS = ("github", "markdown", "latex", "html", "csv", "json", "summary")


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _group_table(g: GroupResult) -> TableBlock:
    """One row per optimizer: every column (built-in and plugin) through the ``Metric`` protocol."""
    ctx = g.context
    headers = ["optimizer"] + [column_header(m, ctx) for m in g.columns] + ["significantly better than"]
    rows = []
    for r in g.rows:
        label = r.label + (f" ({r.n_errors} errored)" if r.n_errors else "") + \
            (f" ({r.n_unfinished} unfinished)" if r.n_unfinished else "")
        rows.append([label] + [column_text(m, r.values.get(column_key(m))) for m in g.columns]
                    + [", ".join(r.wins) or DASH])
    align = ["left"] + ["right"] * len(g.columns) + ["left"]
    return TableBlock(headers, rows, align)


def _definitions(g: GroupResult, board: Leaderboard) -> list[str]:
    items = [note for m in g.columns if (note := column_note(m, g.context))]
    items.append(f"**significantly better than**: two-sided Wilcoxon signed-rank test on the best objective, "
                 f"paired by seed, Holm-corrected over all pairs in this table, α = {board.alpha:g}.")
    floor = significance_floor(g.tests, board.alpha)
    if floor is not None and not floor.can_show_a_difference:
        items.append(_floor_note(floor, "seeds"))
    return items


def _floor_note(floor: SignificanceFloor, blocks: str) -> str:
    """Say that a comparison is too small to show any significant pair, and what would be needed."""
    return (f"**This comparison cannot show a significant pair**: with {floor.n_blocks} {blocks} and "
            f"{floor.n_pairs} pairs of optimizers, the smallest Holm-corrected p-value a Wilcoxon test can reach "
            f"is {floor.smallest_p_holm:.3g} (every {blocks[:-1]} favouring the same optimizer), not below "
            f"α = {floor.alpha:g}, however large the differences. At least {floor.blocks_needed} {blocks} are needed "
            f"for one pair to reach significance, and many more for real power; an empty "
            f"**significantly better than** column here says nothing about whether the optimizers differ.")


def _seed_text(seeds: list[int]) -> str:
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}–{seeds[-1]}"
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


def _seed_counts(g: GroupResult) -> str:
    """Which optimizers ran which seeds, when they did not all run the same ones (a table never runs some
    optimizers on fewer seeds silently)."""
    by_seeds: dict[tuple[int, ...], list[str]] = {}
    for r in g.rows:
        by_seeds.setdefault(tuple(sorted({c.seed for c in r.cases})), []).append(f"`{r.label}`")
    if len(by_seeds) < 2:
        return ""
    parts = [f"{', '.join(labels)}: {len(seeds)} ({_seed_text(list(seeds))})"
             for seeds, labels in sorted(by_seeds.items(), key=lambda kv: (-len(kv[0]), kv[1]))]
    return ("; **not every optimizer ran the same seeds** (" + "; ".join(parts) + "): the mean best of each row is "
            "over its own seeds, and each significance test pairs only the seeds both optimizers ran")


def _provenance(g: GroupResult) -> str:
    seeds = sorted({c.seed for r in g.rows for c in r.cases})
    budget = f"budget {g.key.budget} trials"
    if g.key.budget_seconds is not None:
        budget = f"budget {fmt_num(g.key.budget_seconds)} s of charged cost (at most {g.key.budget} trials)"
    text = (f"**Provenance**: {sum(len(r.cases) for r in g.rows)} case files ({_seed_text(seeds)}) of task signature "
            f"`{g.key.task_signature}`, {budget}{_seed_counts(g)}")
    software = g.software
    if software:
        by_text: dict[str, list[str]] = {}
        for label in sorted(software):
            by_text.setdefault(software[label], []).append(f"`{label}`")
        text += "; optimizer software as recorded in the case headers: " + "; ".join(
            f"{', '.join(labels)}: {sw}" for sw, labels in sorted(by_text.items(), key=lambda kv: kv[1]))
    return text + "."


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
        blocks.append(TableBlock(["as printed", "closest optimizer here", "seeds", f"best {g.objective_metric} (mean ± std)",
                             "waste", "success", "discovery"], rows,
                            ["left", "left", "right", "right", "right", "right", "right"]))
        if ref.note:
            blocks.append(Paragraph(ref.note))
    return blocks


def _pct(v: float | None) -> str:
    return DASH if v is None else f"{100 * v:.0f}%"


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
        rows.append([i, lab, f"{o.avg_rank[lab]:.2f}", f"{o.groups_best[lab]}/{o.n_tables}",
                     ", ".join(sorted(wins[lab], key=o.labels.index)) or DASH, fmt_num(o.mean_normalised[lab]),
                     _pct(o.mean_success[lab]), _pct(o.mean_waste[lab]), _pct(o.mean_discovery[lab])])
    blocks: list[Block] = [
        Heading(2, "Across tasks"),
        TableBlock(["#", "optimizer", "avg rank over tables", "best mean", "significantly better than (seed pairs)",
               "mean norm. score", "mean success", "mean waste", "mean discovery"], rows,
              ["right", "left", "right", "right", "left", "right", "right", "right", "right"]),
    ]
    if o.friedman is None:
        fr = "Friedman test over the tables: not defined (fewer than three optimizers or two tables, or all tied)."
    else:
        fr = (f"Friedman test over the {o.n_tables} tables: χ² = {o.friedman[0]:.2f}, p = {_p(o.friedman[1])} "
              f"({'the optimizers differ' if o.friedman[1] < board.alpha else 'no evidence that the optimizers differ'}"
              f" at α = {board.alpha:g}).")
    notes = [
        f"**avg rank over tables**: in each of the {o.n_tables} tables the optimizers are ranked by their mean best "
        f"objective (the table's **best** column: seeds that found nothing at the task's penalty; 1 = best, ties share "
        f"the mean rank), then the ranks are averaged over the tables, which are the blocks of the Friedman test and "
        f"of the critical difference (Demšar 2006, *Statistical comparisons of classifiers over multiple data sets*, "
        f"JMLR 7). **best mean**: tables where the optimizer has the best mean objective.",
        fr,
        f"Nemenyi critical difference of the average ranks over {o.n_tables} tables: {o.cd:.3f}; the diagram's bars "
        f"join optimizers whose average ranks differ by less than it.",
        f"**significantly better than (seed pairs)**: two-sided Wilcoxon signed-rank tests on the {o.paired_on}, "
        f"paired by (table, seed) pair ({o.n_blocks} pairs), Holm-corrected over all {len(o.tests)} pairs of "
        f"optimizers, α = {board.alpha:g}. These tests are over seeds, not tables: they treat the seeds of different "
        f"tables as exchangeable blocks, which gives them more power than the tests over tables. Each table "
        f"contributes the seeds every table has, so a table run with more seeds does not outweigh the others.",
    ]
    if o.excluded:
        notes.append(f"Not in every table, so left out of this comparison: {', '.join(o.excluded)}.")
    floor = significance_floor(o.tests, board.alpha)
    if floor is not None and not floor.can_show_a_difference:
        notes.append(_floor_note(floor, "seed pairs"))
    blocks.append(Bullets(notes))
    test_rows = [[t.a, t.b, t.n, _p(t.p), _p(t.p_holm), t.winner or DASH] for t in o.tests]
    blocks.append(TableBlock(["a", "b", "seed pairs", "p", "p (Holm)", "better"], test_rows,
                        ["left", "left", "right", "right", "right", "left"]))
    if plots_rel is not None:
        blocks.append(Image("critical-difference diagram", f"{plots_rel}/{CD_STEM}.png"))
    return blocks


def _summary_blocks(board: Leaderboard) -> list[Block]:
    """What a reader needs first: the overall ranking (short) and one line per table."""
    blocks: list[Block] = [Heading(2, "Summary")]
    o = board.overall
    if o is not None:
        blocks.append(Paragraph(f"Overall ranking of the {len(o.labels)} optimizers present in all {o.n_tables} tables "
                                f"(average rank of the mean best objective over the tables, 1 = best; the tests and "
                                f"the critical-difference diagram are under **Across tasks**)."))
        blocks.append(TableBlock(["#", "optimizer", "avg rank", "best mean in", "mean success", "mean waste"],
                            [[i, lab, f"{o.avg_rank[lab]:.2f}", f"{o.groups_best[lab]}/{o.n_tables}",
                              _pct(o.mean_success[lab]), _pct(o.mean_waste[lab])]
                             for i, lab in enumerate(o.labels, start=1)],
                            ["right", "left", "right", "right", "right", "right"]))
    rows = []
    labels = [g.key.task_label for g in board.groups]
    for g in board.groups:
        seeds = sorted({len(r.cases) for r in g.rows})
        top = g.rows[0] if g.rows and g.rows[0].best is not None else None
        significant = sum(1 for t in g.tests if t.winner is not None)
        rows.append([g.key.title(with_signature=labels.count(g.key.task_label) > 1), len(g.rows),
                     "–".join(map(str, (seeds[0], seeds[-1]))) if len(seeds) > 1 else str(seeds[0]),
                     f"{g.direction} `{g.objective_metric}`", top.label if top else DASH,
                     fmt_num(top.best.mean) if top else DASH, f"{significant}/{len(g.tests)}"])
    blocks.append(Paragraph("One line per table: the optimizer with the best mean (the first row of the table) and "
                            "how many optimizer pairs its seed-paired Wilcoxon-Holm tests separate."))
    blocks.append(TableBlock(["table", "optimizers", "seeds", "objective", "best mean", "its mean", "significant pairs"],
                        rows, ["left", "right", "right", "left", "left", "right", "right"]))
    return blocks


def _optimizer_blocks(board: Leaderboard, info: dict[str, dict] | None) -> list[Block]:
    """What each optimizer on the board is: its one-line description and module, as registered."""
    if info is None:
        return []
    names = sorted({r.optimizer for g in board.groups for r in g.rows})
    rows = [[name, (info.get(name) or {}).get("description") or "(not registered where this page was generated)",
             f"`{(info.get(name) or {}).get('module', '')}`" if (info.get(name) or {}).get("module") else DASH]
            for name in names]
    return [Heading(2, "Optimizers"),
            Paragraph("What each optimizer on the board is, as its plugin registers it (`deploybench list "
                      "optimizers`); its docstring says what it is told and what it is not."),
            TableBlock(["optimizer", "what it is", "module"], rows, ["left", "left", "left"],
                  row_ids=[f"optimizer-{name}" for name in names])]


def _reproducibility_blocks() -> list[Block]:
    return [Heading(2, "Reproducing these results"), Bullets([
        "`deploybench leaderboard RESULTS_DIR --reproduce N` reruns N of the recorded cases, chosen across tasks and "
        "optimizers, exactly as their headers describe them (task and target, optimizer and every parameter, seed, "
        "budget), compares each trial's configuration, outcome and duplicate flag with the record, prints "
        "`identical` or `diverged at trial T` per case and exits 1 when any case diverges.",
        "**Bitwise reproducible on any machine** with the versions the case headers record (deploybench, the "
        "optimizer's package and its libraries): the tasks' outcomes (analytic tasks are functions of the "
        "configuration, the seed and the trial index; replay tasks pick the recorded repeat by a hash of the same), "
        "the seeded random numbers every optimizer draws (numpy's PCG64 streams are the same everywhere), and so "
        "random search.",
        "**Not guaranteed bitwise across machines**: the model-based optimizers (cbo's Gaussian processes, TPE and "
        "the TBA hybrids, SMAC's random forest, Nevergrad's strategies) and TBA's annealing acceptance use "
        "floating-point libraries (BLAS/LAPACK through numpy, scipy and scikit-learn; the C library's exp and log) "
        "whose last bits can depend on the CPU's instruction set (AVX2, AVX-512, FMA), the library build and the "
        "thread count. A last-bit difference that changes which candidate wins makes the rest of that run differ "
        "(a published cbo case rerun on another x86 CPU diverged at trial 15); the scores of such reruns agree "
        "statistically, not digit for digit. On the machine and software that recorded them, reruns are identical.",
        "**Never bitwise**: live measurements (`--target live`: latency, memory and their crashes are measured "
        "anew) and the per-trial timings (`ask_s`, `eval_s`, `tell_s`), which the published records leave out.",
    ])]


def _records_link(g: GroupResult, records_base: str | None) -> str:
    """`` Records: [runs/<task>.tar.xz](runs/<task>.tar.xz).`` when every case of the table lies in one records
    archive (or ``[runs/<task>/]`` in one task folder, ``<task>/<optimizer>/seed_N``), relative to
    ``records_base`` (the document's folder)."""
    if records_base is None:
        return ""
    places = {archive_of(c.path) or Path(c.path).parent.parent for r in g.rows for c in r.cases}
    if len(places) != 1:
        return ""
    place = places.pop()
    rel = Path(os.path.relpath(place, records_base)).as_posix()
    if not is_archive(place):
        rel += "/"
    return f" Records: [{rel}]({rel})."


def leaderboard_blocks(board: Leaderboard, *, plots_rel: str | None = None, title: str = "DeployBench leaderboard",
                       preamble: str | None = None, records_base: str | None = None,
                       optimizer_info: dict[str, dict] | None = None) -> list[Block]:
    """The whole document. ``plots_rel``: the plots folder relative to the document (None: no images);
    ``records_base``: the document's folder, to link each table to its records (None: no links);
    ``optimizer_info``: per optimizer name its ``description`` and ``module`` (an Optimizers section)."""
    blocks: list[Block] = [Heading(1, title)]
    if preamble:
        blocks.append(Paragraph(preamble))
    tasks = sorted({g.key.task_label for g in board.groups})
    versions = sorted({c.deploybench_version for g in board.groups for r in g.rows for c in r.cases
                       if c.deploybench_version})
    written = f" Written by deploybench {', '.join(versions)}." if versions else ""
    blocks.append(Paragraph(f"{board.n_cases} cases, {board.n_trials} trials, {len(board.groups)} "
                            f"table{'s' if len(board.groups) != 1 else ''} ({', '.join(tasks) or 'none'}). "
                            f"One table per task, task signature and budget: runs of different task versions or "
                            f"budgets are never mixed.{written}"))
    blocks += _summary_blocks(board)
    labels = [g.key.task_label for g in board.groups]
    for g in board.groups:
        k = g.key
        blocks.append(Heading(2, k.title(with_signature=labels.count(k.task_label) > 1)))
        facts = [f"task signature `{k.task_signature}`", f"{g.direction} `{g.objective_metric}`"]
        if g.known_optimum is not None:
            facts.append(f"known optimum {fmt_num(g.known_optimum)}")
        if g.penalty is not None:
            facts.append(f"penalty for a seed that found nothing {fmt_num(g.penalty)}"
                         + (" (observed, not declared)" if g.context.penalty_source in ("observed", "undeclared")
                            else ""))
        if g.family_param:
            facts.append(f"families: `{g.family_param}`" + (f", best family `{g.best_family}`" if g.best_family is not None else ""))
        blocks.append(Paragraph("; ".join(facts) + "."))
        blocks.append(_group_table(g))
        blocks.append(Bullets(_definitions(g, board)))
        blocks.append(Paragraph(_provenance(g) + _records_link(g, records_base)))
        blocks += _reference_blocks(g, board)
        if plots_rel is not None:
            stems = plot_stems(k)
            blocks.append(Image(f"{k.task_label}: best so far against trials", f"{plots_rel}/{stems['trials']}.png"))
            blocks.append(Image(f"{k.task_label}: best so far against seconds of cost", f"{plots_rel}/{stems['cost']}.png"))
            blocks.append(Image(f"{k.task_label}: waste by outcome kind", f"{plots_rel}/{stems['waste']}.png"))
    blocks += _overall_blocks(board, plots_rel)
    blocks += _optimizer_blocks(board, optimizer_info)
    blocks += _reproducibility_blocks()
    if board.problems:
        blocks.append(Heading(2, "Problems found while reading"))
        blocks.append(Bullets([p.replace("\\", "/") for p in board.problems[:50]]))
    return blocks


def _json_value(v: Any) -> Any:
    return {"mean": v.mean, "lo": v.lo, "hi": v.hi} if isinstance(v, Interval) else v


def _row_data(r: RowMetrics) -> dict:
    answer = None if r.answer is None else dict(r.answer.__dict__)
    return {"optimizer": r.label, "errored": r.n_errors, "unfinished": r.n_unfinished,
            **{k: _json_value(v) for k, v in r.values.items()}, "better_than": list(r.wins),
            "best_by_seed": {str(s): v for s, v in sorted(r.best_by_seed.items())}, "best_found": answer}


def to_json_data(board: Leaderboard) -> dict:
    """Everything the tables show, as plain data (the ``json`` format)."""
    groups = []
    for g in board.groups:
        groups.append({
            "task_label": g.key.task_label, "task_signature": g.key.task_signature, "budget": g.key.budget,
            "budget_seconds": g.key.budget_seconds, "direction": g.direction, "objective": g.objective_metric,
            "known_optimum": g.known_optimum, "family_param": g.family_param, "best_family": g.best_family,
            "penalty": g.penalty, "penalty_source": g.context.penalty_source, "baseline_regret": g.baseline_regret,
            "discovery_rule": g.discovery_rule, "columns": [column_key(m) for m in g.columns],
            "software": g.software, "rows": [_row_data(r) for r in g.rows],
            "tests": [t.__dict__ for t in g.tests], "significance_floor": _floor_data(g.tests, board.alpha),
            "references": [{"source": ref.source, "note": ref.note, "rows": [r.__dict__ for r in ref.rows]}
                           for ref in board.references_for(g)],
        })
    o = board.overall
    overall = None if o is None else {
        "optimizers": o.labels, "excluded": o.excluded, "tables": o.n_tables, "avg_rank_over_tables": o.avg_rank,
        "friedman_over_tables": None if o.friedman is None else {"chi2": o.friedman[0], "p": o.friedman[1]},
        "nemenyi_cd_over_tables": o.cd, "seed_pairs": o.n_blocks, "paired_on": o.paired_on,
        "tests": [t.__dict__ for t in o.tests], "significance_floor": _floor_data(o.tests, board.alpha),
        "best_mean_count": o.groups_best, "mean_normalised": o.mean_normalised,
        "mean_success": o.mean_success, "mean_waste": o.mean_waste, "mean_discovery": o.mean_discovery}
    return {"cases": board.n_cases, "trials": board.n_trials, "alpha": board.alpha,
            "discovery_tol": board.discovery_tol, "groups": groups, "overall": overall, "problems": board.problems}


#: version of the ``summary`` format's layout
SUMMARY_SCHEMA = 1


def to_summary_data(board: Leaderboard) -> dict:
    """A small summary for badges and other sites (the ``summary`` format): per table its best
    optimizer (the first row) with its mean and 95 % interval and the row order; across tasks the
    ranking. Deterministic, like the other formats."""
    def number(v: float | None) -> float | None:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 6)

    tables = []
    for g in board.groups:
        top = g.rows[0] if g.rows and g.rows[0].best is not None else None
        tables.append({
            "task": g.key.task_label, "signature": g.key.task_signature, "budget": g.key.budget,
            "budget_seconds": g.key.budget_seconds, "objective": g.objective_metric, "direction": g.direction,
            "optimizers": len(g.rows), "seeds": max((r.seeds for r in g.rows), default=0),
            "best": None if top is None else {"optimizer": top.label, "mean": number(top.best.mean),
                                              "ci95": [number(top.best.lo), number(top.best.hi)]},
            "order": [r.label for r in g.rows],
            "significant_pairs": sum(1 for t in g.tests if t.winner is not None), "pairs": len(g.tests)})
    o = board.overall
    ranking = [] if o is None else [{"optimizer": lab, "avg_rank": number(o.avg_rank[lab]),
                                     "best_mean_in": o.groups_best[lab]} for lab in o.labels]
    versions = sorted({c.deploybench_version for g in board.groups for r in g.rows for c in r.cases
                       if c.deploybench_version})
    return {"schema": SUMMARY_SCHEMA, "deploybench": versions, "cases": board.n_cases, "trials": board.n_trials,
            "tables": tables, "ranking": ranking}


def _floor_data(tests: Any, alpha: float) -> dict | None:
    floor = significance_floor(tests, alpha)
    return None if floor is None else {**floor.__dict__, "can_show_a_difference": floor.can_show_a_difference}


def _csv(board: Leaderboard) -> str:
    """One line per table row; an interval column gives three fields (``<key>_mean``, ``_lo``, ``_hi``)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    columns: list[tuple[str, bool]] = []  # (key, is interval), in first-seen order over the tables
    for g in board.groups:
        for m in g.columns:
            key = column_key(m)
            is_iv = any(isinstance(r.values.get(key), Interval) for gg in board.groups for r in gg.rows)
            if key not in [c[0] for c in columns]:
                columns.append((key, is_iv))
    header = ["task_label", "task_signature", "budget", "budget_seconds", "optimizer"]
    for key, is_iv in columns:
        header += [f"{key}_mean", f"{key}_lo", f"{key}_hi"] if is_iv else [key]
    w.writerow(header + ["better_than"])

    def num(v: Any) -> str:
        return "" if v is None else repr(float(v))

    for g in board.groups:
        for r in g.rows:
            line = [g.key.task_label, g.key.task_signature, g.key.budget, num(g.key.budget_seconds), r.label]
            for key, is_iv in columns:
                v = r.values.get(key)
                if is_iv:
                    line += [num(v.mean), num(v.lo), num(v.hi)] if isinstance(v, Interval) else ["", "", ""]
                else:
                    line.append(num(v))
            w.writerow(line + [" ".join(r.wins)])
    return buf.getvalue()


def render(board: Leaderboard, fmt: str = "github", *, plots_rel: str | None = None,
           preamble: str | None = None, title: str = "DeployBench leaderboard", records_base: str | None = None,
           optimizer_info: dict[str, dict] | None = None) -> str:
    """The leaderboard in one of :data:`FORMATS` (``html``: a standalone page)."""
    if fmt == "json":
        return json.dumps(to_json_data(board), indent=2, sort_keys=True, default=str, allow_nan=False) + "\n"
    if fmt == "summary":
        return json.dumps(to_summary_data(board), indent=1, sort_keys=True, allow_nan=False) + "\n"
    if fmt == "csv":
        return _csv(board)
    blocks = leaderboard_blocks(board, plots_rel=plots_rel, preamble=preamble, title=title, records_base=records_base,
                                optimizer_info=optimizer_info)
    if fmt == "html":
        return html_page(blocks, title=title)
    return render_blocks(blocks, fmt)
