"""The live workers: ``python -m deploybench.live.worker {prepare|measure} --result FILE --workdir DIR``
with a JSON request on stdin.

``prepare`` builds one deployment artefact (:mod:`deploybench.live.artefacts`) and reports its
description and the preparation peak memory. ``measure`` runs in a fresh process under the device
profile's memory limit, loads *only* the artefact, and measures it: warm-up, timed iterations (every
latency kept), the deployment footprint (resident-set high-water mark above the idle worker's
baseline, reset right before the load) and the CPU time other work used meanwhile (the contention
guard). Results are written atomically after every stage (``"final": true`` on the last write), so a
parent that has to kill a hung worker still learns how far it got.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from typing import Any

__all__ = ["main", "run_measure", "run_prepare"]


class _Recorder:
    """Accumulates stages/metrics and writes the (partial or final) result file atomically."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.stages: dict[str, float] = {}
        self.metrics: dict[str, Any] = {}
        self.info: dict[str, Any] = {}
        self.extra: dict[str, Any] = {}

    def write(self, status: str = "crashed", error: dict | None = None, final: bool = False) -> None:
        data = {"status": status, "metrics": self.metrics, "stages": self.stages, "info": self.info,
                "error": error, "final": final, **self.extra}
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, default=str, allow_nan=False)
        os.replace(tmp, self.path)

    def stage(self, name: str, t0: float) -> None:
        self.stages[name] = round(time.perf_counter() - t0, 4)
        self.write()


def _debug(action: str | None) -> None:
    """Test-only failure injection, honoured only with DEPLOYBENCH_TESTING=1."""
    if not action or os.environ.get("DEPLOYBENCH_TESTING") != "1":
        return
    if action == "hang":
        while True:
            time.sleep(60)
    if action == "abort":
        os.abort()
    if action == "exit":
        os._exit(3)
    if action == "raise":
        raise RuntimeError("debug: injected failure")
    if action == "oom":
        raise MemoryError("debug: injected out of memory")


def _fail(rec: _Recorder, stage: str, exc: BaseException) -> None:
    from .errors import classify_error

    kind = classify_error(exc)
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-4:])
    rec.write("crashed", error={"kind": kind, "message": f"[{stage}] {type(exc).__name__}: {str(exc)[:1500]}\n"
                                                         f"{tb[-1500:]}"}, final=True)


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for mod in ("torch", "torchvision", "onnxruntime", "onnx", "openvino"):
        m = sys.modules.get(mod)
        if m is not None:
            out[mod] = getattr(m, "__version__", "?")
    return out


# -- prepare ------------------------------------------------------------------------------------------------
def run_prepare(req: dict, rec: _Recorder, workdir: str) -> None:
    stage = "import"
    try:
        _debug(req.get("_debug_prepare"))
        t = time.perf_counter()
        import torch  # noqa: F401 - the runtimes belong to the baseline, as in the measuring worker
        import torchvision  # noqa: F401

        if req["family"] in ("onnx", "openvino"):
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        if req["family"] == "openvino":
            import nncf  # noqa: F401
            import openvino  # noqa: F401
        from .artefacts import prepare_artefact
        from .memory import CpuMemory

        mem = CpuMemory()
        mem.set_baseline()
        rec.stages["import_s"] = round(time.perf_counter() - t, 4)
        t = time.perf_counter()

        stage = "prepare"
        info = prepare_artefact(req["model"], req["family"], req["precision"], workdir,
                                weights=req.get("weights", "auto"), allow_test_models=bool(req.get("allow_test_models")),
                                source=req.get("source"), calibration_data=req.get("calibration_data"))
        rec.stages["prepare_s"] = round(time.perf_counter() - t, 4)
        peak, _ = mem.peak_mb()
        info["memory_prepare_peak_mb"] = None if peak is None else round(peak, 2)
        info["versions"] = _versions()
        rec.extra["artefact"] = info
        rec.write("ok", final=True)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a classified record
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        _fail(rec, stage, exc)


