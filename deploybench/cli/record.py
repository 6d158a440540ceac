"""``deploybench record``: measure a deployment grid with the live profiler into a replayable table.

The recording itself lives in :mod:`deploybench.device_tables.recording`; this command parses options and prints.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..errors import UsageError, unknown_name_message
from ..device_tables.table import TableError
from .arguments import csv_list

SPACES = ("image_classification",)


def add_parser(sub: Any, pm: Any) -> None:
    from ..device_tables.grid import (BACKENDS, BATCH_SIZES, GRAPH_OPTIMIZATIONS, MEMORY_FORMATS, MODELS, PRECISIONS,
                                   THREADS)
    from ..device_tables.recording import DEFAULT_REPEATS_NEAR_CAP, LIVE_TIME_LIMIT_S

    p = sub.add_parser("record", help="record a deployment table with the live profiler",
                       description="Measure every configuration of a deployment grid on this machine, emulating a "
                                   "device profile (thread budget, memory limit), into a table that replays later. "
                                   "Appends one line per measurement: rerun the same command to resume.")
    p.add_argument("--space", default="image_classification", help="the space to record (image_classification)")
    p.add_argument("--target", default="live", help="where to measure: live (this machine)")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    p.add_argument("--device-profile", default="cpu",
                   help="emulated device: cpu (2 threads, 4 GiB), edge (2 threads, 1 GiB), small (768 MB including the "
                        "runtime, 2 threads, 60 s per trial), host (no limit)")
    p.add_argument("--out", required=True, help="table chunk to create or extend (.jsonl; `table pack` gzips)")
    p.add_argument("--name", default=None, help="table name (default: the file name)")
    p.add_argument("--repeats", type=int, default=DEFAULT_REPEATS_NEAR_CAP,
                   help=f"clean repeats, in separate passes, for configurations near a latency cap "
                        f"(default {DEFAULT_REPEATS_NEAR_CAP})")
    for flag, kind, default in (("models", str, MODELS), ("backends", str, BACKENDS), ("precisions", str, PRECISIONS),
                                ("batch-sizes", int, BATCH_SIZES), ("threads", int, THREADS),
                                ("memory-formats", str, MEMORY_FORMATS),
                                ("graph-optimizations", str, GRAPH_OPTIMIZATIONS)):
        p.add_argument(f"--{flag}", type=csv_list(kind), default=list(default),
                       help=f"the grid's {flag.replace('-', ' ')} (default: {','.join(map(str, default))})")
        p.add_argument(f"--only-{flag}", type=csv_list(kind), default=None,
                       help=f"measure only these {flag.replace('-', ' ')} now (chunking; the grid keeps --{flag})")
    p.add_argument("--only-configs", default=None, metavar="FILE",
                   help="measure only the configurations listed in FILE now, one JSON object per line (re-measuring "
                        "chosen ones, e.g. benchmarks/near_device_memory.py's list; the grid keeps its flags)")
    p.add_argument("--lock", default=None, metavar="FILE",
                   help="hold an exclusive lock (flock) on FILE during each measurement: other jobs on this machine "
                        "that take the same lock (e.g. `flock FILE pytest`) then never run while a measurement does")
    p.add_argument("--artefact-cache", default=None, metavar="DIR",
                   help="keep prepared artefacts here between measurements (default: <cache>/artefacts)")
    p.add_argument("--note", default=None, help="a note stored in the provenance (e.g. why the grid is narrowed)")
    p.add_argument("--time-limit", type=float, default=LIVE_TIME_LIMIT_S,
                   help=f"hard limit per worker, seconds (default {LIVE_TIME_LIMIT_S:g}, the live trials' limit)")
    p.add_argument("--max-new", type=int, default=None, help="stop after this many new measurements")
    p.add_argument("--stop-after", type=float, default=None, metavar="SECONDS",
                   help="start no new measurement after this many seconds of wall time (fits a recording into "
                        "time-limited sessions: rerun the same command to continue)")
    p.add_argument("--max-other-cores", type=float, default=None, metavar="CORES",
                   help="contention guard: redo a measurement during which other work kept more than this many "
                        "cores busy on average (default 0.15)")
    p.add_argument("--weights", default="auto", choices=("auto", "pretrained", "random"))
    p.add_argument("--data", default=None, help="ImageFolder of ImageNet synset folders for measured accuracy")
    p.add_argument("--executor", default="serial", metavar="NAME",
                   help="where the measurements run: serial (this machine, one at a time; the default) or an "
                        "executor plugin that can record on a fleet, e.g. ray (one measurement per node that "
                        "declares the device; see --fleet-device)")
    p.add_argument("--fleet-device", default=None, metavar="LABEL",
                   help="with a fleet executor: measure on the nodes that declare this device (for ray, the custom "
                        "resource device:LABEL; default: the --device-profile name)")
    if pm is not None:  # executor plugins add their options (e.g. --ray-address)
        pm.hook.deploybench_addoption(parser=p, command="record")
    p.set_defaults(handler=run)


def _shown(path: str) -> str:
    """``path`` as printed: under the home folder as ``~/...``, so a recording's committed log names no
    machine's user folder."""
    home = os.path.expanduser("~")
    full = os.path.abspath(path)
    return "~" + full[len(home):] if home not in ("", "/") and (full + os.sep).startswith(home + os.sep) else path


