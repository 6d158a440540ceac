"""Device tables v2: the grid defined once, replay equal to live (one early-stop rule; a replayed early
stop reveals only what a live one measured), accuracy scenarios that require a known accuracy,
contaminated measurements never served, table files read as untrusted input, and the recorder's
passes near the caps (with a fake profiler, so nothing here runs a model)."""

from __future__ import annotations

import gzip
import json
import os
import random
import statistics
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploybench import EvalContext, Status
from deploybench.device_tables.grid import BATCH_SIZES, MODELS, PRECISIONS, DeploymentGrid
from deploybench.live.profiler import EARLY_STOP_VIEW, Measurement
from deploybench.live.timing import TimingPlan, early_stop_index, run_timed
from deploybench.device_tables.recording import LIVE_TIME_LIMIT_S, Recorder
from deploybench.device_tables.table import (MAX_GRID_CONFIGS, MAX_LINE_CHARS, Table, TableError, grid_space, ground_truth,
                                load_table, pack_tables, shipped_tables)
from deploybench.tasks.deployment import LiveTask, deployment_space, measurement_to_outcome, scenarios
from deploybench.tasks.replay import ReplayTask, replay_early_stop

ORT = {"backend": "onnxruntime", "threads": 1, "graph_optimization": "all"}


# -- the grid, defined once ---------------------------------------------------------------------------------
def test_the_grid_is_defined_once_and_round_trips():
    grid = DeploymentGrid()
    assert len(grid.models) == len(MODELS) == 10
    # per (model, precision, batch): eager has threads x memory formats, compile nothing, ORT threads x levels
    assert grid.size() == len(MODELS) * len(PRECISIONS) * len(BATCH_SIZES) * (2 * 2 + 1 + 2 * 2)
    assert deployment_space().signature() == grid.space().signature()
    assert DeploymentGrid.from_space(grid.space()) == grid
    narrow = grid.narrowed(models=["resnet18"], backends=["onnxruntime"], batch_sizes=[1, 16])
    assert narrow.space().names == ["model", "backend", "precision", "batch_size", "threads", "graph_optimization"]
    assert narrow.size() == 4 * 2 * 2 * 2
    same = grid_space(["resnet18"], ["onnxruntime"], PRECISIONS, [1, 16], [1, 2], graph_optimizations=["basic", "all"])
    assert same.signature() == narrow.space().signature()  # tables and tasks build the same space
    # a grid recorded before the knobs existed has no such parameters, and reads back as such
    v1 = grid_space(["resnet18"], ["pytorch_eager"], ["fp32"], [1], [1, 2])
    assert v1.names == ["model", "backend", "precision", "batch_size", "threads"]
    assert DeploymentGrid.from_space(v1).space().signature() == v1.signature()


def test_recordings_use_the_live_time_limit():
    assert LIVE_TIME_LIMIT_S == LiveTask("edge_tight", models=("resnet18",)).time_limit_s


# -- replay equals live: one early-stop rule on the recorded timings -----------------------------------------
STAGES = {"prepare_s": 4.0, "spawn_teardown_s": 0.5, "import_s": 2.0, "load_s": 0.25, "warmup_s": 0.75,
          "measure_s": 9.0, "accuracy_s": 0.5}
BEFORE_TIMING_S = 4.0 + 0.5 + 2.0 + 0.25 + 0.75
SEQUENCES = [
    [50.0] * 10,  # never above the threshold
    [150.0, 150.0, 150.0, 10.0, 10.0],  # fires at the earliest judged iteration (the 3rd)
    [10.0, 10.0, 10.0, 500.0, 500.0, 500.0, 500.0],  # the median crosses once the slow iterations dominate
    [10.0, 500.0, 10.0, 500.0, 500.0, 10.0, 500.0],  # alternating
    [900.0, 10.0, 10.0, 10.0, 10.0],  # one slow outlier: the median never moves
    [99.0, 101.0, 101.0, 99.0, 101.0],  # just around the threshold
]


def _live_stop(latencies: list[float], threshold_ms: float):
    """What the live timing loop does when its iterations take ``latencies`` (warm-up far slower: never judged)."""
    values = iter([1e6, 1e6] + list(latencies))
    plan = TimingPlan(warmup_min_iters=2, warmup_max_iters=2, warmup_time_s=0, min_iters=len(latencies),
                      max_iters=len(latencies), measure_time_s=0, early_stop_ms=threshold_ms, early_stop_min_iters=3)
    return run_timed(lambda: None, lambda step: next(values), plan)


def _recorded(latencies: list[float], **extra) -> dict:
    """A format-2 table measurement of a fully measured run with these timed iterations."""
    metrics = {"latency_p50_ms": statistics.median(latencies), "latency_p95_ms": max(latencies),
               "latency_p99_ms": max(latencies), "throughput_sps": 1000.0 / statistics.mean(latencies),
               "memory_peak_mb": 80.0, "accuracy": 0.7, "accuracy_unknown": 0.0, "accuracy_source": "documented_fp32",
               "device_executed": "cpu", "threads_used": 1, "precision_executed": "fp32", "n_timed_iters": len(latencies),
               "memory_limit_mechanism": "cgroup-v1", "memory_limit_mb": 4096.0, **extra}
    return Measurement("ok", metrics=metrics, cost_s=sum(STAGES.values()), stages=STAGES,
                       latencies_ms=latencies).to_dict()


