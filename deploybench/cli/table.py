"""``deploybench table info|pack``: inspect recorded deployment tables, and pack recorded chunks into
one replayable table (a complete grid, gzip'd) such as the shipped ``cpu`` table."""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from tabulate import tabulate

from ..plugins import UsageError
from ..tables import Table, TableError, ground_truth, load_table, pack_tables, resolve_table, write_table

NEAR = 0.3


def _csv(kind: type = str):
    def parse(text: str) -> list:
        return [kind(x.strip()) for x in text.split(",") if x.strip()]

    return parse


def add_parser(sub: Any, pm: Any) -> None:
    p = sub.add_parser("table", help="inspect recorded deployment tables, pack recorded chunks into one table")
    tsub = p.add_subparsers(dest="table_command", metavar="SUBCOMMAND")
    info = tsub.add_parser("info", help="coverage, crashes, feasibility and optimum per scenario, noise near caps")
    info.add_argument("table", help="a shipped table name (cpu, h100) or a path")
    pack = tsub.add_parser("pack", help="merge recorded tables into one complete grid (what replay needs)",
                           description="Merge recorded chunks (same device) into one table. The grid is every "
                                       "measured value of each parameter, narrowed by the filters; unless --partial, "
                                       "values are dropped greedily until every configuration is measured.")
    pack.add_argument("sources", nargs="+", help="recorded tables (paths or shipped names)")
    pack.add_argument("--out", required=True, help="packed table (.jsonl.gz to compress)")
    pack.add_argument("--name", default=None, help="table name (default: the output file name)")
    for flag, kind in (("models", str), ("backends", str), ("precisions", str), ("batch-sizes", int), ("threads", int)):
        pack.add_argument(f"--{flag}", type=_csv(kind), default=None, help=f"keep only these {flag.replace('-', ' ')}")
    pack.add_argument("--partial", action="store_true", help="keep an incomplete grid (not replayable; for inspection)")
    pack.add_argument("--note", default=None, help="a note stored in the provenance")
    pack.add_argument("--prefer-load-below", type=float, default=None, metavar="L",
                      help="per configuration, keep only repeats recorded at a 1-minute load average <= L when "
                           "it has any (replaces measurements taken while other jobs ran)")
    p.set_defaults(handler=run)


def run(args: Any, pm: Any) -> int:
    command = getattr(args, "table_command", None)
    if command == "info":
        return _info(args)
    if command == "pack":
        return _pack(args)
    raise UsageError("deploybench table: choose a subcommand: info, pack")


def _load(name: str) -> Table:
    try:
        return load_table(resolve_table(name))
    except TableError as exc:
        raise UsageError(str(exc)) from exc


def _pack(args: Any) -> int:
    tables = [_load(s) for s in args.sources]
    keep = {"model": args.models, "backend": args.backends, "precision": args.precisions,
            "batch_size": args.batch_sizes, "threads": args.threads}
    name = args.name or Path(args.out).name.split(".")[0]
    try:
        result = pack_tables(tables, name=name, keep=keep, complete=not args.partial, note=args.note,
                             prefer_load_below=args.prefer_load_below)
    except TableError as exc:
        raise UsageError(str(exc)) from exc
    write_table(args.out, result.header, result.records)
    space = result.space
    size = sum(1 for _ in space.grid())
    print(f"packed {len(result.records)} measurements of {size} configurations into {args.out} "
          f"(space {result.header['space_signature']})")
    for param in space:
        values = param.choices if hasattr(param, "choices") else getattr(param, "values", None) \
            or list(range(param.low, param.high + 1))
        print(f"  {param.name}: {', '.join(map(str, values))}")
    if result.filtered_out:
        print(f"left out by the filters (and loaded repeats superseded by quiet ones): {result.filtered_out} measurements")
    for p, v, n in result.dropped:
        print(f"dropped {p}={v} to complete the grid ({n} measurements of it left out)")
    if result.missing:
        print(f"incomplete: {len(result.missing)} configurations unmeasured (replay refuses this table)")
    return 0


def _noise_near_cap(table: Table, scenario: Any) -> list[float]:
    """Coefficient of variation of the scenario's latency metric over the repeats of each configuration
    whose median lies within ±30 % of the cap (only configurations with at least two ok repeats)."""
    out = []
    for key in table.grid_keys():
        reps = table.measurements.get(key) or []
        vals = [(m.get("metrics") or {}).get(scenario.latency_metric) for m in reps if m["status"] == "ok"]
        vals = [v for v in vals if v is not None]
        if len(vals) >= 2 and abs(statistics.median(vals) - scenario.latency_cap_ms) <= NEAR * scenario.latency_cap_ms:
            out.append(statistics.pstdev(vals) / statistics.mean(vals))
    return out


