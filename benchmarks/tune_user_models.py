"""``deploybench tune`` on models that are not the zoo's, as a new user would run it, with wall times.

Parts (all run by default; each prints a markdown table):

- ``models``: five user models end to end through the command line, each to a recommendation or a
  reason: an ONNX export whose weights sit in a side file (torchvision's MobileNetV3-Small, exported with
  ``torch.onnx.export``), a two-input model (an image and side features), a token-id classifier with a
  dynamic sequence length, a custom CNN with its own labelled data (scikit-learn's digits, a
  ``module:function``), and torchvision's ResNet-18 on OpenVINO (every precision asked; int8 by NNCF). Reports the trials spent on combinations known not to run (crashed
  ``unsupported`` or ``environment``: the goal is 0) and what was left out before the search.
- ``accuracy``: the digits CNN with its data: the accuracy drop of int8 against fp32 as measured, then
  the same run with ``--max-accuracy-drop`` tightened below that drop (int8 must be refused).
- ``regret``: the digits CNN's whole tune space measured once per configuration (the exhaustive truth
  on this machine), against the configuration tune recommended.

The models come from ``tests/fixtures/tune_factories.py``. Outputs go to ``--out`` (a temporary folder
by default); run it on a quiet machine (``flock`` the recorder's lock when a table is being recorded).

    .venv/bin/python benchmarks/tune_user_models.py [--part models,accuracy,regret] [--out DIR] [--budget 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from tabulate import tabulate

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
DEPLOYBENCH = [sys.executable, "-m", "deploybench.cli.main"]
WASTED_KINDS = ("unsupported", "environment")


def _export_mobilenet(folder: Path) -> Path:
    """torchvision's MobileNetV3-Small exported as a user would (dynamo, weights in model.onnx.data)."""
    import torch
    import torchvision

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mobilenet_v3_small.onnx"
    model = torchvision.models.mobilenet_v3_small(weights=None).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), str(path), input_names=["pixels"],
                          dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True)
    if not (folder / (path.name + ".data")).exists():  # small models may be written inline: force the side file
        import onnx

        onnx.save(onnx.load(str(path)), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=path.name + ".data", size_threshold=0)
    return path


