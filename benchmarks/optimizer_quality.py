"""Optimizer quality and speed: every task, every built-in optimizer and adapter, beside the TBA paper's Table 3.

Three measurements, each runnable alone (``--part``) so a long sweep can run in pieces and be
printed together afterwards (``--from-json``):

- ``branin``: crashy_branin at budgets 10, 15, 20, 25, 30, 40, 50 (seeds 0..19): mean best feasible
  objective [95 % bootstrap CI] (a seed that found nothing counts as the task's penalty, the worst
  feasible value), waste (crashed, timed-out or infeasible share), success rate, duplicates; beside
  the paper's Table 3 and the figures measured before the optimizers v2 work (budget 30).
- ``tasks``: crash_cliff, hierarchical_rosenbrock and the deployment scenarios (replaying the shipped
  ``cpu`` table) at their default budgets, plus crashy_branin at 30: the same columns and a
  Wilcoxon signed-rank test of each optimizer against random (paired by seed, Holm-corrected over
  the optimizers compared on each task).
- ``speed``: median ask+tell milliseconds at trials 25 and 100 (budget 100, 3 seeds; crashy_branin, or the
  task named by ``--speed-task``, e.g. ``edge_wide``: the deployment space with every runtime knob).
- ``cost``: the analytic tasks under a budget in seconds of ``cost_s`` (as ``--budget-seconds``):
  random, ``cbo_plus`` and ``cbo_plus`` with ``cost_aware=True`` (expected improvement per second).

Every run records its own wall time, so the table also says what the sweep cost per optimizer.

    flock /tmp/deploybench-measure.lock python benchmarks/optimizer_quality.py --part branin --out r/branin.json
    flock /tmp/deploybench-measure.lock python benchmarks/optimizer_quality.py --part tasks --out r/tasks.json
    flock /tmp/deploybench-measure.lock python benchmarks/optimizer_quality.py --part speed --out r/speed.json
    python benchmarks/optimizer_quality.py --from-json r/branin.json r/tasks.json r/speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from deploybench import OptimizerContext

BUDGETS = (10, 15, 20, 25, 30, 40, 50)
OPTIMIZERS = ("random", "tba", "tba_tpe", "tba_tpe_plus", "tpe", "cbo", "cbo_plus", "smac", "nevergrad")
TASKS = ("crashy_branin", "crash_cliff", "hierarchical_rosenbrock", "edge_tight", "server_throughput",
         "ultra_low_budget")
SPEED_TRIALS = (25, 100)
#: budgets in seconds of modelled cost (about 20 trials of random search; the trial budget is 40) for the
#: cost-aware comparison
COST_BUDGETS = {"crashy_branin": 60.0, "hierarchical_rosenbrock": 40.0, "crash_cliff": 50.0}
COST_VARIANTS = (("random", {}), ("cbo_plus", {}), ("cbo_plus", {"cost_aware": True}))
PAPER_TABLE3 = {  # the TBA paper (Lysenstøen 2026), Table 3: best feasible objective / waste, 10 seeds
    "tba_tpe": {10: (-5.83, 34), 15: (-5.54, 25), 20: (-3.18, 30), 25: (-2.29, 28), 30: (-2.05, 30), 40: (-1.57, 26), 50: (-1.45, 23)},
    "tba": {10: (-5.65, 40), 15: (-4.71, 32), 20: (-4.62, 27), 25: (-3.68, 28), 30: (-2.93, 27), 40: (-3.95, 24), 50: (-2.66, 20)},
    "tpe": {10: (-7.29, 54), 15: (-2.59, 42), 20: (-4.19, 40), 25: (-2.14, 35), 30: (-1.97, 31), 40: (-1.38, 30), 50: (-1.15, 29)},
    "random": {10: (-8.44, 65), 15: (-6.37, 66), 20: (-5.17, 63), 25: (-4.12, 64), 30: (-4.41, 67), 40: (-2.98, 63), 50: (-2.56, 66)},
}
BEFORE_V2 = {  # crashy_branin, budget 30, 20 seeds, measured before the optimizers v2 work: best / waste / wall s
    "tba_tpe_plus": (-2.01, 22, 244.6), "tba_tpe": (-2.15, 36, 4.2), "tpe": (-2.39, 32, 10.4),
    "tba": (-3.39, 21, 0.2), "random": (-4.28, 67, 0.2), "cbo": (-2.34, 36, 233.3),
}


def run_one(job: tuple) -> dict:
    """One case: ask → evaluate → tell for ``budget`` trials (and, with ``seconds``, until the
    evaluations have cost that many seconds, as ``--budget-seconds`` does); best feasible, waste,
    step times."""
    from deploybench.plugins import create_plugin_manager
    from deploybench.task import EvalContext

    task_name, name, budget, seed, *extra = job
    params, seconds = (list(extra) + [{}, None][len(extra):])[:2]
    pm = create_plugin_manager()
    task = pm.get_task_spec(task_name).build()
    opt = pm.get_optimizer_class(name)(OptimizerContext(task.space, objective=task.objective,
                                                        constraints=task.constraints, budget=budget, seed=seed,
                                                        family_param=task.metadata.family_param), **params)
    best, wasted, keys, step_ms, spent = None, 0, [], [], 0.0
    t_start = time.perf_counter()
    for i in range(budget):
        if seconds is not None and spent >= seconds:
            break
        t0 = time.perf_counter()
        config = opt.ask()
        t1 = time.perf_counter()
        task.space.validate(config)
        outcome = task.evaluate(config, EvalContext(seed=seed, trial=i))
        t2 = time.perf_counter()
        opt.tell(config, outcome)
        step_ms.append((t1 - t0 + time.perf_counter() - t2) * 1000)
        spent += outcome.cost_s
        keys.append(task.space.key(config))
        if outcome.feasible:
            best = outcome.objective if best is None or task.objective.better(outcome.objective, best) else best
        else:
            wasted += 1
    label = name + "".join(f"[{k}={v}]" for k, v in sorted(params.items()))
    return {"task": task_name, "optimizer": label, "budget": budget, "seed": seed, "best": best,
            "seconds": seconds, "spent_s": spent, "trials": len(keys),
            "penalty": task.metadata.penalty, "direction": task.objective.direction,
            "waste": wasted / max(1, len(keys)),
            "duplicates": len(keys) - len(set(keys)), "wall_s": time.perf_counter() - t_start,
            "ms": {str(t): step_ms[t - 1] for t in SPEED_TRIALS if len(step_ms) >= t and seconds is None}}


def jobs_for(part: str, names: list[str], seeds: int, budgets: list[int], tasks: list[str],
             speed_task: str = "crashy_branin") -> list[tuple]:
    from deploybench.plugins import create_plugin_manager

    if part == "branin":
        return [("crashy_branin", n, b, s) for n in names for b in budgets for s in range(seeds)]
    if part == "tasks":
        pm = create_plugin_manager()
        return [(t, n, pm.get_task_spec(t).build().default_budget, s) for t in tasks if t != "crashy_branin"
                for n in names for s in range(seeds)]
    if part == "cost":
        return [(t, n, 40, s, params, seconds) for t, seconds in COST_BUDGETS.items()
                for n, params in COST_VARIANTS for s in range(seeds)]
    return [(speed_task, n, max(SPEED_TRIALS), s) for n in names for s in range(min(seeds, 3))]


# -- reporting --------------------------------------------------------------------------------------------
def bootstrap_ci(values: list[float], n: int = 2000, seed: int = 0) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    means = np.random.default_rng(seed).choice(np.asarray(values), size=(n, len(values)), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def scored(r: dict) -> float:
    """Best feasible objective, the task's penalty when the seed found nothing."""
    return r["best"] if r["best"] is not None else r["penalty"]


