"""Models that are not one image: named inputs, integer inputs, dynamic axes (``--input``).

Fast tests parse the input form and read inputs from ONNX graphs built with ``onnx.helper``; the
``live`` tests tune a token-id classifier with a dynamic sequence length and a two-input ONNX export
whose weights sit in a side file, on the CPU, with real PyTorch and ONNX Runtime.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from deploybench.live.inputs import InputSpec, InputSpecError, layout_applies, make_batch, parse_input_spec, parse_inputs
from deploybench.live.sources import SourceError, parse_model_source
from deploybench.tuning import TuneInputError, TuneSpec, tune

FIXTURES = Path(__file__).parent / "fixtures"


def test_the_input_form_parses_names_dtypes_ranges_and_dynamic_axes():
    spec = parse_input_spec("input_ids:seq=128:int64:0..30522")
    assert spec == InputSpec("input_ids", (128,), "int64", ((0, "seq"),), 0, 30522)
    assert parse_input_spec("image:3,224,224") == InputSpec("image", (3, 224, 224))
    assert parse_input_spec("x:4,seq=16:float16").dynamic == ((1, "seq"),)
    assert parse_input_spec(spec.describe()) == spec  # the description is the form a user types


@pytest.mark.parametrize("text, message", [
    ("image", "expected NAME:SHAPE"),
    ("image:3,0,4", "not a positive integer"),
    ("ids:seq=x:int64", "not a positive integer"),
    ("ids:16:int46", "did you mean 'int64'"),
    ("ids:16:int64:5", "not LOW..HIGH"),
    ("x:16:float32:0..4", "integer inputs only"),
    ("ids:16:int64:4..4", "range 4..4 is empty"),
    ("9x:16", "not an input name"),
])
def test_a_bad_input_form_says_what_is_expected(text, message):
    with pytest.raises(InputSpecError, match=message):
        parse_input_spec(text)


def test_inputs_are_declared_once_and_a_shared_axis_has_one_size():
    with pytest.raises(InputSpecError, match="more than once"):
        parse_inputs(["a:3", "a:4"])
    with pytest.raises(InputSpecError, match="'seq' has different sizes"):
        parse_inputs(["ids:seq=16:int64", "mask:seq=32:int64"])


def test_generated_batches_follow_dtypes_and_ranges_and_are_seeded():
    specs = parse_inputs(["ids:seq=8:int64:5..9", "mask:seq=8:bool", "x:3,4,4:float16"])
    ids, mask, x = make_batch(specs, 2)
    assert ids.shape == (2, 8) and ids.dtype == np.int64 and ids.min() >= 5 and ids.max() < 9
    assert mask.dtype == bool and x.dtype == np.float16 and x.shape == (2, 3, 4, 4)
    assert np.array_equal(make_batch(specs, 2)[0], ids)
    assert layout_applies(parse_inputs(["img:3,8,8"])) and not layout_applies(specs)


def _graph(path: Path, inputs: list[tuple[str, int, list]]) -> Path:
    """A one-node ONNX graph per input (Identity), with the given element types and dimensions."""
    import onnx
    from onnx import helper

    nodes, graph_inputs, outputs = [], [], []
    for name, elem, dims in inputs:
        graph_inputs.append(helper.make_tensor_value_info(name, elem, dims))
        outputs.append(helper.make_tensor_value_info(f"{name}_out", elem, dims))
        nodes.append(helper.make_node("Identity", [name], [f"{name}_out"]))
    model = helper.make_model(helper.make_graph(nodes, "g", graph_inputs, outputs),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def test_an_onnx_files_inputs_come_from_its_graph(tmp_path):
    from onnx import TensorProto

    path = _graph(tmp_path / "text.onnx", [("input_ids", TensorProto.INT64, ["batch", "sequence"]),
                                           ("attention_mask", TensorProto.INT64, ["batch", "sequence"])])
    with pytest.raises(SourceError, match=r"'input_ids' has symbolic sizes \(sequence\).*--input input_ids:sequence=N:int64"):
        parse_model_source(str(path))
    source = parse_model_source(str(path), inputs=["input_ids:sequence=64:int64:0..1000", "attention_mask:64"])
    ids, mask = source.input_specs
    assert ids.dtype == mask.dtype == "int64"  # an omitted dtype is the graph's
    assert ids.dynamic == mask.dynamic == ((0, "sequence"),) and mask.shape == (64,) and ids.high == 1000
    assert source.fixed_batch is None
    with pytest.raises(SourceError, match="has no input 'input_id'.*did you mean 'input_ids'"):
        parse_model_source(str(path), inputs=["input_id:64"])
    with pytest.raises(SourceError, match="dtype float32 given, but the graph's input is int64"):
        parse_model_source(str(path), inputs=["input_ids:64:float32", "attention_mask:64"])
    fixed = _graph(tmp_path / "fixed.onnx", [("x", TensorProto.FLOAT, [4, 3, 8, 8])])
    source = parse_model_source(str(fixed))
    assert source.fixed_batch == 4 and source.input_shape == (3, 8, 8) and not source.inputs
    with pytest.raises(SourceError, match="fixes it to 8"):
        parse_model_source(str(fixed), inputs=["x:3,8,9"])


@pytest.mark.live
def test_tune_a_token_model_with_a_dynamic_length(tmp_path, monkeypatch, quiet_live):
    """Integer inputs on a dynamic axis: every backend runs them, the ONNX artefact keeps the axis
    symbolic (it serves another length than the one measured), and no layout knob is searched."""
    import onnxruntime as ort

    monkeypatch.chdir(FIXTURES)
    spec = TuneSpec(models=("tune_factories:token_classifier",),
                    inputs=("input_ids:seq=32:int64:0..1000", "attention_mask:seq=32:int64"), p95_ms=50.0,
                    objective="latency", backends=("pytorch_eager", "onnxruntime"),
                    precisions=("fp32", "int8_dynamic"), batch_sizes=(1, 4), threads=(1,), budget=4, candidates=1,
                    repeats=1, min_feasible_rate=0.05, optimizer="random")
    lines: list[str] = []
    result = tune(spec, tmp_path / "run", on_line=lines.append)
    assert result.status == "recommended", result.message
    assert all(t["outcome"]["status"] == "ok" for t in result.trials), [t["outcome"] for t in result.trials]
    assert all(t["config"].get("memory_format", "contiguous") == "contiguous" for t in result.trials)
    assert any("channels_last layout applies to one image input" in line for line in lines)
    if result.recommended.config["backend"] == "onnxruntime":
        session = ort.InferenceSession(result.deployment["path"], providers=["CPUExecutionProvider"])
        assert [i.shape for i in session.get_inputs()] == [["batch", "seq"], ["batch", "seq"]]
        out = session.run(None, {"input_ids": np.ones((3, 50), np.int64), "attention_mask": np.ones((3, 50), np.int64)})
        assert out[0].shape == (3, 4)


@pytest.mark.live
def test_tune_a_two_input_onnx_export_with_external_data(tmp_path, monkeypatch, quiet_live):
    """torch.onnx.export of a two-input model, weights in a side file, one symbolic axis: the inputs
    come from the graph, --input gives the size, and a wrong size stops at pre-flight."""
    import onnx
    import torch

    monkeypatch.syspath_prepend(str(FIXTURES))
    from tune_factories import two_inputs

    plain = tmp_path / "plain.onnx"
    warnings.simplefilter("ignore", DeprecationWarning)
    torch.onnx.export(two_inputs().eval(), (torch.zeros(1, 3, 32, 32), torch.zeros(1, 16)), str(plain),
                      input_names=["image", "features"], dynamo=False,
                      dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "features": {0: "batch"}})
    folder = tmp_path / "exported"
    folder.mkdir()
    path = folder / "model.onnx"
    onnx.save(onnx.load(str(plain)), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="model.onnx.data", size_threshold=0)
    spec = TuneSpec(models=(str(path),), inputs=("image:3,height=48,width=48",), p95_ms=50.0, objective="latency",
                    precisions=("fp32", "int8_static"), batch_sizes=(1, 2), threads=(1,), budget=3, candidates=1,
                    repeats=1, min_feasible_rate=0.05, optimizer="random")
    result = tune(spec, tmp_path / "run", on_line=lambda s: None)
    assert result.status == "recommended", result.message
    for t in result.trials:  # every trial ran on both inputs; QDQ int8 is not fused at the basic level
        o = t["outcome"]
        assert o["status"] == "ok" or ((o["error"] or {}).get("kind") == "unsupported" and
                                       t["config"]["graph_optimization"] == "basic"), o
    names = [i["name"] for i in result.deployment["inputs"]]
    assert names == ["image", "features"]
    with pytest.raises(TuneInputError, match="the graph's input has 3 dimensions"):
        tune(TuneSpec(models=(str(path),), inputs=("image:48,48",), p95_ms=50.0, objective="latency", budget=1),
             tmp_path / "bad", on_line=lambda s: None)