def _tune(args: list[str], out: Path) -> dict:
    """Run ``deploybench tune`` from the fixtures folder; returns the report's figures and the wall time."""
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    proc = subprocess.run([*DEPLOYBENCH, "tune", *args, "--out", str(out)], cwd=FIXTURES, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t0
    row = {"exit": proc.returncode, "wall_s": round(wall, 1), "stderr": proc.stderr.strip().splitlines()[-1:]}
    report = out / "report.json"
    if not report.exists():
        return row
    data = json.loads(report.read_text())
    trials = data["trials"]
    wasted = [t for t in trials if ((t["outcome"].get("error") or {}).get("kind") in WASTED_KINDS)]
    rec = data.get("recommended")
    row.update(status=data["status"], message=data["message"], trials=len(trials), wasted=len(wasted),
               wasted_configs=[t["config"] for t in wasted], excluded=len(data.get("exclusions") or []),
               recommended=rec["config"] if rec else None,
               medians=rec["medians"] if rec else None, trial_records=trials)
    return row


def part_models(out: Path, budget: int, only: list[int] | None = None) -> list[dict]:
    onnx_path = _export_mobilenet(out / "exported")
    common = ["--budget", str(budget), "--candidates", "2", "--repeats", "5", "--threads", "1,2"]
    runs = [
        ("ONNX export, weights in model.onnx.data (MobileNetV3-Small)",
         [str(onnx_path), "--p95-ms", "30", "--objective", "latency", "--batch-sizes", "1,4",
          "--allow-unmeasured-accuracy"]),
        ("two inputs: image 3x64x64 + 16 features (factory)",
         ["tune_factories:two_inputs", "--input", "image:3,64,64", "--input", "features:16", "--p95-ms", "5",
          "--objective", "throughput", "--batch-sizes", "1,8,32", "--allow-unmeasured-accuracy"]),
        ("token ids, dynamic length seq=128, int64 (factory)",
         ["tune_factories:token_classifier", "--input", "input_ids:seq=128:int64:0..1000",
          "--input", "attention_mask:seq=128:int64", "--p95-ms", "10", "--objective", "throughput",
          "--batch-sizes", "1,8,32", "--allow-unmeasured-accuracy"]),
        ("custom CNN with its own labelled data (digits, module:function)",
         ["tune_factories:digits_cnn", "--input-shape", "1,8,8", "--data", "tune_factories:digits_data",
          "--max-accuracy-drop", "0.01", "--p95-ms", "5", "--objective", "throughput", "--batch-sizes", "1,8,32"]),
        ("torchvision ResNet-18 on OpenVINO, every precision (int8 through NNCF)",
         ["resnet18", "--backends", "openvino", "--p95-ms", "30", "--objective", "throughput", "--batch-sizes",
          "1,4,16", "--weights", "random", "--allow-unmeasured-accuracy"]),
    ]
    rows = []
    for i, (name, args) in enumerate(runs, 1):
        if only and i not in only:
            continue
        print(f"... {name}", file=sys.stderr)
        row = _tune(args + common, out / f"run-{i}")
        row["model"] = name
        rows.append(row)
    print(tabulate([[r["model"], r.get("status", f"exit {r['exit']}"), r.get("trials"), r.get("excluded"),
                     r.get("wasted"), _short(r.get("recommended")) or (r.get("message") or r["stderr"]),
                     r["wall_s"]] for r in rows],
                   headers=["model", "status", "trials", "left out before the search", "trials on known failures",
                            "recommended (or why not)", "wall s"], tablefmt="github"))
    return rows


def _short(config: dict | None) -> str:
    if not config:
        return ""
    return " ".join(f"{v}" for k, v in config.items() if k != "model")


def part_accuracy(out: Path, budget: int) -> list[dict]:
    # int8 only: on this small CNN fp32 is faster than either int8 on ONNX Runtime's CPU provider, so with fp32
    # in the space the cap would never be what refuses int8; the fp32 reference is measured in any case
    base = ["tune_factories:digits_cnn_small", "--input-shape", "1,8,8", "--data", "tune_factories:digits_data",
            "--p95-ms", "5", "--objective", "throughput", "--backends", "onnxruntime", "--precisions",
            "int8_static,int8_dynamic", "--batch-sizes", "32", "--threads", "1", "--budget", str(budget),
            "--candidates", "2", "--repeats", "5"]
    loose = _tune(base + ["--max-accuracy-drop", "0.05"], out / "accuracy-loose")
    reference = json.loads((out / "accuracy-loose" / "reference.json").read_text())
    fp32 = next(iter(reference.values()))["accuracy"]
    drops = {}
    for t in loose.get("trial_records", []):
        m = t["outcome"]["metrics"]
        if t["outcome"]["status"] == "ok" and m.get("accuracy_drop") is not None:
            drops[t["config"]["precision"]] = (m["accuracy"], m["accuracy_drop"])
    rec = loose.get("recommended") or {}
    drop = drops.get(rec.get("precision"), (None, None))[1]
    rows = [{"cap": 0.05, "status": loose.get("status"), "recommended": loose.get("recommended"),
             "message": loose.get("message"), "wall_s": loose["wall_s"]}]
    if drop:
        tight = _tune(base + ["--max-accuracy-drop", f"{drop / 2:.6f}"], out / "accuracy-tight")
        rows.append({"cap": round(drop / 2, 6), "status": tight.get("status"), "recommended": tight.get("recommended"),
                     "message": tight.get("message"), "wall_s": tight["wall_s"]})
    print(f"fp32 top-1 on the held-out digits: {fp32}; int8 (top-1, drop against fp32): "
          + ", ".join(f"{p} {a} ({d:+.4f})" for p, (a, d) in sorted(drops.items())) + "\n")
    print(tabulate([[r["cap"], r["status"], _short(r["recommended"]) or r["message"], r["wall_s"]] for r in rows],
                   headers=["--max-accuracy-drop", "status", "recommended (or why not)", "wall s"], tablefmt="github"))
    return rows


def part_regret(out: Path, budget: int) -> dict:
    """Every configuration of the digits CNN's tune space measured once, against tune's recommendation."""
    from deploybench.tuning import TuneSpec, tune
    from deploybench.tuning.pipeline import _exclusions, _preflight, _sources
    from deploybench.tuning.tune_task import TuneTask
    from deploybench.live.profiler import prepare

    os.chdir(FIXTURES)
    sys.path.insert(0, str(FIXTURES))
    spec = TuneSpec(models=("tune_factories:digits_cnn",), input_shape="1,8,8", p95_ms=0.5, objective="throughput",
                    batch_sizes=(1, 8, 32), threads=(1, 2), budget=budget, candidates=2, repeats=5,
                    allow_unmeasured_accuracy=True)
    t0 = time.perf_counter()
    result = tune(spec, out / "regret-tune", overwrite=True, on_line=lambda s: None)
    tune_s = time.perf_counter() - t0
    task = TuneTask(spec, _sources(spec), artefact_dir=str(out / "regret-tune" / "artefacts"))
    described = _preflight(task, prepare, lambda s: None)
    task = TuneTask(spec, _sources(spec), artefact_dir=str(out / "regret-tune" / "artefacts"),
                    exclusions=_exclusions(task, described, probe=True, on_line=lambda s: None))
    truth = []
    t0 = time.perf_counter()
    for config in task.space.grid():
        outcome = task.evaluate(config)
        truth.append((task.grid.expand(config), outcome))
    exhaustive_s = time.perf_counter() - t0
    feasible = [(c, o) for c, o in truth if o.counts_as_found and o.objective is not None]
    best_config, best = max(feasible, key=lambda t: t[1].objective) if feasible else (None, None)
    rec = result.recommended
    rec_value = next((o.objective for c, o in truth if rec and c == rec.config), None)
    row = {"configurations": len(truth), "feasible": len(feasible), "exhaustive_s": round(exhaustive_s, 1),
           "tune_s": round(tune_s, 1), "tune_trials": len(result.trials), "best": best_config,
           "best_throughput": best.objective if best else None, "recommended": rec.config if rec else None,
           "recommended_median": rec.median_objective if rec else None, "recommended_in_exhaustive": rec_value,
           "regret": (None if not (best and rec_value) else round((best.objective - rec_value) / best.objective, 4))}
    print(tabulate([[row["configurations"], row["feasible"], _short(row["best"]), row["best_throughput"],
                     _short(row["recommended"]), row["recommended_in_exhaustive"], row["regret"],
                     row["tune_trials"], row["tune_s"], row["exhaustive_s"]]],
                   headers=["configurations", "feasible", "exhaustive best", "its throughput/s", "tune's recommendation",
                            "its throughput/s (same pass)", "regret", "tune trials", "tune s", "exhaustive s"],
                   tablefmt="github"))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="models,accuracy,regret")
    parser.add_argument("--out", default=None, help="output folder (default: a new temporary folder)")
    parser.add_argument("--budget", type=int, default=10, help="tune trials per run (10)")
    parser.add_argument("--models", default=None, help="with the models part: which of the five (e.g. 2,5)")
    args = parser.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="tune-user-models-")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"outputs in {out}", file=sys.stderr)
    results = {}
    for part in args.part.split(","):
        print(f"\n## {part}\n")
        if part == "models":
            results[part] = part_models(out, args.budget, [int(v) for v in args.models.split(",")] if args.models else None)
        else:
            results[part] = {"accuracy": part_accuracy, "regret": part_regret}[part](out, args.budget)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
