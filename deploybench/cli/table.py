"""``deploybench table info FILE|NAME``: what a recorded table holds and what it implies per scenario."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from tabulate import tabulate

from ..plugins import UsageError
from ..tables import TableError, ground_truth, load_table, resolve_table

NEAR = 0.3


def add_parser(sub: Any, pm: Any) -> None:
    p = sub.add_parser("table", help="inspect recorded deployment tables")
    tsub = p.add_subparsers(dest="table_command", metavar="SUBCOMMAND")
    info = tsub.add_parser("info", help="coverage, crashes, feasibility and optimum per scenario, noise near caps")
    info.add_argument("table", help="a shipped table name (cpu, h100) or a path")
    p.set_defaults(handler=run)


def run(args: Any, pm: Any) -> int:
    from ..tasks.deployment import scenarios

    if getattr(args, "table_command", None) != "info":
        raise UsageError("deploybench table: choose a subcommand: info")
    try:
        table = load_table(resolve_table(args.table))
    except TableError as exc:
        raise UsageError(str(exc)) from exc
    covered, grid = table.coverage()
    n = sum(len(v) for v in table.measurements.values())
    p = table.provenance
    print(table.describe())
    print(f"provenance: {p.get('device_name')} ({p.get('device')}), {p.get('cpu')}, {p.get('cpu_count')} cores, "
          f"python {p.get('python')}, " + ", ".join(f"{k} {v}" for k, v in (p.get("versions") or {}).items()))
    print(f"grid: {covered}/{grid} configurations measured ({100 * covered / max(grid, 1):.0f} %), {n} measurements, "
          f"space {table.header.get('space_signature')}")
    for prob in table.problems:
        print(f"note: {prob}")
    statuses = Counter()
    kinds = Counter()
    costs = []
    for reps in table.measurements.values():
        for m in reps:
            statuses[m["status"]] += 1
            costs.append(m.get("cost_s") or 0.0)
            if m.get("error"):
                kinds[m["error"].get("kind", "?")] += 1
    print()
    print(tabulate([[s, c, f"{100 * c / n:.1f} %"] for s, c in statuses.most_common()], headers=["status", "measurements", "share"]))
    if kinds:
        print()
        print(tabulate([[k, c, f"{100 * c / n:.1f} %"] for k, c in kinds.most_common()], headers=["crash kind", "count", "share"]))
    print(f"\nevaluation cost: {sum(costs):.0f} s in all, median {statistics.median(costs):.1f} s per measurement")
    rows = []
    for s in scenarios().values():
        truth = ground_truth(table, s)
        near = []
        for key, reps in table.measurements.items():
            vals = [m["metrics"].get(s.latency_metric) for m in reps if m["status"] == "ok"]
            vals = [v for v in vals if v is not None]
            if len(vals) >= 2 and abs(statistics.median(vals) - s.latency_cap_ms) <= NEAR * s.latency_cap_ms:
                near.append(statistics.pstdev(vals) / statistics.mean(vals))
        best = truth.best_config
        rows.append([s.name, f"{100 * truth.feasible_share:.1f} %",
                     "none" if truth.optimum is None else f"{truth.optimum:.4g}",
                     "-" if best is None else ", ".join(f"{k}={v}" for k, v in best.items()),
                     f"{len(near)} configs, median CV {statistics.median(near):.3f}" if near else "no repeated config near the cap"])
    print()
    print(tabulate(rows, headers=["scenario", "feasible share", "optimum", "best configuration", f"p95/p99 noise within ±{int(NEAR * 100)} % of the cap"]))
    return 0
