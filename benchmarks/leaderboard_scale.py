"""How fast, and in how much memory, the leaderboard aggregates many trial records.

Synthesizes case files the way the runner writes them (crashy_branin evaluated at uniformly random
configurations, full trial records with timings) — by default 100 000 trials: 5 optimizer names ×
667 seeds × 30 trials — then, in a fresh process, times ``build_leaderboard`` (streaming read,
grouping, metrics, bootstrap, tests) and reads the process's peak RSS.

    .venv/bin/python benchmarks/leaderboard_scale.py [--trials 100000] [--budget 30] [--keep DIR]

Target: under 5 s and under 300 MB peak RSS for 100 000 trials on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from deploybench.results import CaseWriter, case_path
from deploybench.tasks.synthetic import CrashyBranin

OPTIMIZERS = ("random", "opt_a", "opt_b", "opt_c", "opt_d")

MEASURE = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from deploybench.scoring import build_leaderboard, render
imported = time.perf_counter()
rss_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
board = build_leaderboard([sys.argv[1]])
built = time.perf_counter()
text = render(board, "github")
rendered = time.perf_counter()
print(json.dumps({"import_s": imported - t0, "aggregate_s": built - imported, "render_s": rendered - built,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_after_imports_mb": rss_imports / 1024, "cases": board.n_cases, "trials": board.n_trials,
                  "tables": len(board.groups), "chars": len(text)}))
"""


def synthesize(root: Path, n_trials: int, budget: int) -> tuple[int, int]:
    """Write case files holding ``n_trials`` trials in all; returns (cases, bytes)."""
    task = CrashyBranin()
    header_base = {"task": task.name, "target": "analytic", "task_label": task.name, "task_version": task.version,
                   "task_signature": task.signature(), "task_kind": "analytic",
                   "objective": {"metric": task.objective.metric, "direction": task.objective.direction},
                   "constraints": [c.to_json() for c in task.constraints],
                   "known_optimum": task.metadata.known_optimum, "family_param": task.metadata.family_param,
                   "best_family": task.metadata.best_family, "optimizer_params": {}, "budget": budget,
                   "budget_seconds": None}
    n_cases = math.ceil(n_trials / budget)
    written = 0
    for case in range(n_cases):
        optimizer, seed = OPTIMIZERS[case % len(OPTIMIZERS)], case // len(OPTIMIZERS)
        rng = np.random.default_rng(case)
        path = case_path(root, task.name, optimizer, seed)
        with CaseWriter(path) as w:
            w.start({**header_base, "node_id": f"{task.name}[analytic]::{optimizer}[seed={seed}]",
                     "optimizer": optimizer, "seed": seed})
            best, cum = None, 0.0
            n = min(budget, n_trials - written)
            for i in range(n):
                config = task.space.sample(rng)
                outcome = task.evaluate(config)
                cum += outcome.cost_s
                if outcome.status.value == "ok" and (best is None or outcome.objective > best):
                    best = outcome.objective
                w.write({"type": "trial", "trial": i, "config": config, "outcome": outcome.to_dict(),
                         "duplicate": False, "best": best, "cum_cost_s": cum, "ask_s": 0.0001, "eval_s": 0.0002,
                         "tell_s": 0.000001})
            w.write({"type": "end", "status": "completed", "error": None, "n_trials": n})
            written += n
    size = sum(p.stat().st_size for p in root.rglob("*.jsonl"))
    return n_cases, size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100_000)
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--keep", default=None, help="write the records here and keep them")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp) / "runs"
        t0 = time.perf_counter()
        n_cases, size = synthesize(root, args.trials, args.budget)
        print(f"synthesized {args.trials} trials in {n_cases} case files ({size / 1e6:.1f} MB) "
              f"in {time.perf_counter() - t0:.1f} s")
        proc = subprocess.run([sys.executable, "-c", MEASURE, str(root)], capture_output=True, text=True, check=True)
        r = json.loads(proc.stdout)
        print(f"aggregate (read + group + metrics + statistics): {r['aggregate_s']:.2f} s for {r['trials']} trials "
              f"in {r['cases']} cases, {r['tables']} table(s)")
        print(f"render (github markdown): {r['render_s']:.2f} s; imports: {r['import_s']:.2f} s")
        print(f"peak RSS: {r['peak_rss_mb']:.0f} MB (after imports: {r['rss_after_imports_mb']:.0f} MB)")
        ok = r["aggregate_s"] < 5.0 and r["peak_rss_mb"] < 300
        print("target (< 5 s, < 300 MB):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