def summary_cells(rs: list[dict]) -> list[str]:
    values = [scored(r) for r in rs]
    lo, hi = bootstrap_ci(values)
    found = sum(r["best"] is not None for r in rs)
    return [f"{statistics.mean(values):.3g} [{lo:.3g}, {hi:.3g}]", f"{found}/{len(rs)}",
            f"{100 * statistics.mean(r['waste'] for r in rs):.0f}%",
            f"{statistics.mean(r['duplicates'] for r in rs):.1f}", f"{sum(r['wall_s'] for r in rs):.1f}"]


def versus_random(rows: list[dict], cases: list[tuple[str, int]], names: list[str]) -> dict[tuple, str]:
    """Wilcoxon signed-rank (two-sided, paired by seed) of each optimizer against random on each
    (task, budget), Holm-corrected over the optimizers compared on that task (the family of one
    leaderboard table): 'better', 'worse' or 'tie' with the adjusted p."""
    from scipy.stats import wilcoxon

    from deploybench.scoring.statistics import holm

    tests = []
    for task, budget in cases:
        def losses(name: str) -> dict[int, float]:
            rs = [r for r in rows if r["task"] == task and r["budget"] == budget and r["optimizer"] == name]
            sign = -1.0 if rs and rs[0]["direction"] == "maximize" else 1.0
            return {r["seed"]: sign * scored(r) for r in rs}

        base = losses("random")
        for name in names:
            if name == "random":
                continue
            mine = losses(name)
            common = sorted(set(base) & set(mine))
            if len(common) < 5:
                continue
            d = np.array([mine[s] - base[s] for s in common])
            p = 1.0 if np.all(d == 0) else float(wilcoxon(d, zero_method="wilcox").pvalue)
            tests.append(((task, budget, name), p, float(np.median(d)) or float(np.mean(d))))
    out = {}
    for case in cases:
        family = [t for t in tests if t[0][:2] == case]
        for (key, _, centre), ph in zip(family, holm([p for _, p, _ in family]) if family else []):
            verdict = "tie" if ph >= 0.05 or centre == 0 else ("better" if centre < 0 else "worse")
            out[key] = f"{verdict} (p={ph:.2g})"
    return out


