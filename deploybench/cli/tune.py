"""``deploybench tune MODEL ... --p95-ms 20 --memory-mb 512``: tune your model's deployment on this machine.

The command parses, calls :func:`deploybench.tuning.tune` and prints; the library does the work.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..exit_codes import ExitCode
from .arguments import add_device_options, csv_list

__all__ = ["add_parser", "run"]


def add_parser(sub: Any, pm: Any) -> None:
    p = sub.add_parser(
        "tune", help="tune the deployment of your own model under your caps, with a recommendation that holds",
        description="Search backends, precisions, batch sizes, threads and runtime knobs for MODEL on this machine "
                    "(every trial a live measurement in fresh processes), then re-measure the best candidates and "
                    "recommend the best one whose feasibility holds with the stated confidence.",
        epilog="MODEL: a torchvision name (resnet18), package.module:function returning a torch.nn.Module "
               "(with --input-shape or --input), or a .onnx file. Results, report.md and the deployable artefact go to --out; "
               "exit 5 when nothing can be recommended (every measurement is kept).")
    p.add_argument("models", nargs="+", metavar="MODEL", help="model(s) to deploy (several: the model is searched too)")
    p.add_argument("--input-shape", default=None, metavar="C,H,W",
                   help="one sample's shape of a one-input float model (default 3,224,224)")
    p.add_argument("--input", action="append", default=None, dest="inputs", metavar="NAME:SHAPE[:DTYPE[:LOW..HIGH]]",
                   help="one named input, repeated for several: e.g. input_ids:seq=128:int64:0..30522 "
                        "(seq=128: a dynamic axis measured at 128; dtypes float32, float16, int64, int32, uint8, "
                        "bool); an ONNX file's inputs are read from the graph, --input gives their symbolic sizes")
    caps = p.add_argument_group("caps (at least one)")
    caps.add_argument("--p95-ms", type=float, default=None, help="p95 latency per batch, ms")
    caps.add_argument("--p99-ms", type=float, default=None, help="p99 latency per batch, ms")
    caps.add_argument("--memory-mb", type=float, default=None, help="deployment memory footprint, MB")
    caps.add_argument("--min-throughput", type=float, default=None, metavar="SPS", help="minimum samples per second")
    p.add_argument("--objective", default="auto", help="auto (accuracy when documented, else throughput), accuracy, "
                                                      "throughput or latency")
    add_device_options(p)
    space = p.add_argument_group("space (default: the suite's deployment grid)")
    space.add_argument("--backends", type=csv_list(), default=None, help="pytorch_eager,torch_compile,onnxruntime,openvino (default: all; openvino where installed)")
    space.add_argument("--precisions", type=csv_list(), default=None, help="fp32,fp16,int8_dynamic,int8_static")
    space.add_argument("--batch-sizes", type=csv_list(int), default=None, help="e.g. 1,4,16")
    space.add_argument("--threads", type=csv_list(int), default=None, help="e.g. 1,2 (default: 1..device threads)")
    search = p.add_argument_group("search and recommendation")
    search.add_argument("--optimizer", default=None, help="default: the best built-in on the published leaderboard")
    search.add_argument("--budget", type=int, default=25, help="trials (default 25)")
    search.add_argument("--budget-seconds", type=float, default=None, help="also stop after this much measured cost")
    search.add_argument("--seed", type=int, default=0)
    search.add_argument("--candidates", type=int, default=3, help="top feasible trials re-measured (default 3)")
    search.add_argument("--repeats", type=int, default=5, help="fresh re-measurements per candidate (default 5)")
    search.add_argument("--confidence", type=float, default=0.9, help="confidence of the feasibility bound (0.9)")
    search.add_argument("--min-feasible-rate", type=float, default=0.5,
                        help="the lower bound of P(feasible) a recommendation needs (0.5)")
    p.add_argument("--data", default=None, metavar="DATA",
                   help="your data, for measured accuracy and int8 calibration: an .npz (one array per input, "
                        "optional 'labels') or package.module:function returning them; or an ImageFolder of "
                        "ImageNet synset folders. Top-1 against the labels, else agreement with the fp32 model")
    p.add_argument("--max-accuracy-drop", type=float, default=None, metavar="SHARE",
                   help="with --data: the most accuracy a deployment may lose against fp32 (e.g. 0.01)")
    p.add_argument("--allow-unmeasured-accuracy", action="store_true",
                   help="also search (and recommend) lower precisions whose accuracy is neither measured nor "
                        "documented (left out by default)")
    p.add_argument("--weights", default="auto", choices=("auto", "pretrained", "random"))
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"), help="where float work runs (cpu)")
    p.add_argument("--time-limit", type=float, default=120.0, help="hard limit per worker, seconds (120)")
    p.add_argument("--out", default="tune-results", help="output folder (default tune-results)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run in --out (recorded trials are kept)")
    mode.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, pm: Any) -> int:
    from ..errors import UsageError
    from ..tuning.recommendation import RecommendationRule
    from ..reporting import format_value, short_config
    from ..tuning import DEFAULT_TUNE_OPTIMIZER, TuneInputError, TuneSpec, tune
    from .doctor import require_live_dependencies

    require_live_dependencies("deploybench tune")
    spec = TuneSpec(
        models=tuple(args.models), input_shape=args.input_shape,
        inputs=tuple(args.inputs) if args.inputs else None, p95_ms=args.p95_ms, p99_ms=args.p99_ms,
        memory_mb=args.memory_mb, min_throughput_sps=args.min_throughput, objective=args.objective,
        device_profile=args.device_profile, device_memory_mb=args.device_memory_mb, device_threads=args.device_threads,
        backends=tuple(args.backends) if args.backends else None,
        precisions=tuple(args.precisions) if args.precisions else None,
        batch_sizes=tuple(args.batch_sizes) if args.batch_sizes else None,
        threads=tuple(args.threads) if args.threads else None,
        optimizer=args.optimizer or DEFAULT_TUNE_OPTIMIZER, budget=args.budget, budget_seconds=args.budget_seconds,
        seed=args.seed, candidates=args.candidates, repeats=args.repeats, confidence=args.confidence,
        min_feasible_rate=args.min_feasible_rate, data_dir=args.data, max_accuracy_drop=args.max_accuracy_drop,
        allow_unmeasured_accuracy=args.allow_unmeasured_accuracy, weights=args.weights, device=args.device,
        time_limit_s=args.time_limit, lock=args.lock)
    try:
        result = tune(spec, args.out, resume=args.resume, overwrite=args.overwrite, plugin_args=tuple(args.plugin))
    except TuneInputError as exc:
        raise UsageError(f"tune: {exc}") from None
    rule = RecommendationRule(spec.candidates, spec.repeats, spec.confidence, spec.min_feasible_rate)
    print()
    metric = result.objective.get("metric")
    if result.recommended is not None:
        rec = result.recommended
        print(f"recommended: {short_config(rec.config)}")
        spread = (f" (repeats {format_value(rec.ranges[metric][0])}..{format_value(rec.ranges[metric][1])})"
                  if metric in rec.ranges else "")
        print(f"  {metric} {format_value(rec.median_objective)}{spread}; feasible in {rec.feasible}/{rec.n} "
              f"re-measurements, P(feasible) >= {rec.lower_bound:.2f} at {spec.confidence:.0%} confidence")
        for name in ("latency_p95_ms", "latency_p99_ms", "memory_peak_mb", "throughput_sps"):
            if name in rec.medians and name != metric:
                lo, hi = rec.ranges[name]
                print(f"  {name}: {format_value(rec.medians[name])} (repeats {format_value(lo)}..{format_value(hi)})")
        roles: dict[int, list[str]] = {}
        for role, v in result.alternatives.items():
            roles.setdefault(id(v), []).append(role.replace("_", " "))
        for v in {id(v): v for v in result.alternatives.values()}.values():
            extra = "" if metric == "throughput_sps" else f", throughput {format_value(v.medians.get('throughput_sps'))}/s"
            print(f"  {' / '.join(roles[id(v)])}: {short_config(v.config)} ({metric} {format_value(v.median_objective)}, "
                  f"p95 {format_value(v.medians.get('latency_p95_ms'))} ms{extra})")
        if result.deployment:
            print(f"  artefact: {result.deployment['path']}")
        for note in result.notes:
            if note.startswith("warning:"):
                print(note)
    else:
        print(f"no recommendation: {result.message}")
    print(f"rule: {rule.describe()}")
    print(f"measurements redone by the contention guard: {result.redone}")
    print(f"report: {result.report_paths.get('markdown')}")
    return ExitCode.OK if result.ok else ExitCode.NO_RECOMMENDATION