def measurement_pool(args: argparse.Namespace, pm: Any, device: str) -> Any:
    """None for a serial recording on this machine, else the named executor's measurement pool."""
    if args.executor in ("serial", "local"):
        return None
    executors = pm.executors()
    if args.executor not in executors:
        raise UsageError(unknown_name_message("executor", args.executor, executors))
    able = sorted(["serial", *(n for n, e in executors.items() if callable(getattr(e, "measurement_pool", None)))])
    factory = getattr(executors[args.executor], "measurement_pool", None)
    if not callable(factory):
        raise UsageError(f"executor {args.executor!r} runs cases but cannot record (it has no measurement_pool); "
                         f"executors that can record: {', '.join(able)}")
    return factory(device, options=args, lock=args.lock)


def _read_configs(path: str) -> list[dict]:
    """The configurations of ``--only-configs``: one JSON object per line (blank lines skipped)."""
    import json

    try:
        text = open(path, encoding="utf-8").read()
    except OSError as exc:
        raise UsageError(f"--only-configs: cannot read {path}: {exc.strerror or exc}") from exc
    configs = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            config = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"--only-configs {path}, line {n}: not JSON ({exc.msg})") from exc
        if not isinstance(config, dict):
            raise UsageError(f"--only-configs {path}, line {n}: expected a JSON object (one configuration), "
                             f"got {type(config).__name__}")
        configs.append(config)
    if not configs:
        raise UsageError(f"--only-configs {path} lists no configuration")
    return configs


def run(args: argparse.Namespace, pm: Any) -> int:
    from ..device_tables.grid import KNOWN_BACKENDS, GRAPH_OPTIMIZATIONS, MEMORY_FORMATS, MODELS, PRECISIONS, DeploymentGrid
    from ..live.devices import get_device_profile
    from ..device_tables.recording import Recorder

    if args.space not in SPACES:
        raise UsageError(unknown_name_message("space", args.space, SPACES))
    if args.target != "live":
        raise UsageError(f"record measures live: --target must be 'live', got {args.target!r}")
    known = {"models": MODELS, "backends": KNOWN_BACKENDS, "precisions": PRECISIONS, "memory_formats": MEMORY_FORMATS,
             "graph_optimizations": GRAPH_OPTIMIZATIONS}
    for dest, values in known.items():
        for flag in (dest, "only_" + dest):
            for v in getattr(args, flag) or ():
                if v not in values:
                    raise UsageError(unknown_name_message(dest.rstrip("s").replace("_", " "), v, values))
    for flag in ("batch_sizes", "threads"):
        if any(v < 1 for v in getattr(args, flag)):
            raise UsageError(f"--{flag.replace('_', '-')} must be positive integers")
    if args.repeats < 1:
        raise UsageError("--repeats must be at least 1")
    if args.out.endswith(".gz"):
        raise UsageError(f"record into a plain .jsonl chunk (got {args.out}): gzip cannot be appended safely; "
                         "`deploybench table pack CHUNK --out TABLE.jsonl.gz` packs and compresses it afterwards")
    try:
        profile = get_device_profile(args.device_profile)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    threads = [t for t in args.threads if t <= profile.max_threads]
    if len(threads) < len(args.threads):
        print(f"note: device profile {profile.name} has {profile.max_threads} threads; recording threads "
              f"{','.join(map(str, threads))}", flush=True)
    grid = DeploymentGrid(models=tuple(args.models), backends=tuple(args.backends), precisions=tuple(args.precisions),
                          batch_sizes=tuple(args.batch_sizes), threads=tuple(threads),
                          memory_formats=tuple(args.memory_formats), graph_optimizations=tuple(args.graph_optimizations))
    only = {"model": args.only_models, "backend": args.only_backends, "precision": args.only_precisions,
            "batch_size": args.only_batch_sizes, "threads": args.only_threads,
            "memory_format": args.only_memory_formats, "graph_optimization": args.only_graph_optimizations}
    only_configs = _read_configs(args.only_configs) if args.only_configs else None
    cache = args.artefact_cache
    if cache is None:
        from ..live.accuracy import default_cache_dir

        cache = os.path.join(default_cache_dir(), "artefacts")
    pool = measurement_pool(args, pm, args.fleet_device or profile.name)
    try:
        recorder = Recorder(grid, args.out, name=args.name, device_profile=profile.name, device=args.device,
                            repeats_near_cap=args.repeats, time_limit_s=args.time_limit, artefact_cache=cache,
                            only=only, only_configs=only_configs, stop_after_s=args.stop_after,
                            max_new=args.max_new, lock=args.lock, note=args.note, weights=args.weights,
                            data_dir=args.data, max_other_cores=args.max_other_cores, pool=pool)
    except ValueError as exc:
        raise UsageError(f"--only-configs {args.only_configs}: {exc}") from exc
    size = grid.size()
    print(f"recording a grid of {size} configurations on device profile {profile.name} ({profile.description}) "
          f"into {args.out}; up to {args.repeats} clean repeats near a latency cap"
          + (" or the memory boundary" if profile.memory_mb else "")
          + (f"; {profile.trial_time_limit_s:g} s per trial" if profile.trial_time_limit_s else "")
          + f"; limit {args.time_limit:g} s "
          f"per worker; artefacts cached in {_shown(cache)}", flush=True)
    if pool is not None and callable(getattr(pool, "describe", None)):
        print(pool.describe(), flush=True)
    try:
        summary = recorder.run(on_line=lambda line: print(line, flush=True))
    except TableError as exc:
        raise UsageError(str(exc)) from exc
    except KeyboardInterrupt:
        print("interrupted: every finished measurement is saved; rerun the same command to resume", flush=True)
        return 2
    for line in summary.lines():
        print("  " + line, flush=True)
    return 0
