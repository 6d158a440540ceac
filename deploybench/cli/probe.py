"""``deploybench probe``: repeat configurations in fresh processes; flip rates near the caps.

The command parses and prints; :func:`deploybench.tuning.probe.probe` does the work.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..exit_codes import ExitCode
from ..reporting import short_config
from .arguments import add_device_options

__all__ = ["add_parser", "run"]


def add_parser(sub: Any, pm: Any) -> None:
    p = sub.add_parser(
        "probe", help="repeat configurations in fresh processes: feasibility flip rates near the caps",
        description="Measure each configuration R times in fresh processes and report its feasibility rate phi, "
                    "flip rate min(phi, 1 - phi) with Clopper-Pearson intervals, the latency spread across repeats "
                    "and the device each repeat executed on. Configurations come from --config, or are selected "
                    "nearest the caps from a recorded table (--table) or a tune run (--from-tune).",
        epilog="The repeats are written as a table chunk (OUT/probe.jsonl); a probe of a table's configurations is "
               "extra repeats for it: deploybench table pack CHUNK OUT/probe.jsonl --out TABLE.")
    what = p.add_argument_group("what to probe (one of)")
    what.add_argument("--config", action="append", default=[], metavar="JSON",
                      help='a configuration, e.g. \'{"model": "resnet18", "backend": "onnxruntime", "precision": '
                           '"fp32", "batch_size": 4, "threads": 2}\' (repeatable)')
    what.add_argument("--table", default=None, help="a recorded table (shipped name or path): probe its configurations "
                                                    "nearest the caps")
    what.add_argument("--from-tune", default=None, metavar="DIR", help="a tune run's folder: probe its trials nearest "
                                                                        "its latency cap (and use its caps)")
    p.add_argument("--nearest", type=int, default=4, help="how many configurations to select near the caps (4)")
    p.add_argument("--models", default=None, help="with --table: select among these models only (comma list)")
    p.add_argument("--backends", default=None, help="with --table: select among these backends only (comma list)")
    p.add_argument("--precisions", default=None, help="with --table: select among these precisions only (comma list)")
    p.add_argument("--model", action="append", default=[], metavar="MODEL",
                   help="a custom model named in --config (package.module:function or a .onnx file)")
    p.add_argument("--input-shape", default=None, metavar="C,H,W", help="one sample's shape of a one-input float model")
    p.add_argument("--input", action="append", default=None, dest="inputs", metavar="NAME:SHAPE[:DTYPE[:LOW..HIGH]]",
                   help="one named input of a custom model, repeated for several (as in tune)")
    caps = p.add_argument_group("caps (or --scenario)")
    caps.add_argument("--scenario", default=None, help="take the caps of a deployment scenario (edge_tight, ...)")
    caps.add_argument("--p95-ms", type=float, default=None)
    caps.add_argument("--p99-ms", type=float, default=None)
    caps.add_argument("--memory-mb", type=float, default=None)
    p.add_argument("--repeats", type=int, default=20, help="clean repeats per configuration (20)")
    add_device_options(p)
    p.add_argument("--time-limit", type=float, default=120.0, help="hard limit per worker, seconds (120)")
    p.add_argument("--out", default="probe-results", help="output folder; a rerun continues it (default probe-results)")
    p.set_defaults(handler=run, device_profile=None)


def _caps(args: argparse.Namespace, tune_spec: dict | None) -> Any:
    from ..errors import UsageError
    from ..tuning.probe import ProbeCaps

    if args.scenario:
        from ..tasks.deployment import scenarios

        known = scenarios()
        if args.scenario not in known:
            from ..errors import did_you_mean

            raise UsageError(f"probe: unknown scenario {args.scenario!r}; known: {', '.join(known)}"
                             + did_you_mean(args.scenario, list(known)))
        s = known[args.scenario]
        return ProbeCaps(s.latency_metric, s.latency_cap_ms, s.memory_cap_mb)
    p95, p99, mem = args.p95_ms, args.p99_ms, args.memory_mb
    if tune_spec and p95 is None and p99 is None:
        p95, p99, mem = tune_spec.get("p95_ms"), tune_spec.get("p99_ms"), mem or tune_spec.get("memory_mb")
    if p95 is None and p99 is None:
        raise UsageError("probe: give a latency cap (--p95-ms or --p99-ms) or --scenario")
    for flag, value in (("--p95-ms", p95), ("--p99-ms", p99), ("--memory-mb", mem)):
        if value is not None and not value > 0:
            raise UsageError(f"probe: {flag} must be positive, got {value}")
    return ProbeCaps("latency_p95_ms" if p95 is not None else "latency_p99_ms", float(p95 if p95 is not None else p99),
                     None if mem is None else float(mem))


def _device(args: argparse.Namespace, default: str) -> Any:
    from ..errors import UsageError
    from ..tuning import TuneInputError, TuneSpec
    from ..tuning.tune_task import resolve_device

    spec = TuneSpec(models=("x",), device_profile=args.device_profile or default,
                    device_memory_mb=args.device_memory_mb, device_threads=args.device_threads)
    try:
        return resolve_device(spec)
    except TuneInputError as exc:
        raise UsageError(f"probe: {exc}") from None


def run(args: argparse.Namespace, pm: Any) -> int:
    from ..live.sources import SourceError, parse_model_source
    from ..errors import UsageError
    from ..tuning.probe import configs_from_tune, probe, select_near_caps
    from ..device_tables.table import TableError, load_table, resolve_table

    from .doctor import require_live_dependencies

    require_live_dependencies("deploybench probe")
    chosen = [bool(args.config), bool(args.table), bool(args.from_tune)]
    if sum(chosen) != 1:
        raise UsageError("probe: give exactly one of --config, --table or --from-tune")
    if args.repeats < 1 or args.nearest < 1:
        raise UsageError("probe: --repeats and --nearest must be at least 1")
    sources: dict[str, Any] = {}
    for text in args.model:
        try:
            s = parse_model_source(text, args.input_shape, inputs=args.inputs)
        except SourceError as exc:
            raise UsageError(f"probe: {exc}") from None
        sources[s.label] = s
    tune_spec, header, default_profile = None, None, "host"
    if args.from_tune:
        try:
            configs, saved = configs_from_tune(args.from_tune, args.nearest)
        except ValueError as exc:
            raise UsageError(f"probe: {exc}") from None
        tune_spec = saved["spec"]
        default_profile = tune_spec.get("device_profile") or "host"
        for data in saved.get("sources", []):
            from ..live.sources import ModelSource

            s = ModelSource.from_json(data)
            sources.setdefault(s.label, s)
        caps = _caps(args, tune_spec)
    elif args.table:
        caps = _caps(args, None)
        try:
            table = load_table(resolve_table(args.table))
        except (TableError, OSError, ValueError) as exc:
            raise UsageError(f"probe: {exc}") from None
        def listed(text: str | None) -> list[str] | None:
            return [v.strip() for v in text.split(",") if v.strip()] if text else None

        configs = select_near_caps(table, caps, args.nearest, listed(args.models), listed(args.backends),
                                   listed(args.precisions))
        if not configs:
            raise UsageError(f"probe: table {table.name} has no measured configuration with {caps.latency_metric}")
        header = table.header
        default_profile = ((table.provenance.get("device_profile") or {}).get("name")) or "host"
        if args.device_profile and args.device_profile != default_profile:
            print(f"note: the table was recorded on profile {default_profile}; probing on {args.device_profile}, "
                  "so the repeats are not extra repeats for that table")
            header = None
    else:
        caps = _caps(args, None)
        configs = []
        for text in args.config:
            try:
                config = json.loads(text)
            except ValueError as exc:
                raise UsageError(f"probe: --config {text!r} is not JSON: {exc}") from None
            if not isinstance(config, dict) or not {"model", "backend", "precision", "batch_size"} <= set(config):
                raise UsageError(f"probe: --config needs model, backend, precision and batch_size, got {text!r}")
            model = str(config["model"])
            if model not in sources:
                try:
                    s = parse_model_source(model, args.input_shape, inputs=args.inputs)
                except SourceError as exc:
                    raise UsageError(f"probe: {exc}") from None
                sources[s.label] = s
            configs.append(config)
    device = _device(args, default_profile)
    print(f"probe: {len(configs)} configuration(s) x {args.repeats} repeats on {device.name}, caps {caps.describe()}")
    try:
        result = probe(configs, caps, args.out, repeats=args.repeats, device_profile=device, sources=sources,
                       table_header=header, time_limit_s=args.time_limit, lock=args.lock)
    except (TableError, ValueError) as exc:
        raise UsageError(f"probe: {exc}") from None
    print()
    for s in result.summaries:
        lat = s.latency
        flip = "-" if s.flip_rate is None else f"{s.flip_rate:.0%} [{s.flip_interval[0]:.0%}, {s.flip_interval[1]:.0%}]"
        spread = f"{lat['median']:.2f} ± {lat['sd']:.2f} ms" if lat.get("n") else "no latency"
        print(f"{short_config(s.config)}\n  feasible {s.feasible}/{s.n}, flip rate {flip}, {caps.latency_metric} {spread}, "
              f"devices {s.devices}" + (f", {s.redone} measurement(s) redone by the contention guard" if s.redone else ""))
    print(f"report: {result.paths.get('markdown')}  chunk: {result.paths.get('chunk')}")
    return ExitCode.OK