def report(rows: list[dict], names: list[str], wall: float) -> None:
    from tabulate import tabulate

    cost_rows = [r for r in rows if r.get("seconds")]
    rows = [r for r in rows if not r.get("seconds")]

    present = [n for n in names if any(r["optimizer"] == n for r in rows)]
    branin = [r for r in rows if r["task"] == "crashy_branin" and r["budget"] in BUDGETS and not r["ms"].get("100")]
    if branin:
        table = []
        for b in sorted({r["budget"] for r in branin}):
            for n in present:
                rs = [r for r in branin if r["optimizer"] == n and r["budget"] == b]
                if not rs:
                    continue
                paper = PAPER_TABLE3.get(n, {}).get(b)
                before = BEFORE_V2.get(n) if b == 30 else None
                table.append([b, n, *summary_cells(rs), f"{paper[0]:.2f} / {paper[1]}%" if paper else "-",
                              f"{before[0]:.2f} / {before[1]}% / {before[2]} s" if before else "-"])
        print("## crashy_branin by budget (optimum -0.498)\n")
        print(tabulate(table, headers=["B", "optimizer", "best feasible mean [95% CI]", "success", "waste", "dups",
                                       "wall s", "paper Table 3 (obj / waste)", "before v2 (obj / waste / wall)"],
                       tablefmt="github"))
    cases = sorted({(r["task"], r["budget"]) for r in rows if not r["ms"].get("100")
                    and (r["task"] != "crashy_branin" or r["budget"] == 30)}, key=lambda c: TASKS.index(c[0])
                   if c[0] in TASKS else 99)
    verdicts = versus_random(rows, cases, present)
    table = []
    for task, budget in cases:
        for n in present:
            rs = [r for r in rows if r["task"] == task and r["budget"] == budget and r["optimizer"] == n
                  and not r["ms"].get("100")]
            if rs:
                table.append([task, budget, n, *summary_cells(rs), verdicts.get((task, budget, n), "-")])
    if table:
        print("\n## every task at its default budget, against random (Wilcoxon signed-rank paired by seed, Holm per task)\n")
        print(tabulate(table, headers=["task", "B", "optimizer", "best feasible mean [95% CI]", "success", "waste",
                                       "dups", "wall s", "vs random"], tablefmt="github"))
    for speed_task in dict.fromkeys(r["task"] for r in rows if r["ms"].get("100")):
        speed = []
        for n in present:
            cells = [n]
            for t in SPEED_TRIALS:
                ms = [r["ms"][str(t)] for r in rows if r["optimizer"] == n and r["task"] == speed_task
                      and str(t) in r["ms"]]
                cells.append(f"{statistics.median(ms):.1f}" if ms else "-")
            speed.append(cells)
        print(f"\n## median ask+tell milliseconds ({speed_task})\n")
        print(tabulate(speed, headers=["optimizer", *[f"trial {t}" for t in SPEED_TRIALS]], tablefmt="github"))
    if cost_rows:
        table = []
        labels = list(dict.fromkeys(r["optimizer"] for r in cost_rows))
        for task in dict.fromkeys(r["task"] for r in cost_rows):
            for label in labels:
                rs = [r for r in cost_rows if r["task"] == task and r["optimizer"] == label]
                if rs:
                    table.append([task, f"{rs[0]['seconds']:.0f}", label, *summary_cells(rs)[:3],
                                  f"{statistics.mean(r['trials'] for r in rs):.1f}"])
        print("\n## budget in seconds of cost_s (--budget-seconds): does using cost help?\n")
        print(tabulate(table, headers=["task", "seconds", "optimizer", "best feasible mean [95% CI]", "success",
                                       "waste", "trials run"], tablefmt="github"))
    per_opt = {n: sum(r["wall_s"] for r in rows if r["optimizer"] == n) for n in present}
    print("\nwall seconds of optimizer + evaluation, per optimizer: "
          + ", ".join(f"{n} {s:.0f}" for n, s in per_opt.items()))
    print(f"sweep wall time: {wall:.0f} s (load average now {os.getloadavg()[0]:.2f}; other work shares the machine)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("branin", "tasks", "speed", "cost", "all"), default="all")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    parser.add_argument("--budgets", default=",".join(map(str, BUDGETS)), help="crashy_branin budgets (--part branin)")
    parser.add_argument("--tasks", default=",".join(TASKS), help="tasks of --part tasks")
    parser.add_argument("--speed-task", default="crashy_branin",
                        help="task of --part speed (edge_wide: the deployment space with every runtime knob)")
    parser.add_argument("--out", default="benchmarks/results/optimizer_quality.json")
    parser.add_argument("--from-json", nargs="+", metavar="FILE", help="print the tables of saved parts instead of running")
    args = parser.parse_args()
    names = args.optimizers.split(",")
    if args.from_json:
        saved = [json.loads(Path(f).read_text()) for f in args.from_json]
        report([r for d in saved for r in d["rows"]], names, sum(d["wall_s"] for d in saved))
        return
    from deploybench.plugins import create_plugin_manager
    from deploybench.space import closest_name

    pm = create_plugin_manager()
    known = pm.optimizer_classes()
    missing = [n for n in names if n not in known]
    if missing:
        parser.error(f"unknown optimizer(s) {', '.join(missing)}; installed: {', '.join(sorted(known))}")
    tasks = pm.task_specs()
    unknown = [t for t in args.tasks.split(",") + [args.speed_task] if t not in tasks]
    if unknown:
        close = closest_name(unknown[0], list(tasks))
        hint = f" (did you mean {close!r}?)" if close else ""
        parser.error(f"unknown task(s) {', '.join(unknown)}{hint}; registered: {', '.join(sorted(tasks))}")
    parts = ("branin", "tasks", "speed", "cost") if args.part == "all" else (args.part,)
    budgets = [int(b) for b in args.budgets.split(",")]
    jobs = [j for part in parts for j in jobs_for(part, names, args.seeds, budgets, args.tasks.split(","),
                                                    args.speed_task)]
    t0 = time.time()
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            rows = list(pool.map(run_one, jobs, chunksize=4))
    else:
        rows = [run_one(j) for j in jobs]
    wall = time.time() - t0
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "wall_s": wall, "workers": args.workers,
                                          "load": os.getloadavg()}, indent=1))
    report(rows, names, wall)


if __name__ == "__main__":
    main()
