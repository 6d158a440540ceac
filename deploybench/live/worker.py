"""The live worker: ``python -m deploybench.live.worker --result FILE --workdir DIR`` with a
:class:`~deploybench.live.profiler.ProfileRequest` as JSON on stdin.

It measures one configuration in this fresh process and writes the result JSON to ``FILE``
(atomically, after every stage, with ``"final": true`` on the last write), so a parent that has to
kill a hung worker still learns how far it got. Stages: import, load, prepare (quantize / compile /
export), warm-up, measure, accuracy. Memory is read right after the timed iterations, so the
accuracy pass is not part of the deployment's peak.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from typing import Any

__all__ = ["main", "run_request"]


class _Recorder:
    """Accumulates stages/metrics and writes the (partial or final) result file atomically."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.stages: dict[str, float] = {}
        self.metrics: dict[str, Any] = {}
        self.info: dict[str, Any] = {}

    def write(self, status: str = "crashed", error: dict | None = None, final: bool = False) -> None:
        data = {"status": status, "metrics": self.metrics, "stages": self.stages, "info": self.info,
                "error": error, "final": final}
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, default=str, allow_nan=False)
        os.replace(tmp, self.path)

    def stage(self, name: str, t0: float) -> None:
        self.stages[name] = time.perf_counter() - t0
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


def _resolve_device(requested: str, precision: str) -> str:
    import torch

    if precision == "int8_dynamic":
        return "cpu"  # dynamic quantisation kernels exist only on the CPU
    if requested == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if requested == "cuda":
        raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False "
                           "(no CUDA-capable device or driver)")
    return "cpu"


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for mod in ("torch", "torchvision", "onnxruntime", "onnx"):
        m = sys.modules.get(mod)
        if m is not None:
            out[mod] = getattr(m, "__version__", "?")
    return out


def run_request(req: dict, rec: _Recorder, workdir: str) -> None:
    from .errors import classify_error
    from .profiler import ProfileRequest

    request = ProfileRequest.from_dict(req)
    config = dict(request.config)
    stage = "import"
    try:
        _debug(request._debug_action)
        t = time.perf_counter()
        import torch  # noqa: F401 - part of the import stage
        import torchvision  # noqa: F401

        if config.get("backend") == "onnxruntime":
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        from .backends import prepare_backend
        from .memory import CpuMemory, GpuMemory
        from .models import build_model, documented_accuracy
        from .timing import TimingPlan, latency_metrics, run_timed

        device = _resolve_device(request.device, config.get("precision", "fp32"))
        gpu = None
        if device == "cuda":
            torch.zeros(1, device="cuda")  # the CUDA context belongs to the baseline
            gpu = GpuMemory(torch.cuda.current_device())
            gpu.set_baseline()
        cpu_mem = CpuMemory()
        cpu_mem.set_baseline()
        rec.info["versions"] = _versions()
        rec.stage("import_s", t)

        stage = "load"
        t = time.perf_counter()
        model, weights_source = build_model(config["model"], request.weights, allow_test_models=request.probe)
        rec.metrics["weights_source"] = weights_source
        rec.stage("load_s", t)

        stage = "prepare"
        t = time.perf_counter()
        prepared = prepare_backend(model, config, device, workdir)
        rec.metrics.update(prepared.metrics)
        rec.metrics["device_executed"] = prepared.device_executed
        if gpu is not None:
            gpu.sample()
        rec.stage("prepare_s", t)

        stage = "measure"
        threshold = request.early_stop_threshold_ms
        plan = TimingPlan(
            warmup_min_iters=request.warmup_min_iters, warmup_max_iters=request.warmup_max_iters,
            warmup_time_s=request.warmup_time_s, warmup_max_time_s=request.warmup_max_time_s,
            min_iters=request.min_iters, max_iters=request.max_iters, measure_time_s=request.measure_time_s,
            measure_max_time_s=request.measure_max_time_s, early_stop_ms=threshold,
            early_stop_min_iters=request.early_stop_min_iters,
        )
        # the threshold applies to the scenario's metric, which is per batch
        result = run_timed(prepared.step, prepared.timed_call, plan,
                           on_timed=(lambda i: gpu.sample()) if gpu is not None else None)
        rec.stages["warmup_s"] = result.warmup_s
        rec.stages["measure_s"] = result.measure_s
        batch = int(config["batch_size"])
        rec.metrics.update(latency_metrics(result.latencies_ms, batch))
        rec.metrics.update(n_warmup_iters=result.n_warmup, n_timed_iters=len(result.latencies_ms),
                           early_stop_threshold_ms=threshold)
        if device == "cuda" and prepared.device_executed == "cuda" and gpu is not None:
            peak, source = gpu.peak_mb()
            rec.metrics.update(memory_kind="gpu_device_delta", memory_baseline_mb=gpu.baseline_mb)
        else:
            peak, source = cpu_mem.peak_mb()
            rec.metrics.update(memory_kind="cpu_rss_hwm_delta", memory_baseline_mb=cpu_mem.baseline_mb)
        rec.metrics["memory_peak_mb"] = peak
        rec.metrics["memory_source"] = source
        documented = documented_accuracy(config["model"])
        rec.metrics["accuracy_documented"] = documented
        if result.early_stopped:
            est = result.early_stop_estimate_ms
            rec.metrics.update(early_stop_estimate_ms=est)
            rec.write("early_stopped", final=True)
            return
        rec.write()

        stage = "accuracy"
        t = time.perf_counter()
        accuracy, source_acc = documented, "documented"
        if request.data_dir:
            from .models import testing_enabled

            if weights_source != "pretrained" and not testing_enabled():
                rec.info["accuracy_note"] = "data given but weights are random: documented accuracy used"
            else:
                accuracy, n = _measured_accuracy(request, prepared, config)
                source_acc = "measured"
                rec.metrics["accuracy_images"] = n
        rec.metrics["accuracy"] = accuracy
        rec.metrics["accuracy_source"] = source_acc
        rec.stages["accuracy_s"] = time.perf_counter() - t
        rec.write("ok", final=True)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a classified record
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        kind = classify_error(exc)
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-4:])
        message = f"[{stage}] {type(exc).__name__}: {str(exc)[:1500]}\n{tb[-1500:]}"
        rec.write("crashed", error={"kind": kind, "message": message}, final=True)


def _measured_accuracy(request: Any, prepared: Any, config: dict) -> tuple[float, int]:
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
                                 lambda: measure_top1(prepared.predict, items, int(config["batch_size"]), transform))
    return top1, n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploybench.live.worker")
    parser.add_argument("--result", required=True)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rec = _Recorder(args.result)
    try:
        req = json.loads(sys.stdin.read())
    except ValueError as exc:
        rec.write("crashed", error={"kind": "runtime", "message": f"bad request JSON: {exc}"}, final=True)
        return 2
    run_request(req, rec, args.workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
