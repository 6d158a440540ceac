"""``deploybench record``: measure a deployment grid with the live profiler into a replayable table.

One fresh worker per measurement; each result is appended (and flushed) as it finishes, so a
recording resumes where it stopped and can be split across sessions with filters. Configurations
whose first measurement lies near a scenario's latency cap (within ±30 %) get extra repeats, since
the noise there decides feasibility. Configurations far beyond every cap are cut short by the
profiler's early stop (5× the loosest latency cap) and recorded as early-stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from datetime import datetime, timezone
from typing import Any, Iterator, Sequence

from ..plugins import UsageError, unknown_name_message
from ..space import SearchSpace
from ..tables import TableError, grid_space, load_table, open_table_for_append

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
    """The recorded grid as a space (see :func:`deploybench.tables.grid_space`)."""
    return grid_space(models, backends, precisions, batch_sizes, threads)


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
    p.add_argument("--only-batch-sizes", type=_csv(int), default=None,
                   help="measure only these batch sizes now (chunking)")
    p.add_argument("--quiet-cpu", type=float, default=None, metavar="PCT",
                   help="before each measurement wait until the whole machine's CPU use (2 s sample) is below PCT "
                        "%% (other jobs distort latency), at most --quiet-wait seconds; the sample is stored")
    p.add_argument("--quiet-wait", type=float, default=600.0, help="longest wait for --quiet-cpu, seconds (default 600)")
    p.add_argument("--lock", default=None, metavar="FILE",
                   help="hold an exclusive lock (flock) on FILE during each measurement: other jobs on this machine "
                        "that take the same lock (e.g. `flock FILE pytest`) then never run while a measurement does")
    p.add_argument("--note", default=None, help="a note stored in the provenance (e.g. why the grid is narrowed)")
    p.add_argument("--time-limit", type=float, default=120.0, help="hard limit per measurement, seconds")
    p.add_argument("--max-new", type=int, default=None, help="stop after this many new measurements")
    p.add_argument("--stop-after", type=float, default=None, metavar="SECONDS",
                   help="start no new measurement after this many seconds of wall time (fits a recording into "
                        "time-limited sessions: rerun the same command to continue)")
    p.add_argument("--weights", default="auto", choices=("auto", "pretrained", "random"))
    p.add_argument("--data", default=None, help="ImageFolder of ImageNet synset folders for measured accuracy")
    p.set_defaults(handler=run)


def _provenance(args: argparse.Namespace, threads: Sequence[int]) -> dict:
    from ..live.profiler import MEASUREMENT_FORMAT
    from ..tasks.deployment import THREADED_BACKENDS
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
        **({"driver": _nvidia_driver()} if driver else {}),
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
        "profiler_version": str(MEASUREMENT_FORMAT),
        "repeats_policy": f"1 repeat; up to {args.repeats} where a scenario latency metric lies within "
                          f"±{int(NEAR_CAP * 100)} % of its cap",
        "threads_recorded": list(threads) if set(args.backends) & set(THREADED_BACKENDS) else [],
        "time_limit_s": args.time_limit,
        "weights": args.weights,
        "accuracy": "measured" if args.data else "documented ImageNet-1K top-1 of the weights",
        "early_stop": "5x the loosest latency cap (100 ms p99 -> 500 ms), on timed iterations",
        **({"note": args.note} if args.note else {}),
        **({"quiet_cpu_pct": args.quiet_cpu, "quiet_wait_s": args.quiet_wait} if args.quiet_cpu is not None else {}),
    }


def _nvidia_driver() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


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
    """Recording order: batch size first, so a recording stopped at any point still holds complete
    grids over every model, backend and precision at the smaller batch sizes (``table pack`` ships
    them); within a batch size the cheap backends and small models come first."""
    from ..tasks.deployment import BACKENDS, MODELS

    backend_cost = {"onnxruntime": 0, "pytorch_eager": 1, "torch_compile": 2}
    model_rank = {m: i for i, m in enumerate(("mobilenet_v2", "resnet18", "efficientnet_b0", "resnet50", "vit_b_16"))}
    return (config["batch_size"], backend_cost.get(config["backend"], len(BACKENDS)),
            model_rank.get(config["model"], len(MODELS)), config["precision"], config.get("threads", 0))


def _wait_for_quiet(max_busy_pct: float, max_wait_s: float) -> float:
    """Wait until the machine's CPU use, sampled over 2 s, is below ``max_busy_pct`` (or ``max_wait_s``
    has passed); returns the last sample. Latency measured beside other jobs is theirs as much as ours."""
    import psutil

    deadline = time.monotonic() + max_wait_s
    while True:
        busy = psutil.cpu_percent(interval=2.0)
        if busy < max_busy_pct or time.monotonic() >= deadline:
            return round(busy, 1)
        time.sleep(3.0)


@contextlib.contextmanager
def _measurement_lock(path: str | None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed) for one measurement.

    Latency recorded beside another job measures that job too; a job that takes the same lock
    (``flock FILE command``) waits for the measurement in flight and holds back the next one."""
    if path is None:
        yield
        return
    import fcntl

    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _summary(new: list[tuple[str, dict]], wall_s: float) -> list[str]:
    """Lines summarising the measurements of this run: statuses, seconds per measurement and per configuration."""
    import statistics
    from collections import Counter

    if not new:
        return []
    statuses = Counter(m["status"] for _, m in new)
    costs = [float(m.get("cost_s") or 0.0) for _, m in new]
    per_config: dict[str, float] = {}
    for (key, m), c in zip(new, costs):
        per_config[key] = per_config.get(key, 0.0) + c
    pc = list(per_config.values())
    return [
        "statuses: " + ", ".join(f"{s} {n}" for s, n in statuses.most_common()),
        f"seconds per measurement: mean {statistics.mean(costs):.1f}, median {statistics.median(costs):.1f}, "
        f"max {max(costs):.1f}",
        f"seconds per configuration (all its new repeats): mean {statistics.mean(pc):.1f}, "
        f"median {statistics.median(pc):.1f}, max {max(pc):.1f}, over {len(pc)} configurations",
        f"wall time {wall_s:.0f} s ({wall_s / 3600:.2f} h)",
    ]