@pytest.mark.parametrize("threshold", [60.0, 100.0, 500.0])
@pytest.mark.parametrize("latencies", SEQUENCES)
def test_replay_and_live_early_stop_agree_on_recorded_timings(latencies, threshold):
    n = early_stop_index(latencies, threshold, 3)
    live = _live_stop(latencies, threshold)
    assert live.early_stopped == (n is not None)
    assert len(live.latencies_ms) == (n or len(latencies))  # live stops at exactly that iteration
    replayed = replay_early_stop(_recorded(latencies), threshold)
    if n is None:
        assert replayed == _recorded(latencies)  # nothing a live run would not have measured in full
        return
    assert live.early_stop_estimate_ms == statistics.median(latencies[:n])
    assert replayed["status"] == "early_stopped" and replayed["latencies_ms"] == latencies[:n]
    m = replayed["metrics"]
    assert set(m) <= set(EARLY_STOP_VIEW) and m["n_timed_iters"] == n
    assert not {"latency_p95_ms", "latency_p50_ms", "memory_peak_mb", "accuracy", "throughput_sps"} & set(m)
    assert m["early_stop_estimate_ms"] == live.early_stop_estimate_ms and m["early_stop_threshold_ms"] == threshold
    assert m["device_executed"] == "cpu" and m["memory_limit_mechanism"] == "cgroup-v1"  # kept: live reports them
    # charged what the live run cost up to the stop: every stage before timing, plus the timed prefix
    assert replayed["cost_s"] == pytest.approx(BEFORE_TIMING_S + sum(latencies[:n]) / 1000.0)
    assert "accuracy_s" not in replayed["stages"]


def test_the_sequences_cover_stops_and_full_runs():
    stops = {early_stop_index(seq, 100.0, 3) for seq in SEQUENCES}
    assert stops == {None, 3, 4, 6}  # the agreement test above is not vacuous


@settings(max_examples=150, deadline=None)
@given(latencies=st.lists(st.floats(min_value=0.01, max_value=2000.0), min_size=1, max_size=40),
       threshold=st.sampled_from([60.0, 90.0, 100.0, 150.0, 500.0]),
       min_iters=st.integers(min_value=1, max_value=5))
def test_live_timing_loop_stops_where_early_stop_index_says(latencies, threshold, min_iters):
    values = iter([1e6] + latencies)
    plan = TimingPlan(warmup_min_iters=1, warmup_max_iters=1, warmup_time_s=0, min_iters=len(latencies),
                      max_iters=len(latencies), measure_time_s=0, early_stop_ms=threshold,
                      early_stop_min_iters=min_iters)
    live = run_timed(lambda: None, lambda step: next(values), plan)
    n = early_stop_index(latencies, threshold, min_iters)
    assert live.early_stopped == (n is not None)
    assert live.latencies_ms == latencies[:n or len(latencies)]


def _write_table(path, space, rows, header_extra=None):
    """rows: (config, measurement dict) in order; the header is a format-2 table of ``space``."""
    header = {"type": "table", "format_version": 2, "name": path.name.split(".")[0], "space": space.to_json(),
              "space_signature": space.signature(),
              "provenance": {"device": "cpu", "device_name": "test device", "cpu": "test", "date": "2026-12-03",
                             "profiler_version": "2", "versions": {"torch": "x"}, **(header_extra or {})}}
    lines = [json.dumps(header)]
    repeat: dict[str, int] = {}
    for config, m in rows:
        key = space.key(config)
        lines.append(json.dumps({"type": "measurement", "key": key, "config": config, "repeat": repeat.get(key, 0),
                                 "measurement": m}))
        repeat[key] = repeat.get(key, 0) + 1
    data = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data.encode()))
    else:
        path.write_text(data)
    return path


def test_replay_task_applies_the_tighter_factor_once_a_feasible_config_is_known(tmp_path):
    space = grid_space(["resnet18"], ["onnxruntime"], ["fp32"], [1], [1], graph_optimizations=["all"])
    config = {"model": "resnet18", "precision": "fp32", "batch_size": 1, **ORT}
    latencies = [80.0] * 8  # edge_tight: 5 x 20 ms = 100 (runs in full), 3 x 20 ms = 60 (stops at the 3rd)
    task = ReplayTask("edge_tight", load_table(_write_table(tmp_path / "t.jsonl", space, [(config, _recorded(latencies))])),
                      "t")
    full = task.evaluate(config, EvalContext(seed=0, trial=0))
    assert full.status is Status.INFEASIBLE and not full.early_stopped and full.metrics["latency_p95_ms"] == 80.0
    stopped = task.evaluate(config, EvalContext(seed=0, trial=0, feasible_found=True))
    assert stopped.early_stopped and stopped.objective is None and "latency_p95_ms" not in stopped.metrics
    assert stopped.metrics["n_timed_iters"] == 3 and stopped.cost_s == pytest.approx(BEFORE_TIMING_S + 0.24)


