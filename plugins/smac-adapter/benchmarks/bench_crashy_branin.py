"""Adapter figures on crashy_branin: ask+tell time at trial 25 and best feasible objective at budget 30.

Runs ``deploybench run -o OPT -t crashy_branin --seeds 20 --budget 30`` (serially, so the timings
are not disturbed by a second case) and prints, per optimizer:

- ask+tell ms at trial 25: ``ask_s + tell_s`` of trial index 24 in each case file, median over seeds;
- best feasible: the mean over seeds of the best feasible objective (seeds that found nothing are
  listed apart), the mean waste (crashed, timed-out or infeasible share of trials).

    python plugins/smac-adapter/benchmarks/bench_crashy_branin.py [-o smac -o nevergrad] [--seeds 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from deploybench.results import iter_case_files, read_case_file
from deploybench.runner import summarize_trials

DEFAULT_OPTIMIZERS = ["smac"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--optimizer", action="append", default=None)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--trial", type=int, default=25, help="1-based trial whose ask+tell time is reported")
    parser.add_argument("--out", default=None, help="results directory (default: a temporary one)")
    args = parser.parse_args()
    optimizers = args.optimizer or DEFAULT_OPTIMIZERS
    out = Path(args.out or tempfile.mkdtemp(prefix="adapter-bench-"))
    command = [sys.executable, "-m", "deploybench.cli.main", "run", "-t", "crashy_branin", "--seeds", str(args.seeds),
               "--budget", str(args.budget), "--out", str(out), "-q"]
    for name in optimizers:
        command += ["-o", name]
    subprocess.run(command, check=True)
    print(f"crashy_branin, budget {args.budget}, {args.seeds} seeds, results in {out}")
    print(f"{'optimizer':<12} {'ask+tell ms @' + str(args.trial):>18} {'best feasible mean':>19} {'sd':>7} "
          f"{'found':>6} {'waste':>6}")
    for name in optimizers:
        times, bests, wastes, missing = [], [], [], 0
        for path in iter_case_files(out / "crashy_branin" / name):
            case = read_case_file(path)
            summary = summarize_trials(case.trials, case.header["objective"]["direction"])
            if len(case.trials) >= args.trial:
                t = case.trials[args.trial - 1]
                times.append(1000.0 * (t["ask_s"] + t["tell_s"]))
            wastes.append(summary["waste"])
            if summary["best"] is None:
                missing += 1
            else:
                bests.append(summary["best"])
        sd = statistics.stdev(bests) if len(bests) > 1 else 0.0
        print(f"{name:<12} {statistics.median(times):>18.1f} {statistics.fmean(bests):>19.4f} {sd:>7.3f} "
              f"{len(bests):>3}/{len(bests) + missing:<2} {statistics.fmean(wastes):>6.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
