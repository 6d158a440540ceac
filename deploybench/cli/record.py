"""``deploybench record``: measure a deployment grid with the live profiler into a replayable table.

One fresh worker per measurement; each result is appended (and flushed) as it finishes, so a
recording resumes where it stopped and can be split across sessions with filters. Configurations
whose first measurement lies near a scenario's latency cap (within ±30 %) get extra repeats, since
the noise there decides feasibility. Configurations far beyond every cap are cut short by the
profiler's early stop (5× the loosest latency cap) and recorded as early-stopped.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import datetime, timezone
from typing import Any, Sequence

from ..plugins import UsageError, unknown_name_message
from ..space import Categorical, Condition, Integer, Ordinal, SearchSpace
from ..tables import TableError, load_table, open_table_for_append

SPACES = ("image_classification",)
NEAR_CAP = 0.3


def _csv(kind: type = str):
    def parse(text: str) -> list:
        try:
            return [kind(x.strip()) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind.__name__}, got {text!r}") from None

    return parse


def table_space(models: Sequence[str], backends: Sequence[str], precisions: Sequence[str],
                batch_sizes: Sequence[int], threads: Sequence[int]) -> SearchSpace:
    """The recorded grid as a space: a contiguous thread range is an integer, otherwise an ordinal."""
    from ..tasks.deployment import THREADED_BACKENDS

    params = [
        Categorical("model", choices=tuple(models)),
        Categorical("backend", choices=tuple(backends)),
        Categorical("precision", choices=tuple(precisions)),
        Ordinal("batch_size", values=tuple(sorted(batch_sizes)), log=True),
    ]
    threaded = tuple(b for b in THREADED_BACKENDS if b in backends)
    if threaded:
        values = tuple(sorted(set(threads)))
        cond = Condition("backend", threaded)
        if len(values) > 1 and values == tuple(range(values[0], values[-1] + 1)):
            params.append(Integer("threads", low=values[0], high=values[-1], condition=cond))
        else:
            params.append(Ordinal("threads", values=values, condition=cond))
    return SearchSpace(params)


def add_parser(sub: Any, pm: Any) -> None:
    from ..tasks.deployment import BACKENDS, BATCH_SIZES, MODELS, PRECISIONS

    p = sub.add_parser("record", help="record a deployment table with the live profiler",
                       description=__doc__.splitlines()[0])
    p.add_argument("--space", default="image_classification", help="the space to record (image_classification)")
    p.add_argument("--target", default="live", help="where to measure: live (this machine)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--out", required=True, help="table file to create or extend (.jsonl)")
    p.add_argument("--name", default=None, help="table name (default: the file name)")
    p.add_argument("--repeats", type=int, default=3, help="repeats for configurations near a latency cap (default 3)")
    p.add_argument("--models", type=_csv(), default=list(MODELS))
    p.add_argument("--backends", type=_csv(), default=list(BACKENDS))
    p.add_argument("--precisions", type=_csv(), default=list(PRECISIONS))
    p.add_argument("--batch-sizes", type=_csv(int), default=list(BATCH_SIZES))
    p.add_argument("--threads", type=_csv(int), default=list(range(1, 9)),
                   help="thread counts for threaded backends (default 1..8)")
    p.add_argument("--only-backends", type=_csv(), default=None,
                   help="measure only these backends now (chunking) while the grid keeps --backends")
    p.add_argument("--only-models", type=_csv(), default=None, help="measure only these models now (chunking)")
    p.add_argument("--time-limit", type=float, default=120.0, help="hard limit per measurement, seconds")
    p.add_argument("--max-new", type=int, default=None, help="stop after this many new measurements")
    p.add_argument("--weights", default="auto", choices=("auto", "pretrained", "random"))
    p.add_argument("--data", default=None, help="ImageFolder of ImageNet synset folders for measured accuracy")
    p.set_defaults(handler=run)


def _provenance(args: argparse.Namespace, threads: Sequence[int]) -> dict:
    from ..machine import library_versions, machine_info

    info = machine_info()
    device_name = info["cpu"]
    driver = None
    if args.device in ("auto", "cuda"):
        try:
            import torch

            if torch.cuda.is_available():
                device_name = torch.cuda.get_device_name(0)
                driver = torch.version.cuda
        except Exception:  # noqa: BLE001 - provenance is best effort
            pass
    return {
        "device": "cuda" if driver else "cpu",
        "device_name": device_name if driver else f"{info['cpu_count']}-core CPU",
        "cuda": driver,
        "cpu": info["cpu"],
        "cpu_count": info["cpu_count"],
        "memory_gb": info["memory_gb"],
        "platform": info["platform"],
        "python": info["python"],
        "versions": library_versions(),
        "date": datetime.now(timezone.utc).date().isoformat(),
        "profiler_version": "1",
        "repeats_policy": f"1 repeat; up to --repeats near a latency cap (within ±{int(NEAR_CAP * 100)} %)",
        "threads_recorded": list(threads),
        "time_limit_s": args.time_limit,
        "weights": args.weights,
        "accuracy": "measured" if args.data else "documented ImageNet-1K top-1 of the weights",
        "early_stop": "5x the loosest latency cap (100 ms p99 -> 500 ms), on timed iterations",
    }


def _near_cap(measurement: dict) -> bool:
    from ..tasks.deployment import scenarios

    if measurement.get("status") != "ok":
        return False
    metrics = measurement.get("metrics") or {}
    for s in scenarios().values():
        value = metrics.get(s.latency_metric)
        if value is not None and abs(value - s.latency_cap_ms) <= NEAR_CAP * s.latency_cap_ms:
            return True
    return False


def _cheap_first(config: dict) -> tuple:
    from ..tasks.deployment import BACKENDS, MODELS

    backend_cost = {"onnxruntime": 0, "pytorch_eager": 1, "torch_compile": 2}
    model_rank = {m: i for i, m in enumerate(("mobilenet_v2", "resnet18", "efficientnet_b0", "resnet50", "vit_b_16"))}
    return (backend_cost.get(config["backend"], len(BACKENDS)), model_rank.get(config["model"], len(MODELS)),
            config["batch_size"], config["precision"], config.get("threads", 0))


def run(args: argparse.Namespace, pm: Any) -> int:
    from ..live.profiler import ProfileRequest, profile
    from ..tasks.deployment import BACKENDS, MODELS, PRECISIONS, scenarios

    if args.space not in SPACES:
        raise UsageError(unknown_name_message("space", args.space, SPACES))
    if args.target != "live":
        raise UsageError(f"record measures live: --target must be 'live', got {args.target!r}")
    for kind, values, known in (("model", args.models, MODELS), ("backend", args.backends, BACKENDS),
                                ("precision", args.precisions, PRECISIONS)):
        for v in values:
            if v not in known:
                raise UsageError(unknown_name_message(kind, v, known))
    if args.repeats < 1:
        raise UsageError("--repeats must be at least 1")
    space = table_space(args.models, args.backends, args.precisions, args.batch_sizes, args.threads)
    header = {"name": args.name or os.path.basename(args.out).split(".")[0], "space": space.to_json(),
              "space_signature": space.signature(), "provenance": _provenance(args, args.threads)}
    try:
        fh = open_table_for_append(args.out, header)
        existing = load_table(args.out)
    except TableError as exc:
        raise UsageError(str(exc)) from exc
    loosest = max(scenarios().values(), key=lambda s: s.latency_cap_ms)
    todo = [c for c in space.grid()
            if (args.only_backends is None or c["backend"] in args.only_backends)
            and (args.only_models is None or c["model"] in args.only_models)]
    todo.sort(key=_cheap_first)
    done_new = 0
    started = time.time()
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        tqdm = None
    bar = tqdm(total=len(todo), unit="config", file=sys.stderr, disable=not sys.stderr.isatty()) if tqdm else None
    import json

    try:
        for config in todo:
            key = space.key(config)
            reps = list(existing.repeats(key))
            wanted = 1 if not reps else (args.repeats if _near_cap(reps[0]) else 1)
            while len(reps) < wanted:
                if args.max_new is not None and done_new >= args.max_new:
                    raise StopIteration
                request = ProfileRequest(config=config, latency_cap_ms=loosest.latency_cap_ms,
                                         latency_metric="latency_p95_ms", early_stop_factor=5.0,
                                         time_limit_s=args.time_limit, device=args.device, data_dir=args.data,
                                         weights=args.weights)
                m = profile(request).to_dict()
                fh.write(json.dumps({"type": "measurement", "key": key, "config": config, "repeat": len(reps),
                                     "load_avg_1m": round(os.getloadavg()[0], 2), "measurement": m},
                                    allow_nan=False) + "\n")
                fh.flush()
                reps.append(m)
                done_new += 1
                line = (f"{key} repeat {len(reps) - 1}: {m['status']} "
                        f"p95={(m.get('metrics') or {}).get('latency_p95_ms')} cost={m['cost_s']:.1f}s")
                print(line, flush=True)
                wanted = args.repeats if _near_cap(reps[0]) else 1
            if bar:
                bar.update(1)
    except StopIteration:
        print(f"stopped after --max-new {args.max_new} new measurements", flush=True)
    except KeyboardInterrupt:
        print("interrupted: every finished measurement is saved; rerun the same command to resume", flush=True)
        return 2
    finally:
        fh.close()
        if bar:
            bar.close()
    table = load_table(args.out)
    covered, grid = table.coverage()
    print(f"recorded {done_new} new measurements in {time.time() - started:.0f} s; "
          f"table {args.out} covers {covered}/{grid} configurations")
    return 0
