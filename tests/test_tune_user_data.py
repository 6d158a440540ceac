"""Accuracy on your own data (``tune --data`` as an ``.npz`` or ``module:function``), the drop against
fp32 that ``--max-accuracy-drop`` caps, and the rule that a lower precision without measured accuracy
is searched only when allowed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deploybench.live.inputs import parse_inputs
from deploybench.live.profiler import Measurement
from deploybench.live.user_data import UserDataError, is_user_data, load_user_data, predict_all
from deploybench.tuning import TuneInputError, TuneSpec, tune

FIXTURES = Path(__file__).parent / "fixtures"


def test_data_is_read_by_input_name_or_as_a_tuple_and_checked_against_the_inputs(tmp_path, monkeypatch):
    specs = parse_inputs(["ids:seq=8:int64", "mask:seq=8:int64"])
    path = tmp_path / "d.npz"
    np.savez(path, ids=np.ones((5, 12), np.int32), mask=np.ones((5, 12), np.int64), labels=np.arange(5))
    inputs, labels = load_user_data(str(path), specs)  # the dynamic axis may have any length
    assert [a.dtype for a in inputs] == [np.int64, np.int64] and labels.tolist() == [0, 1, 2, 3, 4]
    np.savez(path, ids=np.ones((5, 12)), other=np.ones((5, 12)))
    with pytest.raises(UserDataError, match="no array for the input 'mask'"):
        load_user_data(str(path), specs)
    image = parse_inputs(["image:3,8,8"])
    np.savez(path, x=np.zeros((4, 3, 8, 9), np.float32))
    with pytest.raises(UserDataError, match=r"shape \(4, 3, 8, 9\); expected \(samples, 3, 8, 8\)"):
        load_user_data(str(path), image)
    (tmp_path / "my_data.py").write_text("import numpy as np\n"
                                         "def load():\n    return np.zeros((6, 3, 8, 8)), np.arange(6) % 2\n"
                                         "def broken():\n    raise OSError('no such bucket')\n")
    inputs, labels = load_user_data("my_data:load", image, str(tmp_path), limit=4)
    assert inputs[0].shape == (4, 3, 8, 8) and inputs[0].dtype == np.float32 and len(labels) == 4
    with pytest.raises(UserDataError, match="OSError: no such bucket"):
        load_user_data("my_data:broken", image, str(tmp_path))
    assert is_user_data("a.npz") and is_user_data("pkg.mod:fn") and not is_user_data("/data/imagenette")


def test_predictions_keep_the_deployments_batch_size():
    sizes = []

    def predict(x):
        sizes.append(len(x))
        return np.stack([x[:, 0], 1 - x[:, 0]], axis=1)

    x = (np.arange(10) % 2).astype(np.float32).reshape(10, 1)
    preds = predict_all(predict, [x], 4)
    assert sizes == [4, 4, 4] and preds.tolist() == [1 if v == 0 else 0 for v in x[:, 0]]


class _DataDevice:
    """A fake device whose int8 deployments get ``wrong_int8`` of the samples wrong (fp32: none)."""

    def __init__(self, wrong_int8: float) -> None:
        self.wrong_int8 = wrong_int8
        self.requests = []

    def __call__(self, request):
        self.requests.append(request)
        config = request.config
        with np.load(request.data_dir) as data:
            labels = data["labels"]
        preds = labels.copy()
        if config["precision"].startswith("int8"):
            preds[: int(round(self.wrong_int8 * len(preds)))] += 1
        p95 = (1.0 + config["batch_size"]) * (0.5 if config["precision"].startswith("int8") else 1.0)
        metrics = {"latency_p95_ms": p95, "throughput_sps": 1000.0 * config["batch_size"] / p95, "memory_peak_mb": 10.0,
                   "precision_executed": config["precision"], "predictions": preds.tolist(),
                   "accuracy": float(np.mean(preds == labels)), "accuracy_source": "measured on your data"}
        return Measurement("ok", metrics=metrics, cost_s=1.0)


def _spec(data: str, **kw) -> TuneSpec:
    base = dict(models=("resnet18",), data_dir=data, p95_ms=10.0, objective="throughput", backends=("onnxruntime",),
                precisions=("fp32", "int8_static"), batch_sizes=(1, 4), threads=(1,), optimizer="random", budget=8,
                candidates=2, repeats=2, min_feasible_rate=0.3)
    base.update(kw)
    return TuneSpec(**base)


def test_the_accuracy_drop_is_measured_against_fp32_and_capped(tmp_path):
    data = tmp_path / "mine.npz"
    np.savez(data, x=np.random.default_rng(0).standard_normal((50, 3, 224, 224)).astype(np.float32),
             labels=np.arange(50) % 10)
    lines: list[str] = []
    loose = tune(_spec(str(data)), tmp_path / "loose", profile_fn=_DataDevice(0.04), on_line=lines.append)
    assert loose.status == "recommended" and loose.recommended.config["precision"] == "int8_static"
    assert any("50 samples" in line and "accuracy is top-1" in line for line in lines)
    trial = next(t for t in loose.trials if t["config"].get("runtime", "").endswith("int8_static")
                 or t["config"].get("precision") == "int8_static")
    assert trial["outcome"]["metrics"]["accuracy_drop"] == pytest.approx(0.04)
    assert "predictions" not in trial["outcome"]["metrics"]  # compared, not stored per trial
    reference = json.loads((tmp_path / "loose" / "reference.json").read_text())
    assert reference["resnet18"]["accuracy"] == 1.0
    tight = tune(_spec(str(data), max_accuracy_drop=0.02), tmp_path / "tight", profile_fn=_DataDevice(0.04),
                 on_line=lambda s: None)
    assert tight.status == "recommended" and tight.recommended.config["precision"] == "fp32"
    np.savez(data, x=np.zeros((5, 3, 32, 32), np.float32))
    with pytest.raises(TuneInputError, match=r"expected \(samples, 3, 224, 224\)"):
        tune(_spec(str(data)), tmp_path / "bad", profile_fn=_DataDevice(0.0), on_line=lambda s: None)
    with pytest.raises(TuneInputError, match="--max-accuracy-drop needs --data"):
        tune(_spec(None, max_accuracy_drop=0.01), tmp_path / "none", profile_fn=_DataDevice(0.0), on_line=lambda s: None)


def test_without_measured_accuracy_lower_precisions_are_searched_only_when_allowed(tmp_path):
    class Device(_DataDevice):
        def __call__(self, request):
            self.requests.append(request)
            p95 = 1.0 + request.config["batch_size"]
            return Measurement("ok", metrics={"latency_p95_ms": p95, "throughput_sps": 1000.0 / p95,
                                              "memory_peak_mb": 10.0}, cost_s=1.0)

    device = Device(0.0)
    lines: list[str] = []
    result = tune(_spec(None), tmp_path / "strict", profile_fn=device, on_line=lines.append)
    assert {r.config["precision"] for r in device.requests} == {"fp32"}
    assert any("left out of the search: onnxruntime int8_static" in line and "--allow-unmeasured-accuracy" in line
               for line in lines)
    device = Device(0.0)
    tune(_spec(None, allow_unmeasured_accuracy=True), tmp_path / "allowed", profile_fn=device, on_line=lambda s: None)
    assert "int8_static" in {r.config["precision"] for r in device.requests}
    assert result.status == "recommended"


@pytest.mark.live
def test_a_custom_model_on_its_own_data_measures_the_int8_drop(tmp_path, monkeypatch, quiet_live):
    """A digits CNN with its held-out digits (a module:function): fp32 top-1 is measured once, every
    trial's drop against it, int8_static is calibrated on the data, and a tightened cap refuses int8."""
    import onnxruntime as ort

    monkeypatch.chdir(FIXTURES)
    spec = TuneSpec(models=("tune_factories:digits_cnn_small",), input_shape="1,8,8", data_dir="tune_factories:digits_data",
                    p95_ms=50.0, objective="throughput", backends=("onnxruntime",), precisions=("fp32", "int8_static"),
                    batch_sizes=(32,), threads=(1,), optimizer="random", budget=3, candidates=2, repeats=1,
                    min_feasible_rate=0.05)
    result = tune(spec, tmp_path / "run", on_line=lambda s: None)
    reference = json.loads((tmp_path / "run" / "reference.json").read_text())["tune_factories:digits_cnn_small"]
    assert 0.5 < reference["accuracy"] < 1.0
    int8 = [t for t in result.trials if t["outcome"]["status"] == "ok"
            and (t["config"].get("precision") == "int8_static" or t["config"].get("runtime", "").endswith("int8_static"))]
    assert int8, [t["config"] for t in result.trials]
    metrics = int8[0]["outcome"]["metrics"]
    drop = metrics["accuracy_drop"]
    assert drop == pytest.approx(reference["accuracy"] - metrics["accuracy"]) and drop > 0
    slot = next(p for p in (tmp_path / "run" / "artefacts").iterdir() if p.name.endswith("int8_static-auto"))
    assert "samples of your data" in json.loads((slot / "artefact.json").read_text())["artefact"]["calibration"]
    # the independent check: the int8 artefact's top-1 on the same samples, with ONNX Runtime directly
    data = np.load(tmp_path / "run" / "data.npz")
    art = json.loads((slot / "artefact.json").read_text())["artefact"]["path"]
    session = ort.InferenceSession(art, providers=["CPUExecutionProvider"])
    top1 = float(np.mean(session.run(None, {session.get_inputs()[0].name: data["input"]})[0].argmax(1) == data["labels"]))
    assert top1 == pytest.approx(metrics["accuracy"])
    from dataclasses import replace

    tight = tune(replace(spec, max_accuracy_drop=drop / 2), tmp_path / "tight", on_line=lambda s: None)
    assert tight.status == "recommended" and tight.recommended.config["precision"] == "fp32"


