"""Harness overhead per trial: validation, bookkeeping and the JSONL write, with random search on crashy_branin.

overhead/trial = (time of run_case for N trials − time of the bare ask → evaluate → tell loop for the
same N trials) / N. Both loops use the same optimizer and seed, so they do identical optimizer and
task work. Target: ≤ 50 µs per trial on a 2-core machine.

    python benchmarks/harness_overhead.py [--trials 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from deploybench.plugins import create_plugin_manager
from deploybench.runner import Case, RunOptions, run_case
from deploybench.task import EvalContext
from deploybench import OptimizerContext


def bare_loop(pm, n: int) -> float:
    task = pm.get_task_spec("crashy_branin").build()
    cls = pm.get_optimizer_class("random")
    opt = cls(OptimizerContext(task.space, objective=task.objective, constraints=task.constraints, budget=n, seed=0))
    t0 = time.perf_counter()
    for i in range(n):
        config = opt.ask()
        outcome = task.evaluate(config, EvalContext(seed=0, trial=i))
        opt.tell(config, outcome)
    return time.perf_counter() - t0


def harness_loop(pm, n: int, out: str) -> float:
    case = Case(task="crashy_branin", target="analytic", task_label="crashy_branin", optimizer="random", seed=0, budget=n)
    t0 = time.perf_counter()
    result = run_case(case, RunOptions(out_dir=out, overwrite=True), pm=pm)  # each repeat replaces the last
    elapsed = time.perf_counter() - t0
    assert result.status == "completed" and result.n_trials == n
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    pm = create_plugin_manager()
    bare, harness = [], []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(args.repeats):
            bare.append(bare_loop(pm, args.trials))
            harness.append(harness_loop(pm, args.trials, out))
        size = os.path.getsize(os.path.join(out, "crashy_branin/random/seed_0.jsonl"))
    n = args.trials
    overhead = [(h - b) / n * 1e6 for h, b in zip(harness, bare)]
    print(f"trials per run: {n}, repeats: {args.repeats}, load average: {os.getloadavg()[0]:.2f}")
    print(f"bare ask/evaluate/tell: {statistics.median(bare) / n * 1e6:.1f} us/trial (median)")
    print(f"through the harness:    {statistics.median(harness) / n * 1e6:.1f} us/trial (median)")
    print(f"harness overhead:       {statistics.median(overhead):.1f} us/trial (median; min {min(overhead):.1f})")
    print(f"JSONL bytes per trial:  {size / n:.0f}")


if __name__ == "__main__":
    main()
