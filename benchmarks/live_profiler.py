"""How trustworthy and how expensive is the live profiler on this machine?

1. seconds per live trial (fresh worker, process start included) per backend at batch 1 and 32;
2. p95 coefficient of variation over fresh-process repeats of three configurations (goal <= 0.05);
3. false early stops on configurations known to be feasible (goal 0): each configuration is first
   measured without early stop; its cap is set to that p95 (feasible, on the boundary), then it is
   re-profiled with the tight factor 3 x cap. An early stop there is a false abort. With
   ``--inject-contention N``, N CPU-bound processes run beside every re-profile, once with the
   contention guard (the default threshold) and once without it (threshold disabled), so the table
   shows what the guard prevents.

Every measurement emulates the ``cpu`` device profile (2 threads, 4 GiB) and prints the load average
beside each figure (other processes share the cores).

    .venv/bin/python benchmarks/live_profiler.py [--repeats 10] [--feasible 20] [--model mobilenet_v2]
        [--inject-contention 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from typing import Iterator

from tabulate import tabulate

from deploybench.live.profiler import ProfileRequest, profile


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def cfg(model: str, backend: str, batch: int, threads: int | None = 2, precision: str = "fp32") -> dict:
    c = {"model": model, "backend": backend, "precision": precision, "batch_size": batch}
    if backend != "torch_compile":
        c["threads"] = threads
    if backend == "pytorch_eager":
        c["memory_format"] = "contiguous"
    if backend == "onnxruntime":
        c["graph_optimization"] = "all"
    return c


def request(config: dict, **kw) -> ProfileRequest:
    """A request emulating the cpu device profile, with prepared artefacts reused between calls."""
    base = dict(device="cpu", time_limit_s=120, device_profile="cpu", memory_limit_mb=4096.0,
                artefact_cache=os.path.join(os.path.expanduser("~"), ".cache", "deploybench", "artefacts"))
    base.update(kw)
    return ProfileRequest(config=config, **base)


@contextlib.contextmanager
def busy(n: int) -> Iterator[None]:
    """``n`` CPU-bound processes running beside the block."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def trial_costs(model: str) -> None:
    rows = []
    for backend in ("pytorch_eager", "torch_compile", "onnxruntime"):
        for batch in (1, 32):
            before = load()
            m = profile(request(cfg(model, backend, batch)))
            st = m.stages
            rows.append([backend, batch, m.status, f"{m.cost_s:.1f}",
                         " ".join(f"{k[:-2]}={v:.1f}" for k, v in st.items()),
                         f"{m.metrics.get('latency_p95_ms', float('nan')):.1f}", m.metrics.get("n_timed_iters"),
                         f"{m.metrics.get('memory_peak_mb', float('nan')):.0f}", before])
    print(f"\n1. seconds per live trial, {model} fp32, threads 2 where active, CPU")
    print(tabulate(rows, headers=["backend", "batch", "status", "trial s", "stages s", "p95 ms", "timed iters",
                                  "mem MB", "load 1/5/15"]))


def p95_cv(repeats: int) -> None:
    configs = [cfg("mobilenet_v2", "onnxruntime", 1, 2), cfg("resnet18", "pytorch_eager", 8, 2),
               cfg("mobilenet_v2", "pytorch_eager", 1, 1)]
    rows = []
    for c in configs:
        before = load()
        vals, costs = [], []
        for _ in range(repeats):
            m = profile(request(c))
            if m.status == "ok":
                vals.append(m.metrics["latency_p95_ms"])
                costs.append(m.cost_s)
        mean = statistics.fmean(vals) if vals else float("nan")
        sd = statistics.stdev(vals) if len(vals) > 1 else float("nan")
        rows.append([f"{c['model']}/{c['backend']}/bs{c['batch_size']}/t{c.get('threads')}", len(vals),
                     f"{mean:.2f}", f"{sd:.2f}", f"{sd / mean:.3f}" if vals else "-",
                     f"{min(vals):.2f}-{max(vals):.2f}" if vals else "-", f"{statistics.fmean(costs):.1f}",
                     f"{before} -> {load()}"])
    print(f"\n2. p95 over {repeats} fresh-process repeats (goal CV <= 0.05)")
    print(tabulate(rows, headers=["config", "n ok", "mean p95 ms", "sd", "CV", "range", "trial s", "load"]))


def false_early_stops(n: int, inject: int = 0) -> None:
    pool = []
    for model in ("mobilenet_v2", "resnet18", "efficientnet_b0"):
        for backend in ("onnxruntime", "pytorch_eager"):
            for batch in (1, 4):
                for threads in (1, 2):
                    pool.append(cfg(model, backend, batch, threads))
    pool.insert(3, cfg("mobilenet_v2", "torch_compile", 1))
    pool.insert(9, cfg("resnet18", "torch_compile", 1))
    pool = pool[:n]
    variants = [("guard", None)] + ([("no guard", 1e9)] if inject else [])
    rows, false_stops = [], {name: 0 for name, _ in variants}
    for c in pool:
        ref = profile(request(c))
        if ref.status != "ok":
            rows.append([c, ref.status, "-", "-", "-", "-"])
            continue
        cap = ref.metrics["latency_p95_ms"]
        for name, threshold in variants:
            with busy(inject):
                m = profile(request(c, latency_cap_ms=cap, latency_metric="latency_p95_ms", early_stop_factor=3.0,
                                    max_other_cores=threshold, quiet_wait_s=5.0))
            stopped = m.status == "early_stopped"
            false_stops[name] += stopped
            rows.append([f"{c['model']}/{c['backend']}/bs{c['batch_size']}/t{c.get('threads')}", name, m.status,
                         f"{cap:.1f}", f"{m.metrics.get('latency_p95_ms', float('nan')):.1f}",
                         f"{m.attempts} attempts" + (", contaminated" if m.contaminated else ""), load()])
    counts = ", ".join(f"{name}: {k} of {len(pool)}" for name, k in false_stops.items())
    print(f"\n3. false early stops ({counts}) on feasible configurations (cap = the config's own reference p95, "
          f"early stop at 3 x cap), {inject} CPU-bound processes injected beside each re-profile")
    print(tabulate(rows, headers=["config", "guard", "status", "cap ms (ref p95)", "re-run p95 ms", "attempts", "load"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="mobilenet_v2")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--feasible", type=int, default=20)
    p.add_argument("--only", choices=("cost", "cv", "estop"), default=None)
    p.add_argument("--inject-contention", type=int, default=0, metavar="N",
                   help="run N CPU-bound processes beside each early-stop re-profile (with and without the guard)")
    args = p.parse_args(argv)
    print(f"live profiler benchmark; {os.cpu_count()} CPUs, load {load()}, python {sys.version.split()[0]}; "
          "no GPU in this run")
    t0 = time.time()
    if args.only in (None, "cost"):
        trial_costs(args.model)
    if args.only in (None, "cv"):
        p95_cv(args.repeats)
    if args.only in (None, "estop"):
        false_early_stops(args.feasible, args.inject_contention)
    print(f"\ntotal {time.time() - t0:.0f} s, load {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