def test_format_1_tables_apply_the_median_rule_to_the_recorded_p50():
    def v1(p50, p95):
        return {"format": 1, "status": "ok", "cost_s": 10.0, "stages": {"measure_s": 2.0, "accuracy_s": 1.0},
                "metrics": {"latency_p50_ms": p50, "latency_p95_ms": p95, "memory_peak_mb": 90.0, "accuracy": 0.7}}

    # p95 far above the threshold but the median below it: a live run would not have stopped
    assert replay_early_stop(v1(90.0, 400.0), 100.0) == v1(90.0, 400.0)
    stopped = replay_early_stop(v1(150.0, 400.0), 100.0)
    assert stopped["status"] == "early_stopped" and stopped["metrics"]["n_timed_iters"] == 3
    assert stopped["metrics"]["early_stop_estimate_ms"] == 150.0 and "latency_p95_ms" not in stopped["metrics"]
    assert stopped["cost_s"] == pytest.approx(10.0 - 2.0 - 1.0 + 3 * 0.15)


# -- accuracy scenarios need a known accuracy ----------------------------------------------------------------
UNKNOWN = {"latency_p95_ms": 5.0, "latency_p99_ms": 6.0, "memory_peak_mb": 50.0, "throughput_sps": 800.0,
           "accuracy": None, "accuracy_unknown": 1.0, "accuracy_source": "unknown"}


def test_an_unknown_accuracy_is_infeasible_where_accuracy_is_maximised():
    m = Measurement("ok", metrics=UNKNOWN)
    edge = measurement_to_outcome(LiveTask("edge_tight", models=("resnet18",)), m)
    assert edge.status is Status.INFEASIBLE and edge.objective is None and not edge.early_stopped
    assert edge.violation["accuracy_unknown"] == 1.0 and edge.violation["latency_p95_ms"] == 0.0
    server = measurement_to_outcome(LiveTask("server_throughput", models=("resnet18",)), m)
    assert server.status is Status.OK and server.objective == 800.0  # judged on throughput as usual
    assert "accuracy_unknown" not in server.violation
    known = measurement_to_outcome(LiveTask("edge_tight", models=("resnet18",)),
                                   Measurement("ok", metrics={**UNKNOWN, "accuracy": 0.69, "accuracy_unknown": 0.0}))
    assert known.status is Status.OK and known.objective == 0.69
    # a measurement that says nothing about its accuracy is not ranked as if it were known either
    bare = {k: v for k, v in UNKNOWN.items() if k not in ("accuracy", "accuracy_unknown")}
    silent = measurement_to_outcome(LiveTask("ultra_low_budget", models=("resnet18",)), Measurement("ok", metrics=bare))
    assert silent.status is Status.INFEASIBLE and silent.violation["accuracy_unknown"] == 1.0


def test_ground_truth_and_replay_agree_on_unknown_accuracy(tmp_path):
    space = grid_space(["resnet18"], ["onnxruntime"], ["fp32", "int8_dynamic"], [1], [1], graph_optimizations=["all"])
    fp32 = {"model": "resnet18", "precision": "fp32", "batch_size": 1, **ORT}
    int8 = {**fp32, "precision": "int8_dynamic"}
    fast_unknown = _recorded([5.0] * 5, accuracy=None, accuracy_unknown=1.0, accuracy_source="unknown")
    table = load_table(_write_table(tmp_path / "t.jsonl", space, [(fp32, _recorded([12.0] * 5)), (int8, fast_unknown)]))
    edge = ground_truth(table, scenarios()["edge_tight"])
    assert edge.configs[space.key(int8)].p_feasible == 0.0 and edge.best_config == fp32 and edge.optimum == 0.7
    server = ground_truth(table, scenarios()["server_throughput"])
    assert server.configs[space.key(int8)].p_feasible == 1.0 and server.best_config == int8
    replay = ReplayTask("edge_tight", table, "t")
    assert replay.evaluate(int8).status is Status.INFEASIBLE and replay.evaluate(fp32).status is Status.OK


# -- contaminated measurements are evidence, never served ----------------------------------------------------
def test_a_contaminated_measurement_is_never_served_nor_packed(tmp_path):
    space = grid_space(["resnet18"], ["onnxruntime"], ["fp32"], [1, 2], [1], graph_optimizations=["all"])
    b1 = {"model": "resnet18", "precision": "fp32", "batch_size": 1, **ORT}
    b2 = {**b1, "batch_size": 2}
    dirty = {**_recorded([400.0] * 5), "contaminated": True, "attempts": 4}
    path = _write_table(tmp_path / "t.jsonl", space, [(b1, _recorded([10.0] * 5)), (b1, dirty), (b2, dirty)])
    table = load_table(path)
    assert table.contaminated == 2 and not table.problems
    assert [m["metrics"]["latency_p95_ms"] for m in table.repeats(space.key(b1))] == [10.0]
    assert table.repeats(space.key(b2)) == [] and table.coverage() == (1, 2)  # not a measurement of b2
    packed = pack_tables([table], name="t")
    assert packed.records and not any(r["measurement"].get("contaminated") for r in packed.records)
    assert [r["config"] for r in packed.records] == [b1] and packed.space["batch_size"].values == (1,)
    with pytest.raises(TableError, match="covers 1 of its 2"):
        ReplayTask("edge_tight", table, "t")