# -- measure ------------------------------------------------------------------------------------------------
def run_measure(req: dict, rec: _Recorder, workdir: str) -> None:
    from .contention import BurstGuard, CpuWindow
    from .profiler import ProfileRequest

    request = ProfileRequest.from_dict(req)
    artefact = dict(req.get("artefact") or {})
    config = dict(request.config)
    sys_path = (request.source or {}).get("sys_path")
    if sys_path and sys_path not in sys.path:  # a user's factory module: a pickled module needs it to load
        sys.path.insert(0, sys_path)
    stage = "import"
    try:
        _debug(request._debug_action)
        t = time.perf_counter()
        from .loading import import_runtime, load_artefact
        from .memory import CpuMemory, GpuMemory

        runtime = import_runtime(config, request.device)
        gpu = None
        if runtime.device == "cuda":
            gpu = GpuMemory(0)
            gpu.set_baseline()
        cpu_mem = CpuMemory()
        rec.info["versions"] = _versions()
        rec.stage("import_s", t)

        stage = "load"
        cpu_mem.set_baseline()  # the high-water mark restarts here: only the artefact and its runtime count
        t = time.perf_counter()
        loaded = load_artefact(artefact, config, runtime, workdir)
        rec.metrics.update(loaded.metrics)
        rec.metrics["device_executed"] = loaded.device_executed
        rec.stage("load_s", t)
        if loaded.compile_fn is not None:
            stage = "compile"
            t = time.perf_counter()
            loaded.compile_fn()
            rec.metrics.update(loaded.metrics)  # compile_mode, compile_graphs, compile_graph_breaks
            rec.stage("compile_s", t)
            peak, _ = cpu_mem.peak_mb()
            rec.metrics["memory_compile_peak_mb"] = None if peak is None else round(peak, 2)
            cpu_mem.restart_peak()  # the footprint: what stays resident after compiling, plus the run
        if gpu is not None:
            gpu.sample()

        stage = "measure"
        from .timing import TimingPlan, latency_metrics, run_timed

        threshold = request.early_stop_threshold_ms
        plan = TimingPlan(
            warmup_min_iters=request.warmup_min_iters, warmup_max_iters=request.warmup_max_iters,
            warmup_time_s=request.warmup_time_s, warmup_max_time_s=request.warmup_max_time_s,
            min_iters=request.min_iters, max_iters=request.max_iters, measure_time_s=request.measure_time_s,
            measure_max_time_s=request.measure_max_time_s, early_stop_ms=threshold,
            early_stop_min_iters=request.early_stop_min_iters,
        )
        window = CpuWindow(request.max_other_cores)
        bursts = BurstGuard(enabled=window.threshold < (os.cpu_count() or 1))

        def disturbed() -> bool:
            reading = window.reading()
            return (reading is not None and reading.contaminated) or bool(bursts.verdict()["disturbed"])

        result = run_timed(loaded.step, loaded.timed_call, plan,
                           on_timed=(lambda i: gpu.sample()) if gpu is not None else None, disturbed=disturbed,
                           on_latency=bursts.iteration)
        reading = window.reading()
        burst = bursts.verdict()
        contention = reading.to_dict() if reading is not None else None
        if contention is not None:
            contention["average_contaminated"] = contention["contaminated"]
            contention["bursts"] = burst
            contention["contaminated"] = bool(contention["contaminated"] or burst["disturbed"])
            if contention["contaminated"]:
                contention["reason"] = burst["reason"] if not reading.contaminated else (
                    f"average: other work kept {reading.other_cores:.2f} cores busy (threshold {reading.threshold:g})")
        rec.metrics["contention"] = contention
        rec.stages["warmup_s"] = round(result.warmup_s, 4)
        rec.stages["measure_s"] = round(result.measure_s, 4)
        rec.extra["latencies_ms"] = [round(v, 4) for v in result.latencies_ms]
        batch = int(config["batch_size"])
        rec.metrics.update(n_warmup_iters=result.n_warmup, n_timed_iters=len(result.latencies_ms),
                           early_stop_threshold_ms=threshold)
        if runtime.device == "cuda" and loaded.device_executed == "cuda" and gpu is not None:
            peak, source = gpu.peak_mb()
            rec.metrics.update(memory_kind="gpu_device_delta", memory_baseline_mb=gpu.baseline_mb)
        else:
            peak, source = cpu_mem.peak_mb()
            rec.metrics.update(memory_kind="cpu_rss_hwm_delta", memory_baseline_mb=cpu_mem.baseline_mb)
        rec.metrics["memory_source"] = source
        if result.disturbed:
            rec.write("disturbed", final=True)
            return
        if result.early_stopped:
            rec.metrics.update(early_stop_estimate_ms=result.early_stop_estimate_ms)
            rec.write("early_stopped", final=True)
            return
        rec.metrics.update(latency_metrics(result.latencies_ms, batch))
        rec.metrics["memory_peak_mb"] = peak
        rec.write()

        stage = "accuracy"
        t = time.perf_counter()
        from .user_data import is_user_data

        if request.data_dir and is_user_data(request.data_dir):
            _user_data_accuracy(request, loaded, artefact, config, rec)
        elif request.data_dir:
            from .models import accuracy_for, testing_enabled

            accuracy, source_acc, weights_name = accuracy_for(config["model"], config["precision"], config["backend"])
            if artefact.get("weights_source") != "pretrained" and not testing_enabled():
                rec.info["accuracy_note"] = "data given but weights are random: documented accuracy used"
            else:
                accuracy, n = _measured_accuracy(request, loaded, config)
                source_acc, weights_name = "measured", artefact.get("weights_source")
                rec.metrics["accuracy_images"] = n
            rec.metrics["accuracy"] = accuracy
            rec.metrics["accuracy_source"] = source_acc
            rec.metrics["accuracy_weights"] = weights_name
            rec.metrics["accuracy_unknown"] = 1.0 if accuracy is None else 0.0
        # without data the documented accuracy is a lookup in torchvision's weight tables, done by the
        # profiler: importing torchvision here (~680 MB resident) would count against the device's memory
        # of an ONNX Runtime deployment that never needs it
        rec.stages["accuracy_s"] = round(time.perf_counter() - t, 4)
        rec.write("ok", final=True)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a classified record
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        _fail(rec, stage, exc)


