"""``deploybench table info|pack``: inspect recorded deployment tables, and pack recorded chunks into
one replayable table (a complete grid, gzip'd) such as the shipped ``cpu`` table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tabulate import tabulate

from ..errors import UsageError, unknown_name_message
from ..device_tables.recording import NEAR_CAP
from ..device_tables.table import Table, TableError, load_table, pack_tables, resolve_table, write_table
from .arguments import csv_list





def add_parser(sub: Any, pm: Any) -> None:
    p = sub.add_parser("table", help="inspect recorded deployment tables, pack recorded chunks into one table")
    tsub = p.add_subparsers(dest="table_command", metavar="SUBCOMMAND")
    info = tsub.add_parser("info", help="coverage, crashes, feasibility and optimum per scenario, noise near caps")
    info.add_argument("table", help="a shipped table name (cpu, edge, h100) or a path")
    info.add_argument("--json", action="store_true", help="print the same information as JSON")
    pack = tsub.add_parser("pack", help="merge recorded tables into one complete grid (what replay needs)",
                           description="Merge recorded chunks (same device) into one table. The grid is every "
                                       "measured value of each parameter, narrowed by the filters; unless --partial, "
                                       "values are dropped greedily until every configuration is measured.")
    pack.add_argument("sources", nargs="+", help="recorded tables (paths or shipped names)")
    pack.add_argument("--out", required=True, help="packed table (.jsonl.gz to compress)")
    pack.add_argument("--name", default=None, help="table name (default: the output file name)")
    for flag, kind in (("models", str), ("backends", str), ("precisions", str), ("batch-sizes", int), ("threads", int)):
        pack.add_argument(f"--{flag}", type=csv_list(kind), default=None, help=f"keep only these {flag.replace('-', ' ')}")
    pack.add_argument("--partial", action="store_true", help="keep an incomplete grid (not replayable; for inspection)")
    pack.add_argument("--require-complete", action="store_true",
                      help="refuse to pack (exit 2) unless every configuration of the recorded grid is measured, "
                           "instead of dropping values to complete it")
    pack.add_argument("--require-repeats", type=int, default=None, metavar="N",
                      help="refuse to pack (exit 2) unless every configuration whose latency lies within ±30 %% of "
                           "a scenario cap has N clean repeats (the recorder's passes near the caps are done)")
    pack.add_argument("--note", default=None, help="a note stored in the provenance")
    pack.add_argument("--prefer-load-below", type=float, default=None, metavar="L",
                      help="per configuration, keep only repeats recorded at a 1-minute load average <= L when "
                           "it has any (replaces measurements taken while other jobs ran)")
    pack.add_argument("--supersede", action="append", default=[], metavar="CHUNK",
                      help="a re-measurement (repeatable): every configuration it measured keeps only its "
                           "measurements, replacing those in the sources (e.g. after the memory accounting changed)")
    pack.add_argument("--node", default=None, metavar="LABEL",
                      help="of a fleet recording, keep only this node's measurements (one machine's view; the "
                           "default pools every node's repeats)")
    het = tsub.add_parser("heterogeneity", help="how the nodes of a fleet recording differ near the caps",
                          description="Per node: measurements and speed level. Per scenario, over configurations "
                                      "near its latency cap measured on two or more nodes: the spread of the nodes' "
                                      "medians and the flip rate between nodes (two nodes disagree on feasibility) "
                                      "beside the flip rate within a node.")
    het.add_argument("table", help="a shipped table name or a path")
    het.add_argument("--json", action="store_true", help="print the report as JSON")
    drift = tsub.add_parser("drift", help="re-measure a few configurations near the caps live: how far is this "
                                          "machine from the table?",
                            description="Measure the speed reference workload and re-measure the configurations "
                                        "nearest a scenario's latency cap on this machine (the table's device "
                                        "profile), then print the ratio of today's latency to the recorded median, "
                                        "raw and corrected by the speed levels (tables that store references).")
    drift.add_argument("table", help="a shipped table name or a path")
    drift.add_argument("--configs", type=int, default=5, help="how many configurations to re-measure (5)")
    drift.add_argument("--artefact-cache", default=None, metavar="DIR",
                       help="keep prepared artefacts here (default: <cache>/artefacts)")
    drift.add_argument("--json", action="store_true", help="print the result as JSON")
    export = tsub.add_parser("export", help="a recorded table as Parquet or CSV, one row per measurement",
                             description="One row per measurement (config.* and metric.* columns, repeat, status, "
                                         "error kind, cost) of a recorded table. Parquet needs pyarrow "
                                         '(pip install ".[export]" in the checkout). Columns: docs/export.md.')
    export.add_argument("table", help="a shipped table name (cpu, edge, ...) or a path")
    export.add_argument("--out", required=True, metavar="PATH", help="the file to write (.parquet or .csv)")
    export.add_argument("--format", choices=("parquet", "csv"), default=None,
                        help="parquet or csv (default: from the --out suffix, else parquet)")
    p.set_defaults(handler=run)


def run(args: Any, pm: Any) -> int:
    command = getattr(args, "table_command", None)
    if command == "info":
        return _info(args)
    if command == "pack":
        return _pack(args)
    if command == "drift":
        return _drift(args)
    if command == "export":
        return _export(args)
    if command == "heterogeneity":
        return _heterogeneity(args)
    raise UsageError("deploybench table: choose a subcommand: info, pack, heterogeneity, drift, export")


def _heterogeneity(args: Any) -> int:
    import json

    from ..device_tables.heterogeneity import heterogeneity
    from ..tasks.deployment import scenarios

    report = heterogeneity(_load(args.table), list(scenarios().values()))
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print("\n".join(report.lines()))
    return 0


def _export(args: Any) -> int:
    from ..export import EXPORT_SCHEMA, TABLE_COLUMNS, ExportError, table_rows, write_rows

    table = _load(args.table)
    suffix = Path(args.out).suffix.lower().lstrip(".")
    fmt = args.format or (suffix if suffix in ("parquet", "csv") else "parquet")
    try:
        n_rows, n_cols = write_rows(table_rows(table), args.out, fmt, TABLE_COLUMNS,
                                    metadata={"level": "table", "table": table.name,
                                              "space_signature": str(table.header.get("space_signature", ""))})
    except ExportError as exc:
        raise UsageError(f"table export: {exc}") from None
    print(f"wrote {args.out}: {n_rows} measurement rows x {n_cols} columns of table {table.name}, {fmt}, "
          f"schema {EXPORT_SCHEMA}")
    return 0


def _drift(args: Any) -> int:
    import json
    import os

    from ..live.accuracy import default_cache_dir
    from ..live.drift import drift_check

    if args.configs < 1:
        raise UsageError(f"--configs must be at least 1, got {args.configs}")
    table = _load(args.table)
    cache = args.artefact_cache or os.path.join(default_cache_dir(), "artefacts")
    result = drift_check(table, args.configs, artefact_cache=cache)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    ref, base = result["reference_today"], result["table_reference"]
    if ref.get("error"):
        print(f"speed reference today: failed ({ref['error']})")
    else:
        print(f"speed reference today: gemm {ref['gemm_ms']} ms, python {ref['python_ms']} ms"
              + (f"; the table's: gemm {base['gemm_ms']:.4g} ms, python {base['python_ms']:.4g} ms; level today "
                 f"{result['level_today']}" if base else "; the table stores no speed references (recorded before "
                                                        "v3): only raw ratios"))
    rows = [[_fmt_config(r["config"]), r["metric"], r["cap"], round(r["recorded_median"], 2), r["repeats"],
             "-" if r["live"] is None else round(r["live"], 2) if not r["live_contaminated"] else f"{r['live']:.2f} (contaminated)",
             r["ratio"] if r["ratio"] is not None else r["live_status"], r["ratio_corrected"] or "-",
             r.get("ratio_corrected_gemm") or "-"]
            for r in result["configurations"]]
    print(tabulate(rows, headers=["configuration", "metric", "cap", "recorded median", "repeats", "live",
                                  "live / recorded", "corrected by levels", "by the GEMM level alone"]))
    return 0


def _load(name: str) -> Table:
    try:
        return load_table(resolve_table(name))
    except TableError as exc:
        raise UsageError(str(exc)) from exc


def _pack(args: Any) -> int:
    tables = [_load(s) for s in args.sources]
    renewals = [_load(s) for s in args.supersede]
    if args.node is not None:
        from ..device_tables.table import node_name

        nodes = sorted({node_name(e) for t in tables for extras in t.extras.values() for e in extras})
        if args.node not in nodes:
            raise UsageError(unknown_name_message("node", args.node, nodes))
    keep = {"model": args.models, "backend": args.backends, "precision": args.precisions,
            "batch_size": args.batch_sizes, "threads": args.threads}
    name = args.name or Path(args.out).name.split(".")[0]
    try:
        result = pack_tables(tables, name=name, keep=keep, complete=not args.partial, note=args.note,
                             prefer_load_below=args.prefer_load_below, node=args.node, supersede=renewals)
    except TableError as exc:
        raise UsageError(str(exc)) from exc
    if getattr(args, "require_complete", False) and result.dropped:
        p, v, _ = result.dropped[0]
        raise UsageError(f"the recorded grid is not complete yet (packing would drop {p}={v} and "
                         f"{len(result.dropped) - 1} more values); record the rest first, or pack without "
                         "--require-complete to ship the complete part")
    if args.require_repeats is not None:
        from ..device_tables.recording import missing_repeats

        renewed = [r.configs[k] for r in renewals for k in r.measurements]
        short = (sum(missing_repeats(t, args.require_repeats, skip=renewed) for t in tables)
                 + sum(missing_repeats(r, args.require_repeats) for r in renewals))
        if short:
            raise UsageError(f"{short} configurations near a scenario cap have fewer than {args.require_repeats} clean "
                             "repeats; resume the recording (its later passes add them) before packing")
    write_table(args.out, result.header, result.records)
    space = result.space
    size = sum(1 for _ in space.grid())
    print(f"packed {len(result.records)} measurements of {size} configurations into {args.out} "
          f"(space {result.header['space_signature']})")
    for param in space:
        values = param.choices if hasattr(param, "choices") else getattr(param, "values", None) \
            or list(range(param.low, param.high + 1))
        print(f"  {param.name}: {', '.join(map(str, values))}")
    superseded = result.header["provenance"].get("superseded")
    if superseded:
        print(f"  {len(superseded['configurations'])} configurations re-measured in "
              f"{', '.join(superseded['by'])}: their {superseded['measurements_replaced']} earlier measurements "
              "are replaced")
    if result.filtered_out:
        print(f"left out by the filters (and loaded repeats superseded by quiet ones): {result.filtered_out} measurements")
    for p, v, n in result.dropped:
        print(f"dropped {p}={v} to complete the grid ({n} measurements of it left out)")
    if result.missing:
        print(f"incomplete: {len(result.missing)} configurations unmeasured (replay refuses this table)")
    return 0


def _fmt_config(config: dict | None) -> str:
    return "-" if not config else ", ".join(f"{k}={v}" for k, v in config.items())


def _info(args: Any) -> int:
    import json

    from ..device_tables.report import table_summary

    table = _load(args.table)
    summary = table_summary(table)
    if getattr(args, "json", False):
        print(json.dumps(summary, indent=2, sort_keys=False, default=str))
        return 0
    p = summary["provenance"]
    print(table.describe())
    print(f"provenance: {p.get('device_name')} ({p.get('device')}), {p.get('cpu')}, {p.get('cpu_count')} cores, "
          f"python {p.get('python')}, " + ", ".join(f"{k} {v}" for k, v in (p.get("versions") or {}).items()))
    limits = ", ".join(f"{k} s ({v} measurements)" for k, v in summary["time_limits_s"].items())
    print(f"recording: time limit {limits or p.get('time_limit_s')}; repeats: {p.get('repeats_policy')}; "
          f"threads recorded {p.get('threads_recorded')}; accuracy: {p.get('accuracy')}")
    if summary["memory_limit_mechanisms"]:
        print("device memory limit enforced by: " + ", ".join(f"{k} ({v} measurements)"
                                                              for k, v in summary["memory_limit_mechanisms"].items()))
        print("memory accounting: " + ", ".join(f"{k} ({v} measurements)"
                                                for k, v in summary["memory_accountings"].items())
              + (f"; per-trial limit {p['trial_time_limit_s']:g} s" if p.get("trial_time_limit_s") else ""))
    elif summary["format_version"] and summary["format_version"] < 2:
        print("format 1 table: memory is the worker's preparation peak and every precision carries the fp32 "
              "accuracy; no device memory limit, no contention guard (superseded by format 2 recordings)")
    if p.get("note"):
        print(f"note: {p['note']}")
    if len(summary["nodes"]) > 1:
        print(f"measured on {len(summary['nodes'])} nodes: " + ", ".join(f"{k} ({v})" for k, v in summary["nodes"].items())
              + "; replay pools them (`deploybench table heterogeneity` compares them, `table pack --node` keeps one)")
    g = summary["grid"]
    print(f"grid: {g['measured']}/{g['configurations']} configurations measured "
          f"({100 * g['measured'] / max(g['configurations'], 1):.0f} %), {summary['measurements']} measurements, "
          f"space {g['space_signature']}" + ("" if g["complete"] else " -- incomplete: replay needs a complete grid "
                                                                     "(deploybench table pack)"))
    why = ", ".join(f"{k} {v}" for k, v in summary["redone_for"].items())
    print(f"contention guard: {summary['redone_by_contention_guard']} measurements redone"
          + (f" (for: {why})" if why else "") + "; "
          f"{summary['contaminated_not_served']} contaminated measurements kept in the file but never served")
    for prob in summary["problems"]:
        print(f"note: {prob}")
    if summary["off_grid_measurements"]:
        print(f"note: {summary['off_grid_measurements']} measurements of configurations outside the grid are ignored")
    n = summary["measurements"]
    if not n:
        return 0
    print()
    print(tabulate([[s, c, f"{100 * c / n:.1f} %"] for s, c in summary["statuses"].items()],
                   headers=["status", "measurements", "share"]))
    cs = summary["crash_structure"]
    print(f"\ncrash structure: {cs['configurations_crashed_or_timed_out']} configurations crashed or timed out "
          f"({100 * cs['share_of_grid']:.1f} % of the grid)")
    if cs["per_kind"]:
        rows = [[k + (" (machine, not configuration)" if k == "environment" else ""), v["configurations"],
                 f"{100 * v['share_of_grid']:.1f} %"] for k, v in cs["per_kind"].items()]
        print(tabulate(rows, headers=["kind", "configurations", "share of grid"]))
    dep = summary["crash_dependence"]
    if dep["crashed_configurations"] or dep["crashed_in_incomplete_triples"]:
        share = dep["decided_by_triple_share"]
        print(f"decided by (model, backend, precision) alone: {dep['decided_by_triple']} of "
              f"{dep['crashed_configurations']} crashed configurations of fully measured triples"
              + ("" if share is None else f" ({100 * share:.0f} %)")
              + (f" ({dep['crashed_in_incomplete_triples']} more in triples not fully measured yet)"
                 if dep["crashed_in_incomplete_triples"] else "")
              + f"; triples that run at one batch size and are oom at a larger one: "
              f"{len(dep['batch_dependent_oom_triples'])}")
    mb = summary["memory_boundary"]
    if mb["device_mb"]:
        print(f"memory boundary ({mb['device_mb']:g} MB device): {mb['configs_near_boundary']} configurations near it, "
              f"{mb['configs_flipping']} with both oom and running repeats")
        if mb["flipping"]:
            print(tabulate([[_fmt_config(f["config"]), f"{f['oom']}/{f['repeats']}", f["ci95"]] for f in mb["flipping"][:15]],
                           headers=["configuration", "oom", "P(oom) 95 % CI"]))
    if summary["speed_levels"]:
        print("speed level per recording pass (reference workload; 1.0 = the table's median, 1.2 = 20 % slower): "
              + ", ".join(f"pass {g['pass']} {g['date']}: {g['level']} ({g['measurements']})"
                          for g in summary["speed_levels"]))
    print("\nrepeats per configuration: " + ", ".join(f"{k}x {v}" for k, v in summary["repeats_per_configuration"].items()))
    todo = summary["still_to_record"]
    if todo and (todo["unmeasured_configurations"] or todo["repeats"]):
        print(f"still to record: {todo['unmeasured_configurations']} configurations never measured, "
              f"{todo['repeats']} clean repeats for {todo['configurations_needing_repeats']} configurations near a cap "
              f"(about {todo['estimated_s'] / 3600:.1f} h at the median cost per measurement; rerunning "
              "`deploybench record` with the same arguments resumes)")
    c = summary["cost"]
    print(f"evaluation cost: {c['total_s']:.0f} s in all ({c['total_s'] / 3600:.2f} h); per measurement median "
          f"{c['per_measurement_median_s']} s, max {c['per_measurement_max_s']} s; per configuration median "
          f"{c['per_configuration_median_s']} s")
    if summary["load_avg_1m"]:
        print(f"1-minute load average while recording: median {summary['load_avg_1m']['median']}, "
              f"max {summary['load_avg_1m']['max']} on {p.get('cpu_count')} cores")
    rows = []
    for sc in summary["scenarios"]:
        cv = sc["latency_cv_near_cap"]
        rows.append([sc["scenario"], ", ".join(f"{k} <= {v:g}" for k, v in sc["caps"].items()),
                     f"{100 * sc['feasible_share']:.1f} %", sc["configs_uncertain"],
                     "none" if sc["optimum"] is None else f"{sc['optimum']:.4g}", sc["optimum_ties"],
                     _fmt_config(sc["best_config"]), sc["best_p_feasible_ci95"] or "-",
                     f"{cv['configs']} configs, median CV {cv['median']}" if cv["configs"] else "-"])
    print()
    print(tabulate(rows, headers=["scenario", "caps", "feasible share", "0<P(feasible)<1", "optimum", "ties",
                                  "best configuration (P(feasible) >= 0.5)", "P(feasible) 95 % CI",
                                  f"latency CV within ±{int(NEAR_CAP * 100)} % of the cap"]))
    for sc in summary["scenarios"]:
        if sc["uncertain"]:
            print(f"\n{sc['scenario']}: configurations with 0 < P(feasible) < 1 (Clopper-Pearson 95 %)")
            print(tabulate([[_fmt_config(u["config"]), f"{u['feasible']}/{u['repeats']}", u["ci95"], u["objective"]]
                            for u in sc["uncertain"][:15]], headers=["configuration", "feasible", "95 % CI", "objective"]))
    if summary["memory"]:
        print("\ndeployment footprint (artefact loaded alone) against parameter bytes, MB")
        print(tabulate([[r["model"], r["backend"], r["precision"], r["deploy_mb_median"], r["param_mb"],
                         r["artefact_mb"], r["prepare_peak_mb"]] for r in summary["memory"]],
                       headers=["model", "backend", "precision", "footprint (median)", "parameters", "artefact",
                                "preparation peak"]))
    return 0