def test_the_python_function_takes_module_objects_factories_and_the_flags_names(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))
    from tune_factories import TokenClassifier, token_classifier

    device = _DataDevice(0.0)

    def measure(request):
        p95 = 1.0 + request.config["batch_size"]
        device.requests.append(request)
        return Measurement("ok", metrics={"latency_p95_ms": p95, "throughput_sps": 1000.0 / p95,
                                          "memory_peak_mb": 10.0}, cost_s=1.0)

    common = dict(input=["input_ids:seq=8:int64:0..1000", "attention_mask:seq=8:int64"], p95_ms=10.0,
                  objective="throughput", backends=("onnxruntime",), precisions=("fp32",), batch_sizes=(1,),
                  threads=(1,), optimizer="random", budget=1, candidates=1, repeats=2, min_feasible_rate=0.3)
    result = tune(TokenClassifier(), tmp_path / "object", profile_fn=measure, on_line=lambda s: None, **common)
    saved = tmp_path / "object" / "modules" / "TokenClassifier.pt"
    assert saved.exists() and result.recommended.config["model"] == "TokenClassifier"
    assert device.requests[0].source["kind"] == "module" and device.requests[0].source["inputs"][0]["name"] == "input_ids"
    result = tune(token_classifier, tmp_path / "factory", profile_fn=measure, on_line=lambda s: None, **common)
    assert result.recommended.config["model"] == "tune_factories:token_classifier"
    with pytest.raises(TuneInputError, match="lambda or a local function"):
        tune(lambda: None, tmp_path / "lambda", profile_fn=measure, on_line=lambda s: None, **common)