def _user_data_accuracy(request: Any, loaded: Any, artefact: dict, config: dict, rec: _Recorder) -> None:
    """Top-1 classes of the deployment on the user's samples (:mod:`deploybench.live.user_data`); with
    labels also its top-1 accuracy. The caller compares the classes with the fp32 model's (agreement and
    the accuracy drop). Runs after the footprint was taken: the data does not count as deployment memory."""
    import numpy as np

    from .inputs import inputs_of
    from .user_data import load_user_data, predict_all

    inputs, labels = load_user_data(request.data_dir, inputs_of(artefact), (request.source or {}).get("sys_path"))
    preds = predict_all(loaded.predict, inputs, int(config["batch_size"]))
    rec.metrics["predictions"] = preds.tolist()
    rec.metrics["accuracy_samples"] = int(len(preds))
    if labels is not None:
        rec.metrics["accuracy"] = round(float(np.mean(preds == labels)), 6)
        rec.metrics["accuracy_source"] = "measured on your data (top-1 against its labels)"
    else:
        rec.metrics["accuracy_source"] = "measured on your data (agreement with fp32, compared by the caller)"


def _measured_accuracy(request: Any, loaded: Any, config: dict) -> tuple[float, int]:
    from .accuracy import cached_accuracy, measure_top1, resolve_data_dir, stratified_subset
    from .models import WEIGHTS, weights_enum

    root = resolve_data_dir(request.data_dir)
    items = stratified_subset(root, request.accuracy_per_class)
    model = config["model"]
    transform = weights_enum(model if model in WEIGHTS else "resnet18").transforms()
    parts = {"model": model, "precision": config["precision"], "backend": config["backend"],
             "weights": WEIGHTS.get(model, ("", "test"))[1], "root": os.path.realpath(root),
             "per_class": request.accuracy_per_class}
    top1, n, _ = cached_accuracy(request.cache_dir, parts, items,
                                 lambda: measure_top1(loaded.predict, items, int(config["batch_size"]), transform))
    return top1, n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploybench.live.worker")
    parser.add_argument("phase", nargs="?", default="measure", choices=("prepare", "measure"))
    parser.add_argument("--result", required=True)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ..lifeline import bind_to_parent

    bind_to_parent(grace_s=5.0)  # a killed runner leaves no measuring orphan behind (it would disturb the next run)
    rec = _Recorder(args.result)
    try:
        req = json.loads(sys.stdin.read())
    except ValueError as exc:
        rec.write("crashed", error={"kind": "runtime", "message": f"bad request JSON: {exc}"}, final=True)
        return 2
    if args.phase == "prepare":
        run_prepare(req, rec, args.workdir)
    else:
        run_measure(req, rec, args.workdir)
    # The final result is on disk: leave without the interpreter's teardown. Tearing down torch and its
    # modules took ~4 s and grew the resident set by ~120 MB (mobilenet_v2, 734 -> 843 MB), which the
    # device-memory watchdog would count against a deployment that had already finished.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