# -- table files are untrusted input --------------------------------------------------------------------------
def _header(params, **extra) -> str:
    return json.dumps({"type": "table", "format_version": 2, "space": {"params": params}, **extra}) + "\n"


SPACE_JSON = grid_space(["resnet18"], ["onnxruntime"], ["fp32"], [1], [1], graph_optimizations=["all"]).to_json()
BAD_FILES = {
    "random bytes named .gz": ("t.jsonl.gz", random.Random(0).randbytes(600), None),
    "gzip magic then garbage": ("t.jsonl.gz", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + random.Random(1).randbytes(600),
                                None),
    "random bytes": ("t.jsonl", random.Random(2).randbytes(600), None),
    "a JSON list line": ("t.jsonl", b"[1, 2, 3]\n", 1),
    "not JSON": ("t.jsonl", b"{oops\n", 1),
    "a header without space": ("t.jsonl", b'{"type": "table", "format_version": 2}\n', 1),
    "an unknown parameter kind": ("t.jsonl", _header([{"kind": "fuzzy", "name": "model"}]).encode(), 1),
    "a parameter without kind": ("t.jsonl", _header([{"name": "model", "choices": ["a"]}]).encode(), 1),
    "parameters that are not objects": ("t.jsonl", _header([1, "x"]).encode(), 1),
    "a huge integer range": ("t.jsonl", _header([{"kind": "integer", "name": "threads", "low": 1,
                                                  "high": 10**15}]).encode(), 1),
    "a format from the future": ("t.jsonl", _header(SPACE_JSON["params"], format_version=99).encode(), None),
    "a bad format version": ("t.jsonl", _header(SPACE_JSON["params"], format_version="2").encode(), 1),
    "a provenance that is not an object": ("t.jsonl", _header(SPACE_JSON["params"], provenance=[1]).encode(), 1),
    "a measurement before the header": ("t.jsonl", b'{"type": "measurement"}\n', 1),
    "two headers": ("t.jsonl", (_header(SPACE_JSON["params"]) * 2).encode(), 2),
    "an over-long line": ("t.jsonl", (_header(SPACE_JSON["params"]) + '{"type": "measurement", "pad": "'
                                      + "x" * MAX_LINE_CHARS + '"}\n').encode(), 2),
    "an empty file": ("t.jsonl", b"", None),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_table_file_is_a_table_error_naming_the_file_and_line(tmp_path, monkeypatch, case):
    from deploybench.space import SearchSpace

    name, data, line = BAD_FILES[case]
    path = tmp_path / name
    path.write_bytes(data)

    def no_enumeration(self):
        raise AssertionError("the grid was enumerated")

    monkeypatch.setattr(SearchSpace, "grid", no_enumeration)  # a huge grid is refused by its size alone
    with pytest.raises(TableError) as info:
        load_table(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    if line is not None:
        assert f"{path}:{line}:" in message


def test_a_directory_is_not_a_table(tmp_path):
    for name in ("dir.jsonl", "dir.jsonl.gz"):
        (tmp_path / name).mkdir()
        with pytest.raises(TableError, match="is a directory"):
            load_table(tmp_path / name)
    with pytest.raises(TableError, match="no recorded table at"):
        load_table(tmp_path / "absent.jsonl")


def test_malformed_measurement_lines_are_skipped_with_a_note(tmp_path):
    space = grid_space(["resnet18"], ["onnxruntime"], ["fp32"], [1], [1], graph_optimizations=["all"])
    config = {"model": "resnet18", "precision": "fp32", "batch_size": 1, **ORT}
    key = space.key(config)
    good = {"type": "measurement", "key": key, "config": config, "repeat": 0, "measurement": _recorded([5.0] * 3)}
    m = good["measurement"]
    bad = [
        {"type": "measurement"},
        {**good, "measurement": {**m, "status": "wonderful"}},
        {**good, "measurement": {**m, "status": "crashed", "error": None}},
        {**good, "measurement": {**m, "latencies_ms": ["fast"]}},
        {**good, "measurement": {**m, "cost_s": "cheap"}},
        {**good, "measurement": {**m, "metrics": [1, 2]}},
        {**good, "measurement": {**m, "metrics": {**m["metrics"], "latency_p95_ms": "fast"}}},  # judged: a number
        {**good, "measurement": {**m, "metrics": {**m["metrics"], "accuracy": [0.7]}}},
        {**good, "measurement": {**m, "stages": {"load_s": {"s": 1}}}},
        {**good, "measurement": {**m, "latencies_ms": [1.0, float("inf")]}},
        {**good, "measurement": {**m, "attempts": [2]}},
        {**good, "measurement": {**m, "status": "crashed", "error": {"kind": ["oom"], "message": "x"}}},
        {**good, "measurement": [m]},
        {**good, "key": "another key"},
        {**good, "config": {"model": "resnet18"}},
        {**good, "config": [config]},
        {**good, "type": "comment"},
        42,
    ]
    lines = [json.dumps({"type": "table", "format_version": 2, "space": space.to_json()})]
    off_grid = {**good, "config": {**config, "model": "alexnet"}, "key": space.key({**config, "model": "alexnet"})}
    lines += [json.dumps(b) for b in bad] + ["{not json", json.dumps(good), json.dumps(off_grid)]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(lines) + "\n")
    table = load_table(path)
    assert table.repeats(key) == [m] and table.coverage() == (1, 1)
    assert table.off_grid() == 1  # a well-formed measurement outside the grid is kept aside, never served
    assert len(table.problems) == len(bad) + 1
    for lineno, problem in enumerate(table.problems, start=2):  # every note names the file and its line
        assert problem.startswith(f"{path}:{lineno}: ")


def _valid_table_text() -> str:
    space = grid_space(["resnet18", "mobilenet_v2"], ["onnxruntime"], ["fp32"], [1], [1], graph_optimizations=["all"])
    lines = [json.dumps({"type": "table", "format_version": 2, "name": "fuzz", "space": space.to_json(),
                         "space_signature": space.signature(), "provenance": {"device": "cpu"}})]
    for model, lat in (("resnet18", 12.0), ("mobilenet_v2", 7.0)):
        config = {"model": model, "precision": "fp32", "batch_size": 1, **ORT}
        lines.append(json.dumps({"type": "measurement", "key": space.key(config), "config": config, "repeat": 0,
                                 "measurement": _recorded([lat] * 4)}))
    crashed = Measurement("crashed", error={"kind": "oom", "message": "killed"}, cost_s=3.0).to_dict()
    config = {"model": "resnet18", "precision": "fp32", "batch_size": 1, **ORT}
    lines.append(json.dumps({"type": "measurement", "key": space.key(config), "config": config, "repeat": 1,
                             "measurement": crashed}))
    return "\n".join(lines) + "\n"


VALID = _valid_table_text()
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                      max_size=3),
                           max_leaves=6)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _replace(obj, path, value):
    if not path:
        return value
    obj[path[0]] = _replace(obj[path[0]], path[1:], value)
    return obj


