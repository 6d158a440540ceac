"""Regret of ``deploybench tune`` recommendations against the exhaustive truth of a recorded table.

For each tune run folder (``benchmarks/results/tune-*`` by default), the truth is the best objective
over every configuration of the run's space recorded in the table of the same device profile, judged
by the median of the table's clean repeats against the run's caps. The recommendation's regret is
the truth minus the table's median for the recommended configuration (0 when tune found the best;
the recommendation is also checked feasible in the table). Prints a markdown table.

    .venv/bin/python benchmarks/tune_regret.py [--table recordings/v2/cpu.jsonl.gz] [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import median

from tabulate import tabulate

from deploybench.device_tables.table import load_table

METRIC = {"throughput": "throughput_sps", "latency": "latency_p95_ms", "accuracy": "accuracy"}


def _median(reps: list[dict], name: str) -> float | None:
    values = [float(m["metrics"][name]) for m in reps if m.get("status") == "ok" and m["metrics"].get(name) is not None]
    return median(values) if values else None


def _feasible(reps: list[dict], spec: dict) -> bool:
    ok = [m for m in reps if not m.get("contaminated")]
    if not ok or sum(m.get("status") == "ok" for m in ok) * 2 <= len(ok):
        return False
    for name, cap in (("latency_p95_ms", spec.get("p95_ms")), ("latency_p99_ms", spec.get("p99_ms")),
                      ("memory_peak_mb", spec.get("memory_mb"))):
        value = _median(ok, name)
        if cap is not None and (value is None or value > cap):
            return False
    return True


def regret(run: Path, table) -> dict:
    spec = json.loads((run / "spec.json").read_text())["spec"]
    report = json.loads((run / "report.json").read_text())
    metric = report["objective"]["metric"]
    sign = 1.0 if report["objective"]["direction"] == "maximize" else -1.0
    models, backends = set(spec["models"]), set(spec.get("backends") or [])
    batches = set(spec.get("batch_sizes") or [])
    truth, best_key, n = None, None, 0
    for key in table.grid_keys():
        config = table.configs.get(key) or dict(json.loads(key))
        if config["model"] not in models or (backends and config["backend"] not in backends) \
                or (batches and config["batch_size"] not in batches):
            continue
        reps = [m for m in table.measurements.get(key, []) if not m.get("contaminated")]
        if not reps:
            continue
        n += 1
        value = _median(reps, metric)
        if _feasible(reps, spec) and value is not None and (truth is None or sign * value > sign * truth):
            truth, best_key = value, key
    rec = report.get("recommended")
    row = {"run": run.name, "space_in_table": n, "truth": truth, "truth_config": best_key, "status": report["status"]}
    if rec:
        key = table.space.key(rec["config"])
        reps = [m for m in table.measurements.get(key, []) if not m.get("contaminated")]
        table_value = _median(reps, metric)
        row.update(recommended=key, measured=rec["median_objective"], table_value=table_value,
                   feasible_in_table=_feasible(reps, spec) if reps else None)
        if truth is not None and table_value is not None:
            row["regret"] = sign * (truth - table_value)
            row["regret_pct"] = 100.0 * row["regret"] / abs(truth)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("--table", default="recordings/v2/cpu.jsonl.gz")
    args = parser.parse_args()
    runs = args.runs or sorted(Path("benchmarks/results").glob("tune-*"))
    table = load_table(args.table)
    rows = [regret(r, table) for r in runs if (r / "report.json").exists()]
    def short(key: str | None) -> str:
        return "-" if not key else " ".join(str(v) for k, v in json.loads(key) if k != "model")

    print(tabulate([[r["run"], r["space_in_table"], r["status"], short(r.get("recommended")), r.get("measured"),
                     r.get("table_value"), r.get("feasible_in_table"), r["truth"], short(r["truth_config"]),
                     None if r.get("regret_pct") is None else f"{r['regret_pct']:.1f} %"] for r in rows],
                   headers=["run", "configs in table", "status", "recommended", "tune median", "table median",
                            "feasible in table", "table optimum", "optimum config", "regret"], tablefmt="github"))


if __name__ == "__main__":
    main()
