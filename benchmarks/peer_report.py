"""Where does each peer stand against the best built-in? The closing table of the leaderboard's peers.

Reads run records (the published ``leaderboard/runs`` by default) through the same scoring as
``deploybench leaderboard`` and prints, as Markdown:

1. per table: the rank of every optimizer by its mean best (seeds that found nothing at the task's
   penalty), the seeds it ran, and the seed-paired Wilcoxon-Holm verdict of each peer against the
   reference built-in (``cbo_plus`` unless ``--reference``): ``better``, ``worse`` or ``n.s.``, with the
   Holm-corrected p-value of that pair in the table's own correction (every pair of the table);
2. across tasks: average rank over tables and the verdict of the seed-pair tests (the leaderboard's
   "significantly better than (seed pairs)"), for every optimizer present in every table.

    python benchmarks/peer_report.py                                   # the published leaderboard
    python benchmarks/peer_report.py results/my-run --reference tba    # any results folder
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from deploybench.scoring import build_leaderboard
from deploybench.scoring.metrics import loss
from deploybench.scoring.statistics import PairTest

ROOT = Path(__file__).resolve().parent.parent
#: the optimizers that are library peers rather than DeployBench's own
PEERS = ("smac", "nevergrad", "optuna_gp", "optuna_cmaes", "ax", "hebo")


def verdict(tests: Sequence[PairTest], reference: str, other: str) -> str:
    """``better``/``worse`` (the other optimizer against the reference) or ``n.s.``, with Holm's p."""
    for t in tests:
        if {t.a, t.b} == {reference, other}:
            if t.winner is None:
                return f"n.s. ({t.p_holm:.2g})"
            return f"{'better' if t.winner == other else 'worse'} ({t.p_holm:.2g})"
    return "—"


def table_lines(board, reference: str, peers: Sequence[str]) -> list[str]:
    lines = ["| table | seeds | " + " | ".join(f"`{p}` rank, vs `{reference}`" for p in peers)
             + f" | `{reference}` rank |", "|---" * (len(peers) + 3) + "|"]
    for g in board.groups:
        ordered = sorted(g.rows, key=lambda r: (loss(r.best.mean, g.direction), r.label))
        rank = {r.label: i for i, r in enumerate(ordered, start=1)}
        seeds = sorted({len(r.best_by_seed) for r in g.rows})
        cells = []
        for p in peers:
            cells.append("—" if p not in rank else f"{rank[p]}/{len(rank)}, {verdict(g.tests, reference, p)}")
        ref_rank = f"{rank[reference]}/{len(rank)}" if reference in rank else "—"
        seed_text = "/".join(map(str, seeds))
        lines.append(f"| {g.key.title()} | {seed_text} | " + " | ".join(cells) + f" | {ref_rank} |")
    return lines


def overall_lines(board, reference: str) -> list[str]:
    o = board.overall
    if o is None:
        return ["(no optimizer is in every table: no across-task comparison)"]
    lines = [f"Across {o.n_tables} tables ({o.n_blocks} seed pairs); left out (not in every table): "
             f"{', '.join(o.excluded) or 'none'}.", "",
             f"| # | optimizer | avg rank over tables | vs `{reference}` (seed pairs, Holm) |", "|---|---|---|---|"]
    for i, lab in enumerate(o.labels, start=1):
        versus = "—" if lab == reference else verdict(o.tests, reference, lab)
        lines.append(f"| {i} | `{lab}` | {o.avg_rank[lab]:.2f} | {versus} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="*", default=[str(ROOT / "leaderboard" / "runs")],
                        help="results folders (default: the published leaderboard/runs)")
    parser.add_argument("--reference", default="cbo_plus", help="the built-in the peers are compared with")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated optimizer names")
    args = parser.parse_args(argv)
    for path in args.results:
        if not Path(path).exists():
            parser.error(f"no such results folder: {path}")
    board = build_leaderboard(args.results)
    labels = {r.label for g in board.groups for r in g.rows}
    if args.reference not in labels:
        from deploybench.space import closest_name

        hint = closest_name(args.reference, sorted(labels))
        parser.error(f"--reference {args.reference!r} is in no table; optimizers there: {', '.join(sorted(labels))}"
                     + (f"; did you mean {hint!r}?" if hint else ""))
    peers = [p for p in args.peers.split(",") if p]
    missing = [p for p in peers if p not in labels]
    if missing:
        print(f"note: not in any table, left out: {', '.join(missing)}", file=sys.stderr)
    peers = [p for p in peers if p in labels]
    print("\n".join(table_lines(board, args.reference, peers)))
    print()
    print("\n".join(overall_lines(board, args.reference)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