@st.composite
def mutated_tables(draw) -> tuple[str, bytes]:
    data = VALID.encode()
    how = draw(st.sampled_from(["truncate", "flip", "replace", "gzip-flip", "gzip-truncate"]))
    if how in ("truncate", "gzip-truncate"):
        if how == "gzip-truncate":
            data = gzip.compress(data)
        data = data[:draw(st.integers(0, len(data)))]
    elif how in ("flip", "gzip-flip"):
        if how == "gzip-flip":
            data = gzip.compress(data)
        buf = bytearray(data)
        for pos in draw(st.lists(st.integers(0, len(buf) - 1), min_size=1, max_size=4)):
            buf[pos] = draw(st.integers(0, 255))
        data = bytes(buf)
    else:
        lines = [json.loads(x) for x in VALID.splitlines()]
        i = draw(st.integers(0, len(lines) - 1))
        path = draw(st.sampled_from(list(_paths(lines[i]))))
        lines[i] = _replace(lines[i], path, draw(JSON_VALUES))
        data = ("\n".join(json.dumps(x) for x in lines) + "\n").encode()
    return ("t.jsonl.gz" if how.startswith("gzip") else "t.jsonl"), data


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=mutated_tables())
def test_a_mutated_table_loads_or_is_a_table_error(tmp_path, case):
    name, data = case
    path = tmp_path / name
    path.write_bytes(data)
    try:
        table = load_table(path)
    except TableError as exc:
        assert str(path) in str(exc)
        return
    assert isinstance(table, Table)
    for reps in table.measurements.values():  # what is served passed validation
        assert all(m["status"] in ("ok", "early_stopped", "crashed", "timeout") for m in reps)
    # and what passed validation replays: every scenario, every configuration (or a TableError, nothing else)
    for scenario in scenarios():
        try:
            task = ReplayTask(scenario, table, "fuzz")
        except TableError:
            continue
        for config in task.space.grid():
            for seed in range(2):
                task.evaluate(config, EvalContext(seed=seed, trial=0))


# -- the recorder: passes near the caps, contamination, stopping and resuming --------------------------------
GRID = DeploymentGrid(models=("mobilenet_v2", "resnet18"), backends=("onnxruntime",), precisions=("fp32",),
                      batch_sizes=(1, 8), threads=(1,), graph_optimizations=("all",))
#: p95 = p99 per (model, batch): 21 ms is within 30 % of edge_tight's 20 ms cap, 95 ms of server_throughput's
#: 100 ms p99 cap; 60 and 400 ms are near no cap
P95 = {("mobilenet_v2", 1): 21.0, ("mobilenet_v2", 8): 60.0, ("resnet18", 1): 95.0, ("resnet18", 8): 400.0}
NEAR = {("mobilenet_v2", 1), ("resnet18", 1)}


class FakeProfiler:
    """Stands in for the live profiler; ``disturbed(config, call_number) -> bool`` marks contaminated results."""

    def __init__(self, disturbed=lambda config, n: False, clock=None, seconds=2.0):
        self.requests: list = []
        self.disturbed = disturbed
        self.clock = clock
        self.seconds = seconds

    def __call__(self, request):
        self.requests.append(request)
        config = request.config
        n = sum(1 for r in self.requests if r.config == config)
        if self.clock is not None:
            self.clock[0] += self.seconds
        p = P95[(config["model"], config["batch_size"])]
        dirty = self.disturbed(config, n)
        metrics = {"latency_p50_ms": p, "latency_p95_ms": p, "latency_p99_ms": p, "memory_peak_mb": 50.0,
                   "accuracy": 0.7, "accuracy_unknown": 0.0, "throughput_sps": 1000.0 / p}
        return Measurement("ok", metrics=metrics, cost_s=self.seconds, latencies_ms=(p,) * 3, contaminated=dirty,
                           attempts=4 if dirty else 1)

    def counts(self) -> dict:
        out: dict = {}
        for r in self.requests:
            ident = (r.config["model"], r.config["batch_size"])
            out[ident] = out.get(ident, 0) + 1
        return out


