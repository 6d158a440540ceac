"""Wall time of one synthetic run through each executor, and the overhead an executor adds per case.

Runs ``deploybench run -o OPT... -t crashy_branin -t hierarchical_rosenbrock -t crash_cliff --seeds N``
serially, with ``-n W`` worker processes and through the Ray executor on W CPUs (if deploybench-ray is
installed), each in a fresh results directory, and prints:

- wall: the whole command, start-up included;
- fixed: the same executor running a single one-trial case (interpreter, plugins, pool/Ray start-up);
- compute: the sum over every trial of ask + evaluate + tell seconds, read from the case files;
- overhead/case: core-seconds per case spent outside ask/evaluate/tell and outside the fixed start-up,
  ``(wall - fixed) * W / cases - compute / cases``; it is what an executor costs per case (shipping
  the case, building the task and optimizer, writing the file, reporting back).

Usage: python benchmarks/executor_overhead.py [--optimizers random,tba,...] [--seeds 20] [--workers 2]
(default optimizers: every built-in one ``deploybench list optimizers`` shows from deploybench_optimizers).
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

from deploybench.plugins import create_plugin_manager
from deploybench.results import iter_case_files, read_case_file

TASKS = ("crashy_branin", "hierarchical_rosenbrock", "crash_cliff")


def builtin_optimizers() -> list[str]:
    classes = create_plugin_manager(()).optimizer_classes()
    return sorted(n for n, c in classes.items() if c.__module__.startswith("deploybench_optimizers."))


def run(args: list[str], out: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "deploybench.cli.main", "run", *args, "--out", str(out), "-qq"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"deploybench run {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return wall


def compute_seconds(out: Path) -> tuple[float, int]:
    total, cases = 0.0, 0
    for path in iter_case_files(out):
        case = read_case_file(path)
        total += sum(t["ask_s"] + t["eval_s"] + t["tell_s"] for t in case.trials)
        cases += 1
    return total, cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--optimizers", default=None, help="comma-separated (default: every built-in optimizer)")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    opts = ap.parse_args()
    optimizers = opts.optimizers.split(",") if opts.optimizers else builtin_optimizers()
    selection = [a for o in optimizers for a in ("-o", o)] + [a for t in TASKS for a in ("-t", t)]
    executors = [("serial", 1, []), (f"process -n {opts.workers}", opts.workers, ["-n", str(opts.workers)])]
    try:
        md.distribution("deploybench-ray")
        executors.append((f"ray on {opts.workers} CPUs", opts.workers,
                          ["--executor", "ray", "--ray-address", "local", "-n", str(opts.workers)]))
    except md.PackageNotFoundError:
        print("deploybench-ray not installed: skipping the Ray executor (pip install ./plugins/ray-executor)")
    print(f"optimizers: {', '.join(optimizers)}; tasks: {', '.join(TASKS)}; seeds: {opts.seeds}; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (other processes skew every figure)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, workers, extra in executors:
            fixed = run(["-o", "random", "-t", "crashy_branin", "--budget", "1", *extra], Path(tmp) / f"fixed-{workers}-{len(rows)}")
            out = Path(tmp) / f"run-{len(rows)}"
            wall = run([*selection, "--seeds", str(opts.seeds), *extra], out)
            compute, cases = compute_seconds(out)
            overhead = ((wall - fixed) * workers - compute) / cases
            rows.append([label, cases, f"{wall:.1f}", f"{fixed:.1f}", f"{compute:.1f}", f"{1000 * overhead:.0f}"])
            print(f"  {label}: {wall:.1f} s", flush=True)
    print(tabulate(rows, headers=["executor", "cases", "wall s", "fixed s", "compute s", "overhead ms/case"]))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
