"""The live profiler and the deployment tasks: fresh-worker isolation, timeouts and crashes,
memory, the device memory limit (``oom``), precisions that do not execute (``unsupported``), early
stop, label mapping, and a tiny end-to-end live run through the CLI.

Workers run the test-only ``tiny_cnn`` and ``memory_hog`` (random weights) with small timing plans so
the whole file takes a few minutes on 2 CPU cores; the torch_compile trial is the slowest part
(Inductor's C++ build, ~15 s). The contention guard is tested in test_contention.py; here its threshold
is set above the machine's cores so other work on a shared machine never makes a test redo a measurement.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys

import numpy as np
import pytest

from deploybench.live.accuracy import folder_label_indices, imagenet_wnids, measure_top1, stratified_subset
from deploybench.live.errors import classify_error
from deploybench.live.limits import MECHANISM_ENV, memory_limit_support
from deploybench.live.profiler import EARLY_STOP_VIEW, MEASUREMENT_FORMAT, Measurement, ProfileRequest, profile
from deploybench.live.probe_models import HOG_ENV
from deploybench.live.timing import TimingPlan, early_stop_index, run_timed
from deploybench.outcome import ErrorKind, Status
from deploybench.task import EvalContext
from deploybench.tasks.deployment import LiveTask, deployment_space, measurement_to_outcome, scenarios

pytestmark = pytest.mark.live

NETTE = ["n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
         "n03394916", "n03417042", "n03425413", "n03445777", "n03888605"]


@pytest.fixture
def live_env(monkeypatch, tmp_path):
    monkeypatch.setenv("DEPLOYBENCH_TESTING", "1")
    monkeypatch.setenv("DEPLOYBENCH_LIVE_DOCTOR", "0")
    monkeypatch.setenv("DEPLOYBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(HOG_ENV, raising=False)
    monkeypatch.delenv(MECHANISM_ENV, raising=False)
    # the contention guard never fires here: a threshold above the machine's cores (see test_contention.py)
    monkeypatch.setenv("DEPLOYBENCH_MAX_OTHER_CORES", str((os.cpu_count() or 1) + 1))
    return tmp_path


def _fast(config, **kw) -> ProfileRequest:
    base = dict(device="cpu", warmup_min_iters=1, warmup_max_iters=2, min_iters=3, max_iters=5, measure_time_s=0.0,
                time_limit_s=60, max_retries=0)
    base.update(kw)
    return ProfileRequest(config=config, **base)


TINY = {"model": "tiny_cnn", "backend": "pytorch_eager", "precision": "fp32", "batch_size": 4, "threads": 1}


# -- space and scenarios -------------------------------------------------------------------------------
def test_space_and_scenarios_match_the_design():
    space = deployment_space()
    assert space.names == ["model", "backend", "precision", "batch_size", "threads", "memory_format",
                           "graph_optimization"]
    assert space["model"].choices == ("resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small",
                                      "mobilenet_v3_large", "shufflenet_v2_x1_0", "googlenet", "efficientnet_b0",
                                      "regnet_y_400mf", "vit_b_16")
    assert space["precision"].choices == ("fp32", "fp16", "int8_dynamic", "int8_static")
    assert space["batch_size"].values == (1, 4, 16) and space["batch_size"].log
    # each knob is active only for the backend that has it
    assert space.active_names({"backend": "torch_compile"}) == ["model", "backend", "precision", "batch_size"]
    assert space.active_names({"backend": "pytorch_eager"}) == ["model", "backend", "precision", "batch_size",
                                                                "threads", "memory_format"]
    assert space.active_names({"backend": "onnxruntime"}) == ["model", "backend", "precision", "batch_size",
                                                              "threads", "graph_optimization"]
    assert space["memory_format"].choices == ("contiguous", "channels_last")
    assert space["graph_optimization"].choices == ("basic", "all")
    s = scenarios()
    assert (s["edge_tight"].latency_metric, s["edge_tight"].latency_cap_ms, s["edge_tight"].memory_cap_mb,
            s["edge_tight"].budget) == ("latency_p95_ms", 20.0, 512.0, 25)
    assert s["server_throughput"].objective.metric == "throughput_sps"
    assert (s["ultra_low_budget"].latency_cap_ms, s["ultra_low_budget"].budget) == (30.0, 15)


def test_plugin_registers_the_three_scenarios():
    from deploybench.plugins import create_plugin_manager

    specs = create_plugin_manager([]).task_specs()
    for name in ("edge_tight", "server_throughput", "ultra_low_budget"):
        spec = specs[name]
        assert "live" in spec.targets
        task = spec.build("live")
        assert isinstance(task, LiveTask) and task.metadata.kind == "live" and task.metadata.family_param == "model"


def test_early_stop_factor_tightens_once_feasible_found():
    task = LiveTask("edge_tight", models=("tiny_cnn",))
    assert task.request_for(TINY, EvalContext()).early_stop_threshold_ms == 100.0
    assert task.request_for(TINY, EvalContext(feasible_found=True)).early_stop_threshold_ms == 60.0


# -- pure pieces ---------------------------------------------------------------------------------------
def test_early_stop_never_fires_during_warmup():
    calls = []

    def timed(step):  # cold start: the first three calls are 50x over the threshold, then fast
        calls.append(1)
        return 5000.0 if len(calls) <= 3 else 1.0

    plan = TimingPlan(warmup_min_iters=3, warmup_max_iters=3, warmup_time_s=0, min_iters=5, max_iters=5,
                      measure_time_s=0, early_stop_ms=100.0, early_stop_min_iters=1)
    res = run_timed(lambda: None, timed, plan)
    assert not res.early_stopped and res.n_warmup == 3 and res.latencies_ms == [1.0] * 5


def test_early_stop_fires_on_timed_iterations():
    plan = TimingPlan(warmup_min_iters=1, warmup_max_iters=1, warmup_time_s=0, min_iters=50, max_iters=50,
                      measure_time_s=0, early_stop_ms=100.0, early_stop_min_iters=3)
    res = run_timed(lambda: None, lambda step: 500.0, plan)
    assert res.early_stopped and len(res.latencies_ms) == 3 and res.early_stop_estimate_ms == 500.0


@pytest.mark.parametrize("exc,stderr,kind", [
    (MemoryError(), "", "oom"),
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "", "oom"),
    (RuntimeError('"addmm_impl_cpu_" not implemented for \'Half\''), "", "unsupported"),
    (RuntimeError("[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for Conv(11)"), "",
     "unsupported"),
    (RuntimeError("backend='inductor' raised: TritonMissing: Cannot find a working triton installation"), "",
     "environment"),
    (RuntimeError("InvalidCxxCompiler: No working C++ compiler found"), "", "environment"),
    (ImportError("No module named 'onnxruntime'"), "", "environment"),
    (None, "RuntimeError: Found no NVIDIA driver on your system", "environment"),
    (TimeoutError("x"), "", "timeout"),
    (ValueError("shapes do not match"), "", "runtime"),
])
def test_classify_error(exc, stderr, kind):
    assert classify_error(exc, stderr) == kind


def test_measurement_round_trip_is_json_safe():
    m = Measurement("ok", metrics={"latency_p95_ms": 3.0, "bad": math.nan, "providers": ("CPUExecutionProvider",)},
                    cost_s=1.5, stages={"load_s": 0.1}, latencies_ms=(2.5, 3.0, 2.75), contaminated=True, attempts=3)
    d = json.loads(json.dumps(m.to_dict(), allow_nan=False))
    assert d["metrics"]["bad"] is None and d["format"] == MEASUREMENT_FORMAT == 2
    assert d["latencies_ms"] == [2.5, 3.0, 2.75] and d["contaminated"] is True and d["attempts"] == 3
    assert Measurement.from_dict(d).to_dict() == d
    old = Measurement.from_dict({"status": "ok", "metrics": {"latency_p95_ms": 3.0}})  # a format-1 line
    assert old.format == 1 and old.latencies_ms == () and not old.contaminated and old.attempts == 1


def test_measurement_to_outcome_statuses():
    task = LiveTask("edge_tight", models=("tiny_cnn",))
    feasible = {"latency_p95_ms": 5.0, "memory_peak_mb": 10.0, "accuracy": 0.7}
    assert measurement_to_outcome(task, Measurement("ok", metrics=feasible)).status is Status.OK
    slow = measurement_to_outcome(task, Measurement("early_stopped", metrics={**feasible, "latency_p95_ms": 400.0}))
    assert slow.status is Status.INFEASIBLE and slow.early_stopped
    env = measurement_to_outcome(task, Measurement("crashed", error={"kind": "environment", "message": "no gcc"},
                                                   cost_s=2.0))
    assert env.status is Status.CRASHED and env.error.kind is ErrorKind.ENVIRONMENT and env.cost_s == 2.0


def test_label_mapping_uses_imagenet_indices():
    assert [folder_label_indices(NETTE)[w] for w in NETTE] == [0, 217, 482, 491, 497, 566, 569, 571, 574, 701]
    wnids = imagenet_wnids()
    assert len(wnids) == 1000 and wnids == sorted(wnids)
    # outside ImageNette, a folder is looked up in the full list (n03888605 is ImageNet's 'parallel bars')
    assert folder_label_indices(["n01443537", "n03888257", "n03888605"]) == {
        "n01443537": 1, "n03888257": 701, "n03888605": 702}
    with pytest.raises(ValueError, match="not ImageNet-1K synset ids"):
        folder_label_indices(["cat", "dog"])


def _image_folder(root, counts):
    from PIL import Image

    for wnid, n in counts.items():
        os.makedirs(root / wnid, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (40, 30), color=(i * 20 % 255, 10, 200)).save(root / wnid / f"img_{i:03d}.png")
    return root


def test_stratified_subset_and_top1_with_a_stub_model(tmp_path):
    root = _image_folder(tmp_path / "val", {"n01440764": 5, "n02102040": 3, "n03888605": 4})
    items = stratified_subset(str(root), per_class=50)
    assert [lbl for _, lbl in items] == [0] * 3 + [217] * 3 + [701] * 3  # same count per class, mapped
    assert stratified_subset(str(root), per_class=50) == items  # deterministic
    truth = iter([lbl for _, lbl in items])

    def oracle(batch):  # a stub model that is right on every real image (padding rows are ignored)
        out = np.zeros((len(batch), 1000), dtype=np.float32)
        for row in range(len(batch)):
            out[row, next(truth, 999)] = 1.0
        return out

    top1, n = measure_top1(oracle, items, batch_size=4, transform=lambda img: np.zeros((3, 8, 8), np.float32))
    assert (top1, n) == (1.0, 9)


# -- real workers -------------------------------------------------------------------------------------
def test_cpu_profile_measures_latency_and_memory(live_env):
    m = profile(_fast(TINY, latency_cap_ms=20.0))
    assert m.status == "ok", m.error
    assert m.metrics["memory_peak_mb"] > 0 and m.metrics["memory_kind"] == "cpu_rss_hwm_delta"
    assert m.metrics["memory_prepare_peak_mb"] is not None and m.metrics["artefact_mb"] > 0
    assert m.metrics["device_executed"] == "cpu" and m.metrics["threads_used"] == 1
    assert m.metrics["precision_executed"] == "fp32" and m.metrics["memory_format"] == "contiguous"
    assert m.metrics["latency_p95_ms_per_sample"] == pytest.approx(m.metrics["latency_p95_ms"] / 4)
    assert m.metrics["accuracy_source"] == "documented_fp32" and m.metrics["accuracy_unknown"] == 0.0
    assert len(m.latencies_ms) == m.metrics["n_timed_iters"] >= 3  # every timed iteration is kept
    assert m.metrics["contention"]["window_s"] > 0 and not m.contaminated and m.attempts == 1
    assert set(m.stages) >= {"import_s", "load_s", "prepare_s", "spawn_teardown_s", "warmup_s", "measure_s"}
    assert m.cost_s >= sum(m.stages.values()) - 1e-3  # stages are rounded to 0.1 ms
    assert "memory_limit_mechanism" not in m.metrics  # no device memory limit asked for


def test_live_early_stop_reveals_only_what_it_measured(live_env):
    # a cap no configuration meets: the median of the first 3 timed iterations is already above 5x the cap
    m = profile(_fast(TINY, latency_cap_ms=1e-4, min_iters=50, max_iters=50, max_retries=1))
    assert m.status == "early_stopped", m.error
    assert m.metrics["n_timed_iters"] == len(m.latencies_ms) == 3
    assert set(m.metrics) <= set(EARLY_STOP_VIEW) and m.metrics["early_stop_estimate_ms"] > 5e-4
    assert "latency_p95_ms" not in m.metrics and "memory_peak_mb" not in m.metrics and "accuracy" not in m.metrics
    assert early_stop_index(m.latencies_ms, 5e-4, 3) == 3  # the rule replay applies to recorded timings
    outcome = measurement_to_outcome(LiveTask("edge_tight", models=("tiny_cnn",)), m)
    assert outcome.status is Status.INFEASIBLE and outcome.early_stopped and outcome.objective is None


def test_hang_times_out_and_the_runner_lives_on(live_env):
    cache = str(live_env / "artefacts")  # prepared once, so the 3 s limit below applies to the measuring worker

    def fast(request):
        return profile(_fast(request.config, artefact_cache=cache))

    def hanging(request):
        return profile(dataclasses.replace(_fast(request.config, artefact_cache=cache), _debug_action="hang",
                                           time_limit_s=3.0))

    assert LiveTask("edge_tight", models=("tiny_cnn",), profile_fn=fast).evaluate(TINY, EvalContext()).ran
    task = LiveTask("edge_tight", models=("tiny_cnn",), profile_fn=hanging)
    out = task.evaluate(TINY, EvalContext())
    assert out.status is Status.TIMEOUT and out.error.kind is ErrorKind.TIMEOUT and out.cost_s >= 3.0
    assert "measuring worker exceeded the 3 s limit" in out.error.message
    ok = LiveTask("edge_tight", models=("tiny_cnn",), profile_fn=fast)
    assert ok.evaluate(TINY, EvalContext()).ran
    # a hung preparation (export, quantisation) is a timeout too, named as such
    prep = profile(_fast(TINY, _debug_prepare="hang", time_limit_s=3.0))
    assert prep.status == "timeout" and "prepare worker exceeded the 3 s limit" in prep.error["message"]
    assert prep.cost_s >= 3.0


def test_abort_is_a_crash_with_the_signal(live_env):
    m = profile(_fast(TINY, _debug_action="abort"))
    assert m.status == "crashed" and m.error["kind"] == "runtime" and "SIGABRT" in m.error["message"]


def test_debug_actions_need_the_testing_switch(live_env, monkeypatch):
    monkeypatch.setenv("DEPLOYBENCH_TESTING", "0")
    m = profile(_fast({**TINY, "model": "mobilenet_v2", "batch_size": 1}, _debug_action="abort", min_iters=1))
    assert m.status == "ok"


def test_missing_data_dir_is_an_environment_error(live_env):
    m = profile(_fast(TINY, data_dir=str(live_env / "nowhere")))
    assert m.status == "crashed" and m.error["kind"] == "environment" and "does not exist" in m.error["message"]


def test_measured_accuracy_on_a_wnid_image_folder(live_env):
    _image_folder(live_env / "data" / "val", {w: 3 for w in NETTE[:4]})
    m = profile(_fast(TINY, data_dir=str(live_env / "data"), accuracy_per_class=2))
    assert m.status == "ok", m.error
    assert m.metrics["accuracy_source"] == "measured" and m.metrics["accuracy_images"] == 8
    assert 0.0 <= m.metrics["accuracy"] <= 1.0


@pytest.mark.parametrize("backend", ["torch_compile", "onnxruntime"])
def test_other_backends_run(live_env, backend):
    config = {**TINY, "backend": backend}
    if backend == "torch_compile":
        config.pop("threads")
    m = profile(_fast(config, time_limit_s=110))
    assert m.status == "ok", m.error
    if backend == "onnxruntime":
        assert m.metrics["providers"][0] == "CPUExecutionProvider"
    else:
        assert m.metrics["compile_graphs"] >= 1 and m.metrics["compile_mode"] == "default"
        assert m.stages["compile_s"] > 0 and m.metrics["memory_compile_peak_mb"] is not None


# -- the device memory limit -------------------------------------------------------------------------------
# A measuring worker's own baseline (Python, the CUDA build of torch and torchvision: ~670 MB resident here,
# ~290 MB of it anonymous) counts against the device's memory like a runtime on a device would, so the
# limit must sit above it: memory_hog then allocates 20 MB (fits) or 1536 MB (cannot fit) per forward pass.
DEVICE_MB = 1024.0
HOG = {"model": "memory_hog", "backend": "pytorch_eager", "precision": "fp32", "batch_size": 1, "threads": 1}


def _auto_mechanism() -> str:
    return memory_limit_support()["selected"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="memory limits are tested on Linux")
@pytest.mark.parametrize("mechanism", ["auto", "watchdog"])
def test_a_worker_over_the_device_memory_is_an_oom_crash(live_env, monkeypatch, mechanism):
    if mechanism != "auto":
        monkeypatch.setenv(MECHANISM_ENV, mechanism)
    expected = _auto_mechanism() if mechanism == "auto" else mechanism
    monkeypatch.setenv(HOG_ENV, "1536")
    m = profile(_fast(HOG, memory_limit_mb=DEVICE_MB, device_profile="edge"))
    assert m.status == "crashed" and m.error["kind"] == "oom", m.error
    assert "exceeded the device memory (1024 MB)" in m.error["message"] and expected in m.error["message"]
    assert m.metrics["memory_limit_mechanism"] == expected and m.metrics["memory_limit_mb"] == DEVICE_MB
    assert m.metrics["device_profile"] == "edge"
    assert "measure_s" not in m.stages  # killed before it finished timing
    outcome = measurement_to_outcome(LiveTask("server_throughput", models=("memory_hog",)), m)
    assert outcome.status is Status.CRASHED and outcome.error.kind is ErrorKind.OOM

    monkeypatch.setenv(HOG_ENV, "20")  # the same configuration under the limit runs
    ok = profile(_fast(HOG, memory_limit_mb=DEVICE_MB, device_profile="edge"))
    assert ok.status == "ok", ok.error
    assert ok.metrics["memory_limit_mechanism"] == expected
    assert 15.0 <= ok.metrics["memory_peak_mb"] < DEVICE_MB  # the footprint above the idle worker: the 20 MB


@pytest.mark.parametrize("config,executed,reason", [
    # ONNX Runtime's CPU provider has no fp16 convolutions: it inserts casts and runs them in fp32
    ({**TINY, "backend": "onnxruntime", "precision": "fp16"}, "fp32", "ran in fp16"),
    # PyTorch's dynamic quantisation converts nn.Linear only: a tiny share of a CNN's FLOPs
    ({**TINY, "precision": "int8_dynamic"}, "fp32", "nn.Linear layers only"),
    ({**TINY, "precision": "int8_static"}, "none", "no quantizable definition of tiny_cnn"),
])
def test_a_precision_that_does_not_execute_is_unsupported(live_env, config, executed, reason):
    m = profile(_fast(config))
    assert m.status == "crashed" and m.error["kind"] == "unsupported", m.error
    assert reason in m.error["message"]
    assert m.metrics["precision_executed"] == executed  # what would have run, never recorded as the asked precision
    assert "measure_s" not in m.stages and m.stages["prepare_s"] > 0  # decided before any measuring worker
    if config["precision"] == "fp16":
        assert "0 % of the compute ran in fp16" in m.error["message"] and "executed: {'fp32': 1.0}" in m.error["message"]
        assert m.metrics["precision_shares"] == {"fp32": 1.0}
    if config["precision"] == "int8_dynamic":
        share = m.metrics["int8_compute_share"]
        said = re.search(r"([0-9.]+) % of tiny_cnn's FLOPs would run in int8", m.error["message"])
        assert 0.0 < share < 0.05 and said and float(said.group(1)) == pytest.approx(100 * share, abs=0.1)
    outcome = measurement_to_outcome(LiveTask("edge_tight", models=("tiny_cnn",)), m)
    assert outcome.status is Status.CRASHED and outcome.error.kind is ErrorKind.UNSUPPORTED


def test_cli_live_run_end_to_end(live_env, monkeypatch):
    from deploybench.cli.main import main
    from deploybench.results import read_case_file

    out = live_env / "results"
    code = main(["run", "-o", "random", "-t", "edge_tight[live]", "--task-param", "edge_tight.models=tiny_cnn",
                 "--task-param", "edge_tight.device_profile=edge", "--budget", "3", "--out", str(out), "-q"])
    assert code == 0
    files = list(out.rglob("seed_0.jsonl"))
    assert len(files) == 1
    assert files[0].parent.parent.name == "edge_tight@live[device_profile=edge,models=tiny_cnn]"
    case = read_case_file(files[0])
    assert case.header["task_params"] == {"device_profile": "edge", "models": ["tiny_cnn"]}
    trials = case.trials
    assert len(trials) == 3 and case.end is not None
    for t in trials:
        o = t["outcome"]
        assert o["cost_s"] > 0
        assert o["status"] in ("ok", "infeasible", "crashed", "timeout")