def _ident(config) -> tuple:
    return config["model"], config["batch_size"]


@pytest.mark.slow
def test_recorder_measures_once_then_repeats_near_the_caps_in_separate_passes(tmp_path):
    fake = FakeProfiler()
    lines: list[str] = []
    out = tmp_path / "edge.jsonl"
    summary = Recorder(GRID, out, profile_fn=fake, device_profile="edge", max_other_cores=0.2).run(on_line=lines.append)
    first = [_ident(r.config) for r in fake.requests[:4]]
    assert sorted(first) == sorted(P95)  # pass 0: every configuration once
    assert fake.counts() == {k: 5 if k in NEAR else 1 for k in P95}  # 5 clean repeats within ±30 % of a cap
    assert all(_ident(r.config) in NEAR for r in fake.requests[4:])
    for r in fake.requests:  # the device, the live time limit, the loosest scenario's early stop
        assert r.device_profile == "edge" and r.memory_limit_mb == 1024.0 and r.max_other_cores == 0.2
        assert r.time_limit_s == LIVE_TIME_LIMIT_S and r.latency_cap_ms == 100.0 and r.early_stop_factor == 5.0
    table = load_table(out)
    for key, extras in table.extras.items():
        passes = [e["pass"] for e in extras]
        assert passes == list(range(len(passes)))  # one repeat per pass: never back to back
    assert (summary.covered, summary.grid, summary.clean_repeats_missing) == (4, 4, 0)
    assert len(summary.new) == len(lines) == 12 and summary.contaminated == summary.redone == 0
    assert table.provenance["device_profile"]["memory_mb"] == 1024.0
    assert table.provenance["time_limit_s"] == LIVE_TIME_LIMIT_S
    assert table.provenance["memory_limit_support"]["selected"] and table.provenance["contention_threshold_cores"] == 0.2


@pytest.mark.slow
def test_recorder_does_not_count_contaminated_results_as_repeats(tmp_path):
    # mobilenet_v2 batch 1 is disturbed on its 2nd measurement; resnet18 batch 1 on every one of this run
    fake = FakeProfiler(disturbed=lambda config, n: (_ident(config) == ("mobilenet_v2", 1) and n == 2)
                        or _ident(config) == ("resnet18", 1))
    out = tmp_path / "t.jsonl"
    lines: list[str] = []
    summary = Recorder(GRID, out, profile_fn=fake, device_profile="cpu").run(on_line=lines.append)
    counts = fake.counts()
    assert counts[("mobilenet_v2", 1)] == 6  # 5 clean + the disturbed one, redone in the same pass
    assert counts[("resnet18", 1)] == 2  # disturbed twice in pass 0: left for the next run
    assert summary.contaminated == 3 and summary.redone == 3 * 3
    assert sum("[contaminated" in line for line in lines) == 3
    table = load_table(out)
    assert table.contaminated == 3 and (summary.covered, summary.grid) == (3, 4)
    mob = GRID.space().key({"model": "mobilenet_v2", "precision": "fp32", "batch_size": 1, **ORT})
    assert len(table.repeats(mob)) == 5 and not any(m.get("contaminated") for m in table.repeats(mob))
    assert not any(r["measurement"].get("contaminated") for r in pack_tables([table], name="t", complete=False).records)
    # a rerun on a quiet machine measures what is missing and nothing else
    quiet = FakeProfiler()
    again = Recorder(GRID, out, profile_fn=quiet, device_profile="cpu").run(on_line=lambda line: None)
    assert quiet.counts() == {("resnet18", 1): 5} and (again.covered, again.clean_repeats_missing) == (4, 0)


@pytest.mark.slow
def test_recorder_stops_cleanly_and_a_rerun_resumes(tmp_path, monkeypatch):
    from deploybench.device_tables import recording

    out = tmp_path / "t.jsonl"
    first = FakeProfiler()
    summary = Recorder(GRID, out, profile_fn=first, max_new=3).run(on_line=lambda line: None)
    assert len(first.requests) == 3 and summary.stopped == "after 3 new measurements"
    table = load_table(out)
    assert not table.problems and sum(len(v) for v in table.measurements.values()) == 3
    # a time box: with 10 s measurements and a 10 s limit, a 35 s box starts measurements at 0, 10 and 20 s only
    clock = [1000.0]
    monkeypatch.setattr(recording, "time", SimpleNamespace(time=lambda: clock[0]))
    boxed = FakeProfiler(clock=clock, seconds=10.0)
    summary = Recorder(GRID, out, profile_fn=boxed, time_limit_s=10.0, stop_after_s=35.0).run(on_line=lambda line: None)
    assert len(boxed.requests) == 3 and "time box of 35 s" in summary.stopped
    assert any("run the same command again" in line for line in summary.lines())
    rest = FakeProfiler()
    summary = Recorder(GRID, out, profile_fn=rest).run(on_line=lambda line: None)
    assert summary.stopped is None and (summary.covered, summary.clean_repeats_missing) == (4, 0)
    total = {k: first.counts().get(k, 0) + boxed.counts().get(k, 0) + rest.counts().get(k, 0) for k in P95}
    assert total == {k: 5 if k in NEAR else 1 for k in P95}  # resumed: nothing measured twice, nothing lost
    table = load_table(out)
    assert sorted(len(v) for v in table.measurements.values()) == [1, 1, 5, 5] and not table.problems


