"""Does a recorded table test what the suite is for? The goals of the device-table rework, measured.

For a table (shipped name or path):

1. crash structure: share of the grid's configurations that crashed or timed out, per kind (goal: at
   least 15 %, from real causes: oom, unsupported, timeout);
2. discrimination per accuracy scenario: how many configurations tie the optimum (goal: at most 3) and
   how often random search at the scenario's budget reaches the optimum over 20 seeds (goal: at most
   25 %); random search is the built-in ``random`` optimizer driven through the replay task (complete
   tables only);
3. deployment footprint against parameter bytes per model x backend x precision;
4. latency CV of repeats near the caps (goal: at most 0.05);
5. recording cost: median per measurement and per configuration, and the whole grid.

    .venv/bin/python benchmarks/table_goals.py cpu [--seeds 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys

from tabulate import tabulate

from deploybench.table_report import table_summary
from deploybench.tables import load_table, resolve_table
from deploybench import OptimizerContext


def random_search_hits(table_name: str, scenario: str, seeds: int) -> dict:
    """Share of seeds where the ``random`` optimizer's best feasible objective equals the optimum."""
    from deploybench import EvalContext
    from deploybench.plugins import create_plugin_manager
    from deploybench.tasks.replay import build_replay_task

    task = build_replay_task(scenario, table_name)
    optimum = task.metadata.known_optimum
    cls = create_plugin_manager().get_optimizer_class("random")
    hits, bests = 0, []
    for seed in range(seeds):
        opt = cls(OptimizerContext(task.space, objective=task.objective, constraints=task.constraints,
                                   budget=task.default_budget, seed=seed, family_param="model"))
        best = None
        feasible_found = False
        for trial in range(task.default_budget):
            config = opt.ask()
            outcome = task.evaluate(config, EvalContext(seed=seed, trial=trial, feasible_found=feasible_found))
            opt.tell(config, outcome)
            if outcome.status.value == "ok" and outcome.objective is not None:
                feasible_found = True
                if best is None or task.objective.better(outcome.objective, best):
                    best = outcome.objective
        bests.append(best)
        hits += best is not None and optimum is not None and abs(best - optimum) <= 1e-9 * max(1.0, abs(optimum))
    found = [b for b in bests if b is not None]
    return {"seeds": seeds, "hit_optimum": hits, "hit_share": hits / seeds,
            "mean_best": sum(found) / len(found) if found else None, "found": len(found), "optimum": optimum}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("table", help="shipped table name or path")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    table = load_table(resolve_table(args.table))
    s = table_summary(table)
    out = {"table": s["name"], "grid": s["grid"], "crash_structure": s["crash_structure"], "cost": s["cost"],
           "memory": s["memory"], "scenarios": []}
    for sc in s["scenarios"]:
        item = {"scenario": sc["scenario"], "optimum": sc["optimum"], "optimum_ties": sc["optimum_ties"],
                "best_config": sc["best_config"], "latency_cv_near_cap": sc["latency_cv_near_cap"],
                "pass_speed_levels": sc["pass_speed_levels"]}
        if sc["objective"]["metric"] == "accuracy" and s["grid"]["complete"] and sc["optimum"] is not None:
            item["random_search"] = random_search_hits(args.table, sc["scenario"], args.seeds)
        out["scenarios"].append(item)
    per_config = s["cost"]["per_configuration_median_s"]
    out["cost"]["grid_estimate_h"] = round(per_config * s["grid"]["configurations"] / 3600, 2) if per_config else None
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    cs = s["crash_structure"]
    print(f"table {s['name']}: {s['grid']['measured']}/{s['grid']['configurations']} configurations measured, "
          f"{s['measurements']} measurements")
    print(f"1. crash structure: {100 * cs['share_of_grid']:.1f} % of the measured grid crashed or timed out (goal >= 15 %): "
          + ", ".join(f"{k} {100 * v['share_of_grid']:.1f} %" for k, v in cs["per_kind"].items()))
    rows = []
    for item in out["scenarios"]:
        rs = item.get("random_search") or {}
        cv = item["latency_cv_near_cap"]
        rows.append([item["scenario"], item["optimum"], item["optimum_ties"],
                     f"{rs['hit_optimum']}/{rs['seeds']}" if rs else "-",
                     f"{rs['mean_best']:.4f}" if rs.get("mean_best") is not None else "-",
                     f"{cv['median']} (max {cv['max']}, {cv['configs']} configs)" if cv["configs"] else "-"])
    print("2./4. discrimination and noise near the caps (goals: ties <= 3, random hits <= 25 %, CV <= 0.05)")
    print(tabulate(rows, headers=["scenario", "optimum", "ties", "random hits optimum", "random mean best",
                                  "latency CV near cap (median)"]))
    print("   the same noise split: the machine's speed level per recording pass (median ratio of a pass's repeats to")
    print("   their configuration's median; passes are hours or sessions apart), and the CV left within a pass")
    print(tabulate([[i["scenario"], ", ".join(f"{p}: {v}" for p, v in i["pass_speed_levels"]["levels"].items()) or "-",
                     i["pass_speed_levels"]["cv_within_pass_median"]] for i in out["scenarios"]],
                   headers=["scenario", "speed level per pass", "CV within a pass (median)"]))
    print("3. deployment footprint against parameter bytes (MB)")
    print(tabulate([[r["model"], r["backend"], r["precision"], r["deploy_mb_median"], r["param_mb"], r["artefact_mb"],
                     r["prepare_peak_mb"]] for r in s["memory"]],
                   headers=["model", "backend", "precision", "footprint", "parameters", "artefact", "prep. peak"]))
    c = out["cost"]
    print(f"5. recording cost: {c['total_s']:.0f} s charged so far; median {c['per_measurement_median_s']} s per "
          f"measurement, {per_config} s per configuration; whole grid at that rate: {c['grid_estimate_h']} h")
    return 0


if __name__ == "__main__":
    sys.exit(main())