def _time_limits(table: Table) -> str:
    """The per-measurement time limits, with how many measurements had each (chunks may differ)."""
    counts: Counter = Counter()
    for key in table.grid_keys():
        for extra in table.extras.get(key) or []:
            counts[extra.get("time_limit_s", table.provenance.get("time_limit_s"))] += 1
    if len(counts) <= 1:
        return f"{table.provenance.get('time_limit_s')} s"
    return ", ".join(f"{limit:g} s ({n} measurements)" if limit is not None else f"unknown ({n})"
                     for limit, n in sorted(counts.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)))


def _info(args: Any) -> int:
    from ..tasks.deployment import scenarios

    table = _load(args.table)
    covered, grid = table.coverage()
    grid_keys = [k for k in table.grid_keys() if table.measurements.get(k)]
    n = sum(len(table.measurements[k]) for k in grid_keys)
    if n == 0:
        print(table.describe())
        print(f"grid: 0/{grid} configurations measured")
        return 0
    p = table.provenance
    print(table.describe())
    print(f"provenance: {p.get('device_name')} ({p.get('device')}), {p.get('cpu')}, {p.get('cpu_count')} cores, "
          f"python {p.get('python')}, " + ", ".join(f"{k} {v}" for k, v in (p.get("versions") or {}).items()))
    print(f"recording: time limit {_time_limits(table)} per measurement, repeats: {p.get('repeats_policy')}, "
          f"threads recorded {p.get('threads_recorded')}, accuracy: {p.get('accuracy')}")
    if p.get("note"):
        print(f"note: {p['note']}")
    for src in p.get("sources") or []:
        print(f"source: {src.get('name')} ({src.get('file')}), {src.get('measurements')} measurements, "
              f"recorded {src.get('date')}")
    print(f"grid: {covered}/{grid} configurations measured ({100 * covered / max(grid, 1):.0f} %), {n} measurements, "
          f"space {table.header.get('space_signature')}" + ("" if covered == grid else " -- incomplete: replay "
                                                             "needs a complete grid (deploybench table pack)"))
    for prob in table.problems:
        print(f"note: {prob}")
    if table.off_grid():
        print(f"note: {table.off_grid()} measurements of configurations outside the grid are ignored")
    statuses: Counter = Counter()
    kinds: Counter = Counter()
    costs, per_config, loads = [], [], []
    for key in grid_keys:
        reps = table.measurements[key]
        per_config.append(sum(float(m.get("cost_s") or 0.0) for m in reps))
        for m, extra in zip(reps, table.extras.get(key) or [{}] * len(reps)):
            statuses[m["status"]] += 1
            costs.append(float(m.get("cost_s") or 0.0))
            if m.get("error"):
                kinds[m["error"].get("kind", "?")] += 1
            if extra.get("load_avg_1m") is not None:
                loads.append(float(extra["load_avg_1m"]))
    print()
    print(tabulate([[s, c, f"{100 * c / n:.1f} %"] for s, c in statuses.most_common()],
                   headers=["status", "measurements", "share"]))
    if kinds:
        print()
        rows = [[k + (" (machine, not configuration)" if k == "environment" else ""), c, f"{100 * c / n:.1f} %"]
                for k, c in kinds.most_common()]
        print(tabulate(rows, headers=["crash/timeout kind", "count", "share"]))
    repeats = Counter(len(table.measurements[k]) for k in grid_keys)
    print(f"\nrepeats per configuration: " + ", ".join(f"{k}x {v}" for k, v in sorted(repeats.items())))
    print(f"evaluation cost: {sum(costs):.0f} s in all ({sum(costs) / 3600:.2f} h); per measurement median "
          f"{statistics.median(costs):.1f} s, max {max(costs):.1f} s; per configuration mean "
          f"{statistics.mean(per_config):.1f} s")
    if loads:
        print(f"1-minute load average while recording: median {statistics.median(loads):.2f}, max {max(loads):.2f} "
              f"on {p.get('cpu_count')} cores")
    rows = []
    for s in scenarios().values():
        truth = ground_truth(table, s)
        near = _noise_near_cap(table, s)
        best = truth.best_config
        stochastic = sum(1 for t in truth.configs.values() if 0.0 < t.p_feasible < 1.0)
        rows.append([s.name, f"{s.latency_metric.replace('latency_', '').replace('_ms', '')} <= {s.latency_cap_ms:g} ms, "
                     f"mem <= {s.memory_cap_mb:g} MB", f"{100 * truth.feasible_share:.1f} %", stochastic,
                     "none" if truth.optimum is None else f"{truth.optimum:.4g}",
                     "-" if best is None else ", ".join(f"{k}={v}" for k, v in best.items()),
                     f"{len(near)} configs, median CV {statistics.median(near):.3f}" if near else "-"])
    print()
    print(tabulate(rows, headers=["scenario", "caps", "feasible share", "0<P(feasible)<1", "optimum",
                                  "best configuration (P(feasible) >= 0.5)",
                                  f"latency CV within ±{int(NEAR * 100)} % of the cap"]))
    return 0