def run(args: argparse.Namespace, pm: Any) -> int:
    import json

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
            and (args.only_models is None or c["model"] in args.only_models)
            and (args.only_batch_sizes is None or c["batch_size"] in args.only_batch_sizes)]
    todo.sort(key=_cheap_first)
    new: list[tuple[str, dict]] = []
    started = time.time()
    from tqdm import tqdm

    already = sum(1 for c in todo if existing.repeats(space.key(c)))
    print(f"recording {len(todo)} configurations into {args.out} ({already} already measured, "
          f"up to {args.repeats} repeats near a latency cap, limit {args.time_limit:g} s each)", flush=True)
    bar = tqdm(total=len(todo), initial=already, unit="config", file=sys.stderr, disable=not sys.stderr.isatty())
    stopped: str | None = None
    try:
        for config in todo:
            key = space.key(config)
            reps = list(existing.repeats(key))
            had = len(reps)
            wanted = 1 if not reps else (args.repeats if _near_cap(reps[0]) else 1)
            while len(reps) < wanted:
                if args.max_new is not None and len(new) >= args.max_new:
                    stopped = f"after --max-new {args.max_new} new measurements"
                    break
                if args.stop_after is not None and time.time() - started + args.time_limit > args.stop_after:
                    stopped = f"--stop-after {args.stop_after:g} s: the next measurement could run past it"
                    break
                request = ProfileRequest(config=config, latency_cap_ms=loosest.latency_cap_ms,
                                         latency_metric="latency_p95_ms", early_stop_factor=5.0,
                                         time_limit_s=args.time_limit, device=args.device, data_dir=args.data,
                                         weights=args.weights)
                with _measurement_lock(args.lock):
                    busy = _wait_for_quiet(args.quiet_cpu, args.quiet_wait) if args.quiet_cpu is not None else None
                    m = profile(request).to_dict()
                fh.write(json.dumps({"type": "measurement", "key": key, "config": config, "repeat": len(reps),
                                     "load_avg_1m": round(os.getloadavg()[0], 2), "recorded_at": round(time.time()),
                                     "time_limit_s": args.time_limit,
                                     **({"cpu_busy_pct_before": busy} if busy is not None else {}),
                                     "measurement": m}, allow_nan=False) + "\n")
                fh.flush()
                reps.append(m)
                new.append((key, m))
                p95 = (m.get("metrics") or {}).get("latency_p95_ms")
                line = (f"{key} repeat {len(reps) - 1}: {m['status']} "
                        f"p95={'-' if p95 is None else f'{p95:.1f} ms'} cost={m['cost_s']:.1f}s"
                        + (f" ({m['error'].get('kind')})" if m.get("error") else ""))
                if bar.disable:
                    print(line, flush=True)
                else:
                    bar.write(line)
                wanted = args.repeats if _near_cap(reps[0]) else 1
            if stopped:
                break
            if had == 0:
                bar.update(1)
    except KeyboardInterrupt:
        print("interrupted: every finished measurement is saved; rerun the same command to resume", flush=True)
        return 2
    finally:
        fh.close()
        bar.close()
    if stopped:
        print(f"stopped {stopped}; rerun the same command to continue", flush=True)
    table = load_table(args.out)
    covered, grid = table.coverage()
    print(f"recorded {len(new)} new measurements in {time.time() - started:.0f} s; "
          f"table {args.out} covers {covered}/{grid} configurations")
    for line in _summary(new, time.time() - started):
        print("  " + line)
    return 0
