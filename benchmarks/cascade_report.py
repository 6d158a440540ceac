"""Cascade tasks: the value of recall per instance, and a leaderboard of the built-in optimizers.

Part 1 (no runs, from the enumerated optima in the task metadata): per cascade scenario the known
optimum, the best recall-free configuration (single model, threshold, patience), the best with
recall (threshold with recall, T-Tamer index), their gap, and the labelled reference rows (prophet
bound, best single shared threshold, T-Tamer's index and the recall-free Markov-optimal policy at the
mean-latency cap, on the optimum's chain), and for recorded tasks the largest conditional mutual
information between non-adjacent members' proxy-loss bins given the member between them (0 = Markov).

Part 2: ``deploybench run`` of every built-in optimizer on every cascade scenario over ``--seeds``
seeds (the real runner, one results folder), scored with the leaderboard code: mean best objective,
mean regret, normalised score (0 = optimum, 1 = random search), success rate, waste; and for the
recorded tasks the held-out test value of the configuration chosen on validation.

    flock /tmp/deploybench-measure.lock python benchmarks/cascade_report.py [--seeds 20] [--workers 1]
        [--optimizers random,tba,...] [--tasks cascade_line,...] [--out DIR] [--skip-runs]

With ``--out`` an existing results folder is resumed, so the runs can be made in chunks (one task at
a time, each under the lock) and the report printed at the end from the same folder.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

OPTIMIZERS = ("random", "tpe", "tba", "tba_tpe", "tba_tpe_plus", "cbo")


def _fmt(x: object, digits: int = 4) -> str:
    x = getattr(x, "mean", x)  # a leaderboard Interval: its mean
    return "—" if x is None else f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def recall_table(names: list[str]) -> str:
    from deploybench.tasks.cascade import build_cascade_task

    rows = []
    for name in names:
        task = build_cascade_task(name)
        ref = {r["label"]: r for r in task.metadata.extra["reference_rows"]}
        metric = task.objective.metric
        free, rec = ref["best recall-free configuration"]["objective"], ref["best with recall"]["objective"]
        gap = None if free is None or rec is None else (rec - free) * task.objective.sign + 0.0
        at_cap = ref.get("T-Tamer index at the cap", {}).get("accuracy")
        markov = ref.get("recall-free Markov-optimal at the cap", {}).get("accuracy")
        err_ratio = None
        if metric == "accuracy" and free is not None and rec is not None and rec < 1:
            err_ratio = (1 - free) / (1 - rec)
        rows.append([name, metric, _fmt(task.metadata.known_optimum), task.metadata.extra["witness"]["policy"],
                     _fmt(free), _fmt(rec), _fmt(gap, 3), _fmt(err_ratio, 3),
                     _fmt(ref.get("best single shared threshold", {}).get("objective")),
                     _fmt(markov), _fmt(at_cap), _fmt(ref.get("prophet bound", {}).get("accuracy")),
                     _fmt(max(task.metadata.extra.get("markov_violation_bits", {}).values(), default=None), 3)])
    headers = ["task", "objective", "optimum", "optimum's policy", "best recall-free", "best with recall",
               "recall gain", "error ratio free/recall", "best shared threshold", "Markov no-recall @cap",
               "T-Tamer @cap", "prophet acc.", "Markov violation (bits, max)"]
    return tabulate(rows, headers=headers, tablefmt="github")


def run_leaderboard(names: list[str], optimizers: list[str], seeds: int, workers: int, out: Path) -> str:
    cmd = [sys.executable, "-m", "deploybench.cli.main", "run", "-q", "--seeds", str(seeds), "--out", str(out),
           "-n", str(workers)]
    for o in optimizers:
        cmd += ["-o", o]
    for t in names:
        cmd += ["-t", t]
    if out.exists() and any(out.iterdir()):
        cmd.append("--resume")  # finished cases are kept, unfinished ones redone
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"deploybench run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    from deploybench.plugins import create_plugin_manager
    from deploybench.scoring import build_leaderboard

    pm = create_plugin_manager()
    board = build_leaderboard([out], extra_metrics=pm.leaderboard_metrics())
    rows = []
    for g in board.groups:
        for r in sorted(g.rows, key=lambda r: r.label):
            v = r.values
            rows.append([g.key.task_label, r.label, r.seeds, _fmt(v.get("best")),
                         _fmt(v.get("regret"), 3), _fmt(v.get("normalised"), 3),
                         _fmt(v.get("success"), 3), _fmt(v.get("waste"), 3), _fmt(v.get("held_out_test"))])
    table = tabulate(rows, headers=["task", "optimizer", "seeds", "best (mean)", "regret", "norm. score", "success",
                                    "waste", "held-out test"], tablefmt="github")
    return f"{table}\n\n(deploybench run: {wall:.1f} s wall, exit {proc.returncode}; results in {out})"


def main(argv: list[str] | None = None) -> int:
    from deploybench.tasks.cascade import SCENARIOS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    p.add_argument("--tasks", default=",".join(SCENARIOS))
    p.add_argument("--out", default=None, help="results folder (default: a temporary one)")
    p.add_argument("--skip-runs", action="store_true", help="only the recall table (no optimizer runs)")
    args = p.parse_args(argv)
    names = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in names if t not in SCENARIOS]
    if unknown:
        p.error(f"unknown cascade task(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    print("## Recall vs no recall per instance (exhaustive enumeration of each task's finite space)\n")
    print(recall_table(names))
    if args.skip_runs:
        return 0
    print(f"\n## Built-in optimizers, {args.seeds} seeds, each task's default budget\n")
    if args.out:
        print(run_leaderboard(names, args.optimizers.split(","), args.seeds, args.workers, Path(args.out)))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            print(run_leaderboard(names, args.optimizers.split(","), args.seeds, args.workers, Path(tmp) / "runs"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