# -- the shipped tables replay through `deploybench run` ------------------------------------------------------
@pytest.mark.parametrize("name", sorted(shipped_tables()))
def test_every_shipped_table_replays_through_deploybench_run(run_cli, tmp_path, name):
    from deploybench.results import read_case_file

    out = tmp_path / "res"
    tasks = [arg for s in scenarios() for arg in ("-t", f"{s}[{name}]")]
    run = run_cli("run", "-o", "random", *tasks, "--budget", "3", "--seeds", "1", "--out", str(out), "-q")
    assert run.returncode == 0, run.stdout + run.stderr
    cases = [read_case_file(f) for f in out.rglob("seed_*.jsonl")]
    assert len(cases) == len(scenarios()) and all(c.completed and len(c.trials) == 3 for c in cases)
    assert all(t["outcome"]["cost_s"] > 0 for c in cases for t in c.trials)  # recorded costs are charged


def test_pass_speed_levels_separate_machine_drift_from_noise_within_a_pass(tmp_path):
    from deploybench.device_tables.report import pass_speed_levels

    space = grid_space(["resnet18", "mobilenet_v2", "googlenet"], ["onnxruntime"], ["fp32"], [1], [1],
                       graph_optimizations=["all"])
    header = {"type": "table", "format_version": 2, "name": "drift", "space": space.to_json(),
              "space_signature": space.signature(), "provenance": {"device": "cpu"}}
    lines = [json.dumps(header)]
    for i, config in enumerate(space.grid()):
        base = 17.0 + i  # all three within ±30 % of edge_tight's 20 ms cap
        for p, speed in enumerate((1.0, 1.1, 1.0)):  # pass 1 ran on a 10 % slower machine
            lines.append(json.dumps({"type": "measurement", "key": space.key(config), "config": config, "repeat": p,
                                     "pass": p, "measurement": _recorded([base * speed] * 100)}))
    path = tmp_path / "drift.jsonl"
    path.write_text("\n".join(lines) + "\n")
    split = pass_speed_levels(load_table(path), scenarios()["edge_tight"])
    assert split["levels"] == {"0": 1.0, "1": 1.1, "2": 1.0}
    assert split["cv_within_pass_median"] == pytest.approx(0.0, abs=1e-9)  # all of the spread was the drift


def test_table_info_says_what_a_resumed_recording_still_has_to_measure(tmp_path, capsys):
    from deploybench.cli.main import main
    from deploybench.device_tables.report import table_summary

    space = grid_space(["resnet18", "mobilenet_v2", "googlenet"], ["onnxruntime"], ["fp32"], [1], [1],
                       graph_optimizations=["all"])
    policy = "1 repeat; 5 clean repeats, in separate passes, where a scenario latency metric lies within ±30 % of its cap"
    header = {"type": "table", "format_version": 2, "name": "chunk", "space": space.to_json(),
              "space_signature": space.signature(), "provenance": {"device": "cpu", "repeats_policy": policy}}
    configs = list(space.grid())
    lines = [json.dumps(header)]
    # near the 20 ms cap with 2 clean repeats (3 to go), far from every cap with 1 (none to go), never measured
    for p in range(2):
        lines.append(json.dumps({"type": "measurement", "key": space.key(configs[0]), "config": configs[0], "repeat": p,
                                 "pass": p, "measurement": _recorded([19.0] * 100)}))
    lines.append(json.dumps({"type": "measurement", "key": space.key(configs[1]), "config": configs[1], "repeat": 0,
                             "pass": 0, "measurement": _recorded([2.0] * 100)}))
    path = tmp_path / "chunk.jsonl"
    path.write_text("\n".join(lines) + "\n")
    todo = table_summary(load_table(path))["still_to_record"]
    assert todo["unmeasured_configurations"] == 1
    assert (todo["configurations_needing_repeats"], todo["repeats"]) == (1, 3)
    cost = _recorded([2.0])["cost_s"]
    assert todo["estimated_s"] == pytest.approx(4 * cost, rel=1e-3)  # 1 first measurement + 3 repeats
    assert main(["table", "info", str(path)]) == 0
    assert "still to record: 1 configurations never measured, 3 clean repeats for 1 configurations near a cap" \
        in capsys.readouterr().out
    # a table recorded without a repeat policy (format 1) has nothing to say here
    header["provenance"] = {"device": "cpu"}
    path.write_text("\n".join([json.dumps(header)] + lines[1:]) + "\n")
    assert table_summary(load_table(path))["still_to_record"] is None


