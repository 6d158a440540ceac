"""scout against its ablations and the baselines, under a budget in seconds of charged cost.

Runs every optimizer × seed through the real runner (``run_case``: budgets in seconds, fidelity
levels, the recommendation validated at full fidelity) on a multi-fidelity task, then reports:

- best feasible (full fidelity) against charged seconds: mean over seeds at a few points of the budget
  (a seed with nothing found counts the task's penalty) and a figure (``--plot``);
- charged cost to reach within 1 % (and 10 %) of the known optimum: median over the seeds that did,
  and how many did;
- share of charged cost per fidelity level, and how often a lower level's feasibility verdict on a
  configuration disagreed with its full evaluation;
- final quality, and the cost scout needed to reach each baseline's final mean best (the goal:
  at most a third of that baseline's cost);
- median ask+tell milliseconds at trial 25.

``--task edge_wide`` runs the registered wide scenario on its default shipped table; ``--wide TABLE``
runs it on any format-2 table (as ``edge_wide_custom``).
``--existing`` also runs scout, tpe and random on every single-fidelity task (analytic and replayed) at
its trial budget.
Run it under the measurement lock so it never disturbs a table recording::

    flock /tmp/deploybench-measure.lock python benchmarks/scout_report.py [--seeds 20] [--task crashy_branin_mf]
        [--optimizers scout,...] [--wide TABLE --source TABLE] [--existing] [--out DIR] [--plot]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

OPTIMIZERS = ("scout", "scout[dense=false]", "scout[orchestrator=false]", "scout[simulators=false]",
              "scout[tournament=false]", "tpe_hyperband", "tpe", "cbo", "random")
FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0)
CUSTOM_WIDE = "edge_wide_custom"


def _parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    if "[" not in text:
        return text, {}
    name, inner = text[:-1].split("[", 1)
    params = {}
    for item in inner.split(","):
        k, v = item.split("=", 1)
        params[k] = json.loads(v)
    return name, params


def _wide_plugin(table: str, source: str | None) -> Any:
    """A plugin object registering ``edge_wide_custom``: edge_wide on ``table`` (its simulator fitted on
    ``source``). A name of its own, since ``edge_wide`` is registered on the shipped format-2 tables."""
    from deploybench import TaskSpec, hookimpl
    from deploybench.device_tables.table import load_table
    from deploybench.tasks.replay_fidelity import MultiFidelityReplayTask, wide_scenario

    class Wide:
        @hookimpl
        def deploybench_register_tasks(self) -> list:
            def build(target: str) -> Any:
                return MultiFidelityReplayTask(wide_scenario(), load_table(table), target,
                                               source=load_table(source) if source else None)
            return [TaskSpec(CUSTOM_WIDE, build, targets=(table,), kind="replay")]

    return Wide()


def run_cases(task: str, optimizers: list[str], seeds: int, out: Path, wide: tuple[str, str | None] | None,
              budget: int | None = None) -> dict[str, list[Path]]:
    from deploybench.plugins import create_plugin_manager
    from deploybench.runner import Case, RunOptions, run_case

    pm = create_plugin_manager()
    if wide:
        pm.pm.register(_wide_plugin(*wide), name=CUSTOM_WIDE)
    spec = pm.get_task_spec(task)
    built = spec.build()
    target, kind = spec.default_target, built.metadata.kind
    n_trials = budget or built.default_budget
    seconds = built.default_budget_seconds
    built.close()
    paths: dict[str, list[Path]] = {}
    options = RunOptions(out_dir=str(out), overwrite=True)
    for variant in optimizers:
        name, params = _parse_variant(variant)
        for seed in range(seeds):
            case = Case(task=task, target=target, task_label=task, optimizer=name, seed=seed, budget=n_trials,
                        budget_seconds=seconds, optimizer_params=tuple(sorted(params.items())), kind=kind)
            result = run_case(case, options, pm=pm)
            if result.status != "completed":
                print(f"  {case.node_id}: {result.status} {result.error and result.error.get('message')}", file=sys.stderr)
            paths.setdefault(variant, []).append(Path(result.path))
        print(f"  ran {variant} x {seeds}", file=sys.stderr, flush=True)
    return paths


def _ask_tell_ms(path: Path, at: int = 25) -> float | None:
    from deploybench.results import read_case_file

    trials = read_case_file(path).trials
    if len(trials) < at:
        return None
    t = trials[at - 1]
    return 1000.0 * (t["ask_s"] + t["tell_s"])


def report(task: str, paths: dict[str, list[Path]], optimum: float | None, penalty: float | None,
           budget_s: float | None) -> dict:
    from deploybench.scoring.cost_figures import best_at_costs, cost_shares, cost_to_reach, disagreement, read_trace

    rows = {}
    for variant, files in paths.items():
        traces = [read_trace(p) for p in files]
        horizon = budget_s or max(t.total_cost for t in traces)
        points = [f * horizon for f in FRACTIONS]
        curve = []
        for i, _ in enumerate(points):
            values = [best_at_costs(t, [points[i] if FRACTIONS[i] < 1 else float("inf")])[0] for t in traces]
            values = [v if v is not None else penalty for v in values]
            values = [v for v in values if v is not None]
            curve.append(statistics.fmean(values) if values else None)
        finals = [best_at_costs(t, [float("inf")])[0] for t in traces]
        row: dict[str, Any] = {
            "curve": dict(zip([f"{f:g}" for f in FRACTIONS], curve)),
            "final_mean": curve[-1],
            "found": sum(v is not None for v in finals),
            "seeds": len(traces),
            "mean_cost": statistics.fmean(t.total_cost for t in traces),
            "mean_trials": statistics.fmean(t.n_trials for t in traces),
        }
        if optimum is not None:
            for tol in (0.01, 0.1):
                reach = [cost_to_reach(t, optimum, tol) for t in traces]
                done = [c for c in reach if c is not None]
                row[f"reach_{tol:g}"] = {"median_cost": statistics.median(done) if done else None, "seeds": len(done)}
        shares: dict[str, list[float]] = {}
        for t in traces:
            for level, s in cost_shares(t).items():
                shares.setdefault(level, []).append(s)
        row["cost_share"] = {k: sum(v) / len(traces) for k, v in shares.items()}
        agree: dict[str, list[int]] = {}
        for t in traces:
            for level, (n, d) in disagreement(t).items():
                a = agree.setdefault(level, [0, 0])
                a[0] += n
                a[1] += d
        row["disagreement"] = {k: (v[1] / v[0] if v[0] else None, v[0]) for k, v in agree.items()}
        ms = [m for m in (_ask_tell_ms(p) for p in files) if m is not None]
        row["ask_tell_ms_at_25"] = statistics.median(ms) if ms else None
        row["_traces"] = traces
        rows[variant] = row
    _goal(rows, penalty)
    return rows


def _goal(rows: dict, penalty: float | None) -> None:
    """Cost scout needed to reach each baseline's final mean best, against that baseline's cost."""
    from deploybench.scoring.cost_figures import cost_to_reach

    scout = rows.get("scout")
    if scout is None:
        return
    for variant, row in rows.items():
        if variant.startswith("scout") or row["final_mean"] is None:
            continue
        target = row["final_mean"]
        costs = []
        for t in scout["_traces"]:
            c = cost_to_reach(t, target, 0.0)
            costs.append(c if c is not None else float("inf"))
        median = statistics.median(costs)
        row["scout_cost_to_match"] = median if np.isfinite(median) else None
        row["scout_cost_share_of_baseline"] = (median / row["mean_cost"]) if np.isfinite(median) else None


def print_report(task: str, rows: dict, optimum: float | None) -> None:
    from tabulate import tabulate

    print(f"\n## {task}: best feasible (full fidelity) against charged cost, mean over seeds")
    table = [[v, *[_fmt(r["curve"][f"{f:g}"]) for f in FRACTIONS], f"{r['found']}/{r['seeds']}",
              f"{r['mean_cost']:.1f}", f"{r['mean_trials']:.0f}", _fmt(r["ask_tell_ms_at_25"], 2)] for v, r in rows.items()]
    print(tabulate(table, headers=["optimizer", *[f"{int(100 * f)} % of budget" for f in FRACTIONS], "found",
                                   "cost s", "trials", "ask+tell ms @25"]))
    if optimum is not None:
        print(f"\n## cost to reach the known optimum {optimum:.6g} (median over seeds that did / seeds)")
        print(tabulate([[v, _fmt(r["reach_0.01"]["median_cost"]), r["reach_0.01"]["seeds"],
                         _fmt(r["reach_0.1"]["median_cost"]), r["reach_0.1"]["seeds"],
                         _fmt(r.get("scout_cost_to_match")), _fmt(r.get("scout_cost_share_of_baseline"), 2)]
                        for v, r in rows.items()],
                       headers=["optimizer", "within 1 %: s", "seeds", "within 10 %: s", "seeds",
                                "scout s to match its final", "share of its cost"]))
    print("\n## share of charged cost per level; lower-level feasibility verdicts that full contradicted")
    print(tabulate([[v, ", ".join(f"{k} {100 * s:.0f} %" for k, s in sorted(r["cost_share"].items())),
                     ", ".join(f"{k}: {'-' if d is None else f'{100 * d:.0f} %'} of {n}" for k, (d, n) in
                               sorted(r["disagreement"].items()))] for v, r in rows.items()],
                   headers=["optimizer", "cost share", "disagreement with full"]))


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def plot(task: str, rows: dict, out: Path, penalty: float | None, budget_s: float | None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deploybench.scoring.cost_figures import best_at_costs

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for variant, row in rows.items():
        traces = row["_traces"]
        horizon = budget_s or max(t.total_cost for t in traces)
        grid = np.linspace(0, horizon, 60)
        matrix = np.array([[v if v is not None else (penalty if penalty is not None else np.nan)
                            for v in best_at_costs(t, grid)] for t in traces], dtype=float)
        ax.plot(grid, np.nanmean(matrix, axis=0), label=variant, lw=2 if variant == "scout" else 1)
    ax.set_xlabel("charged cost (s)")
    ax.set_ylabel("best feasible objective (full fidelity), mean over seeds")
    ax.set_title(f"{task}: best feasible against charged cost")
    ax.legend(fontsize=7)
    path = out / f"{task}-best-vs-cost.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def existing_tasks(seeds: int, out: Path) -> None:
    """scout, tpe and random on every single-fidelity task (analytic, and replayed on its default table)
    at its trial budget."""
    from tabulate import tabulate

    from deploybench.plugins import create_plugin_manager
    from deploybench.scoring.reading import summarize_case_file

    pm = create_plugin_manager()
    names = [n for n, s in pm.task_specs().items() if s.kind != "live" and not s.build().multi_fidelity]
    table = []
    for task in names:
        paths = run_cases(task, ["scout", "tpe", "random"], seeds, out / "existing", None)
        for variant, files in paths.items():
            summaries = [summarize_case_file(p) for p in files]
            bests = [s.best if s.best is not None else s.penalty for s in summaries]
            bests = [b for b in bests if b is not None]
            regret = [abs(s.known_optimum - b) for s, b in zip(summaries, bests) if s.known_optimum is not None]
            table.append([task, variant, _fmt(statistics.fmean(bests) if bests else None),
                          _fmt(statistics.median(bests) if bests else None),
                          _fmt(statistics.fmean(regret) if regret else None),
                          f"{sum(s.best is not None for s in summaries)}/{len(summaries)}",
                          _fmt(statistics.fmean(s.n_wasted / max(1, s.n_trials) for s in summaries), 2)])
    print("\n## single-fidelity tasks at their trial budgets (over seeds; nothing found = the task's penalty)")
    print(tabulate(table, headers=["task", "optimizer", "mean best", "median best", "mean regret", "found", "waste"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--task", default="crashy_branin_mf")
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS),
                        help="comma list; parameters in brackets, e.g. scout[dense=false]")
    parser.add_argument("--wide", metavar="TABLE", help=f"run edge_wide on this format-2 table (as task {CUSTOM_WIDE}); "
                        "a shipped format-2 table is `--task edge_wide` (its default target)")
    parser.add_argument("--source", metavar="TABLE", help="the other device's table the simulator level is fitted on")
    parser.add_argument("--existing", action="store_true", help="also run scout, tpe, random on every single-fidelity task")
    parser.add_argument("--out", default="benchmarks/results/scout")
    parser.add_argument("--plot", action="store_true", help="write the best-vs-cost figure into --out")
    args = parser.parse_args(argv)
    from deploybench.device_tables.table import TableError, resolve_table

    try:  # a shipped table's name (cpu, edge) or a path
        args.wide, args.source = (str(resolve_table(t)) if t else None for t in (args.wide, args.source))
    except TableError as exc:
        parser.error(str(exc))
    if args.source and not args.wide:
        parser.error("--source needs --wide (the shipped edge_wide fits its simulator on the other shipped table)")
    optimizers = _split(args.optimizers)
    task = CUSTOM_WIDE if args.wide else args.task
    out = Path(args.out)
    started = time.perf_counter()
    paths = run_cases(task, optimizers, args.seeds, out / "runs", (args.wide, args.source) if args.wide else None)
    from deploybench.plugins import create_plugin_manager

    pm = create_plugin_manager()
    if args.wide:
        pm.pm.register(_wide_plugin(args.wide, args.source), name=CUSTOM_WIDE)
    built = pm.get_task_spec(task).build()
    optimum, penalty, budget_s = built.metadata.known_optimum, built.metadata.penalty, built.default_budget_seconds
    rows = report(task, paths, optimum, penalty, budget_s)
    print(f"# scout report: {task}, {args.seeds} seeds, budget {budget_s} s of charged cost "
          f"(trial cap {built.default_budget})")
    print_report(task, rows, optimum)
    if args.plot:
        print(f"\nfigure: {plot(task, rows, out, penalty, budget_s)}")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{task}.json").write_text(json.dumps({v: {k: x for k, x in r.items() if k != "_traces"}
                                                  for v, r in rows.items()}, indent=2, default=str))
    if args.existing:
        existing_tasks(args.seeds, out)
    print(f"\nwall time {time.perf_counter() - started:.0f} s")
    return 0


def _split(text: str) -> list[str]:
    """Comma-separated variants, commas inside brackets kept."""
    items, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += ch
    if current.strip():
        items.append(current.strip())
    return items


if __name__ == "__main__":
    raise SystemExit(main())