def test_a_chunk_replaced_under_the_recorder_loses_no_measurement(tmp_path):
    """``git stash`` (or a checkout, an editor, a copy) replaces the chunk while it records: the recorder
    must not go on writing into the unlinked file, which vanishes when it exits."""
    out = tmp_path / "edge.jsonl"
    fake = FakeProfiler()

    def replacing(request):
        if len(fake.requests) == 1:  # the chunk holds the header and one measurement: swap it for a copy
            copy = tmp_path / "copy.jsonl"
            copy.write_bytes(out.read_bytes())
            os.replace(copy, out)
        return fake(request)

    recorder = Recorder(GRID, out, profile_fn=replacing, device_profile="edge", reference_fn=lambda: {"version": 1})
    with pytest.raises(TableError, match="was deleted or replaced while recording") as err:
        recorder.run(on_line=lambda line: None)
    (rescued,) = tmp_path.glob("edge.recovered-*.jsonl")
    assert str(rescued) in str(err.value)
    lines = rescued.read_text().splitlines()
    assert json.loads(lines[0])["type"] == "table"
    assert [json.loads(x)["type"] for x in lines[1:]] == ["measurement", "measurement"]  # the one that found out too
    assert len(out.read_text().splitlines()) == 2  # the replacement (header and the first line) is left as it was
    # put back, the recording resumes from every measurement
    os.replace(rescued, out)
    again = FakeProfiler()
    Recorder(GRID, out, profile_fn=again, device_profile="edge", reference_fn=lambda: {"version": 1},
             repeats_near_cap=1).run(on_line=lambda line: None)
    assert len(again.requests) == 2  # only the two configurations never measured


def test_recorder_measures_only_the_listed_configurations_and_refuses_one_off_the_grid(tmp_path):
    listed = [{"model": "resnet18", "precision": "fp32", "batch_size": 8, **ORT}]
    fake = FakeProfiler()
    summary = Recorder(GRID, tmp_path / "t.jsonl", profile_fn=fake, only_configs=listed,
                       reference_fn=lambda: {"version": 1}).run(on_line=lambda line: None)
    assert [r.config for r in fake.requests] == listed  # far from every cap: one measurement, nothing else
    assert (summary.covered, summary.grid) == (1, 4)
    with pytest.raises(ValueError, match="not in the grid being recorded.*batch_size"):
        Recorder(GRID, tmp_path / "u.jsonl", profile_fn=fake, only_configs=[{**listed[0], "batch_size": 16}])


def test_configs_near_device_memory_are_those_a_stricter_accounting_can_change(tmp_path):
    from deploybench.device_tables.recording import configs_near_device_memory, device_held_mb

    assert device_held_mb({"metrics": {"memory_baseline_mb": 600.0, "memory_peak_mb": 330.0}}) == 930.0
    assert device_held_mb({"metrics": {"memory_device_peak_mb": 700.0, "memory_baseline_mb": 1.0}}) == 700.0
    table = load_table(shipped_tables()["edge"])
    near = configs_near_device_memory(table)
    device_mb = table.provenance["device_profile"]["memory_mb"]
    keys = {table.space.key(c) for c in near}
    for key, reps in table.measurements.items():
        held = [device_held_mb(m) or 0.0 for m in reps]
        oom = any((m.get("error") or {}).get("kind") == "oom" for m in reps)
        assert (key in keys) == (oom or max(held) >= 0.9 * device_mb)
    assert near and all(c["backend"] == "pytorch_eager" for c in near)  # ONNX Runtime stays far below 1 GiB


def test_a_superseding_re_measurement_replaces_only_the_configurations_it_measured(tmp_path, cli):
    old, new = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
    Recorder(GRID, old, profile_fn=FakeProfiler(), name="edge", reference_fn=lambda: {"version": 1}).run(
        on_line=lambda line: None)
    listed = {"model": "mobilenet_v2", "precision": "fp32", "batch_size": 1, **ORT}
    Recorder(GRID, new, profile_fn=FakeProfiler(), name="edge", only_configs=[listed], repeats_near_cap=2,
             note="re-measured under another accounting", reference_fn=lambda: {"version": 1}).run(
        on_line=lambda line: None)
    tables = [load_table(old)]
    result = pack_tables(tables, name="edge", supersede=[load_table(new)])
    key = GRID.space().key(listed)
    by_key: dict = {}
    for r in result.records:
        by_key.setdefault(r["key"], []).append(r)
    assert len(by_key) == 4 and len(tables[0].repeats(key)) == 5
    assert len(by_key[key]) == 2  # the re-measurement's two repeats, none of the five older ones
    assert all(len(rs) == len(tables[0].repeats(k)) for k, rs in by_key.items() if k != key)
    superseded = result.header["provenance"]["superseded"]
    assert superseded["by"] == ["new.jsonl"] and superseded["measurements_replaced"] == 5
    assert superseded["why"] == "re-measured under another accounting" and len(superseded["configurations"]) == 1
    done = cli("table", "pack", str(old), "--supersede", str(new), "--out", str(tmp_path / "edge.jsonl.gz"))
    assert done.returncode == 0, done.stderr
    assert "1 configurations re-measured in new.jsonl: their 5 earlier measurements are replaced" in done.stdout
