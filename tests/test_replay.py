"""Replay targets and recorded tables: determinism, recorded noise, costs, the grid, ground truth,
provenance, and a tiny table made by the real recorder on this CPU and replayed through the CLI."""

from __future__ import annotations

import json
import shutil

import pytest

from deploybench import EvalContext, InvalidConfigError, Status
from deploybench.results import read_case_file
from deploybench.device_tables.table import (TableError, grid_space, ground_truth, load_table, pack_tables, shipped_tables,
                                write_table)
from deploybench.tasks.deployment import get_scenario
from deploybench.tasks.replay import RecommendationTrulyFeasible, ReplayTask, build_replay_task


def _measurement(p95, status="ok", acc=0.72, cost=5.0):
    if status == "crashed":
        return {"format": 1, "status": "crashed", "metrics": {}, "error": {"kind": "unsupported", "message": "no fp16"},
                "cost_s": cost, "stages": {}, "info": {}}
    metrics = {"latency_p50_ms": p95 * 0.9, "latency_p95_ms": p95, "latency_p99_ms": p95 * 1.05,
               "memory_peak_mb": 100.0, "throughput_sps": 1000.0 / p95, "accuracy": acc}
    return {"format": 1, "status": status, "metrics": metrics, "error": None, "cost_s": cost,
            "stages": {"measure_s": 2.0, "accuracy_s": 0.0}, "info": {}}


def _write(path, space, repeats, date="2026-01-01", threads=2, torn=False, load=0.5, time_limit=60.0):
    header = {"type": "table", "format_version": 1, "name": path.name.split(".")[0], "space": space.to_json(),
              "space_signature": space.signature(),
              "provenance": {"device": "cpu", "device_name": "test CPU", "date": date, "profiler_version": "1",
                             "threads_recorded": [threads], "time_limit_s": time_limit}}
    with open(path, "w") as fh:
        fh.write(json.dumps(header) + "\n")
        for (model, prec, bs), ms in repeats.items():
            config = {"model": model, "backend": "pytorch_eager", "precision": prec, "batch_size": bs, "threads": threads}
            for i, m in enumerate(ms):
                fh.write(json.dumps({"type": "measurement", "key": space.key(config), "config": config, "repeat": i,
                                     "load_avg_1m": load, "measurement": m}) + "\n")
        if torn:
            fh.write('{"type": "measurement", "key": "tor')  # a torn last line from a killed recording
    return path


@pytest.fixture
def table_path(tmp_path):
    space = grid_space(["mobilenet_v2", "resnet18"], ["pytorch_eager"], ["fp32", "fp16"], [1, 8], [2])
    repeats = {  # (model, precision, batch) -> measurements
        ("mobilenet_v2", "fp32", 1): [_measurement(15.0), _measurement(22.0), _measurement(25.0)],  # noisy near the cap
        ("mobilenet_v2", "fp32", 8): [_measurement(90.0)],
        ("mobilenet_v2", "fp16", 1): [_measurement(0, "crashed")],
        ("mobilenet_v2", "fp16", 8): [_measurement(0, "crashed")],
        ("resnet18", "fp32", 1): [_measurement(12.0, acc=0.6976), _measurement(13.0, acc=0.6976)],
        ("resnet18", "fp32", 8): [_measurement(400.0, acc=0.6976, cost=9.0)],  # p50 360 > 5 x 20 ms: early stop
        ("resnet18", "fp16", 1): [_measurement(0, "crashed")],
        ("resnet18", "fp16", 8): [_measurement(0, "crashed")],
    }
    return _write(tmp_path / "fake.jsonl", space, repeats, torn=True)


def _task(path):
    return ReplayTask("edge_tight", load_table(path), str(path))


def test_replay_is_deterministic_per_seed_and_shows_recorded_noise(table_path):
    task = _task(table_path)
    config = {"model": "mobilenet_v2", "backend": "pytorch_eager", "precision": "fp32", "batch_size": 1, "threads": 2}
    a = [task.evaluate(config, EvalContext(seed=3, trial=t)) for t in range(10)]
    b = [task.evaluate(config, EvalContext(seed=3, trial=t)) for t in range(10)]
    assert a == b
    seen = {task.evaluate(config, EvalContext(seed=s, trial=0)).metrics["latency_p95_ms"] for s in range(40)}
    assert seen == {15.0, 22.0, 25.0}
    statuses = {task.evaluate(config, EvalContext(seed=s, trial=0)).status for s in range(40)}
    assert statuses == {Status.OK, Status.INFEASIBLE}  # feasibility is stochastic near the cap


def test_costs_crashes_early_stops_and_the_grid(table_path):
    task = _task(table_path)
    crash = task.evaluate({"model": "resnet18", "backend": "pytorch_eager", "precision": "fp16", "batch_size": 1, "threads": 2})
    assert crash.status is Status.CRASHED and crash.error.kind.value == "unsupported" and crash.cost_s == 5.0
    slow = {"model": "resnet18", "backend": "pytorch_eager", "precision": "fp32", "batch_size": 8, "threads": 2}
    stopped = task.evaluate(slow)
    assert stopped.early_stopped and stopped.status is Status.INFEASIBLE
    # format 1 (no per-iteration timings): 3 timed iterations at the recorded p50, charged up to the abort
    assert stopped.cost_s == pytest.approx(9.0 - 2.0 + 3 * 0.36)
    assert stopped.objective is None and "latency_p95_ms" not in stopped.metrics  # only what live would have seen
    with pytest.raises(InvalidConfigError, match="batch_size"):
        task.space.validate({**slow, "batch_size": 4})  # off the recorded grid
    with pytest.raises(InvalidConfigError, match="threads"):
        task.space.validate({**slow, "threads": 4})


def test_ground_truth_and_provenance(table_path):
    table = load_table(table_path)
    assert table.provenance["device_name"] == "test CPU" and table.coverage() == (8, 8)
    assert any("unreadable line" in p for p in table.problems)
    truth = ground_truth(table, get_scenario("edge_tight"))
    assert truth.best_config["model"] == "resnet18" and truth.optimum == pytest.approx(0.6976)
    mob = table.space.key({"model": "mobilenet_v2", "backend": "pytorch_eager", "precision": "fp32", "batch_size": 1, "threads": 2})
    # the more accurate mobilenet_v2 is feasible in only 1 of 3 repeats: not the optimum (rule: p >= 0.5)
    assert truth.configs[mob].p_feasible == pytest.approx(1 / 3)
    task = _task(table_path)
    assert task.metadata.known_optimum == pytest.approx(0.6976) and task.metadata.best_family == "resnet18"
    assert "test CPU" in task.metadata.extra["header"] and "2026-01-01" in task.metadata.extra["header"]


@pytest.mark.live
def test_real_recorder_then_replay_through_the_cli(run_cli, tmp_path):
    table = tmp_path / "tiny.jsonl"
    # contention is not the point here (test_contention.py): a threshold above the machine's cores never fires
    argv = ("record", "--out", str(table), "--models", "mobilenet_v2", "--backends", "pytorch_eager",
            "--precisions", "fp32", "--batch-sizes", "1,2", "--threads", "1", "--memory-formats", "contiguous",
            "--repeats", "1", "--device", "cpu", "--weights", "random", "--max-other-cores", "64",
            "--artefact-cache", str(tmp_path / "artefacts"))
    rec = run_cli(*argv, timeout=600)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert "grid 2/2 configurations measured" in rec.stdout
    again = run_cli(*argv, timeout=600)
    assert "recorded 0 new measurements" in again.stdout  # resumable: nothing measured twice
    loaded = load_table(table)
    for reps in loaded.measurements.values():
        m = reps[0]
        assert m["status"] in ("ok", "early_stopped") and m["cost_s"] > 0 and m["format"] == 2
        assert m["metrics"]["device_executed"] == "cpu" and m["metrics"]["memory_limit_mechanism"]
        assert m["metrics"]["device_profile"] == "cpu" and m["metrics"]["memory_limit_mb"] == 4096.0
        assert len(m["latencies_ms"]) == m["metrics"]["n_timed_iters"] > 0
        if m["status"] == "ok":  # an early stop reveals no memory (as live)
            assert m["metrics"]["memory_peak_mb"] > 0 and m["metrics"]["precision_executed"] == "fp32"
    assert loaded.provenance["versions"]["torch"] and loaded.provenance["time_limit_s"] == 120.0
    info = run_cli("table", "info", str(table))
    assert info.returncode == 0 and "2/2 configurations" in info.stdout
    out = tmp_path / "res"
    run = run_cli("run", "-o", "random", "-t", f"edge_tight[{table}]", "--budget", "2", "--seeds", "2", "--out", str(out))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "replaying table" in run.stdout
    files = list(out.rglob("seed_*.jsonl"))
    assert len(files) == 2 and all(read_case_file(f).completed for f in files)


def test_pack_merges_chunks_into_a_complete_gzipped_grid(tmp_path):
    grid = dict(models=["mobilenet_v2", "resnet18"], backends=["pytorch_eager"], precisions=["fp32"],
                batch_sizes=[1, 2, 8])
    t2 = _write(tmp_path / "t2.jsonl", grid_space(**grid, threads=[2]), {
        (m, "fp32", bs): [_measurement(10.0 * bs)] for m in grid["models"] for bs in grid["batch_sizes"]})
    # a second chunk (threads 1), recorded on another day, stopped before batch 8
    t1 = _write(tmp_path / "t1.jsonl", grid_space(**grid, threads=[1]), {
        ("mobilenet_v2", "fp32", 1): [_measurement(19.0), _measurement(21.0)], ("mobilenet_v2", "fp32", 2): [_measurement(30.0)],
        ("resnet18", "fp32", 1): [_measurement(14.0)], ("resnet18", "fp32", 2): [_measurement(28.0)]},
        date="2026-01-02", threads=1, time_limit=120.0)
    tables = [load_table(t2), load_table(t1)]
    partial = pack_tables(tables, name="cpu", complete=False)
    assert len(partial.missing) == 2 and sum(1 for _ in partial.space.grid()) == 12
    packed = pack_tables(tables, name="cpu", note="threads 1..2 on 2 cores")
    # dropping batch 8 loses 4 configurations and fills both holes; dropping threads=1 would lose 6: batch 8 goes
    assert packed.dropped == [("batch_size", 8, 2)] and not packed.missing
    out = write_table(tmp_path / "cpu.jsonl.gz", packed.header, packed.records)
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    again = write_table(tmp_path / "cpu2.jsonl.gz", packed.header, packed.records)
    assert again.read_bytes() == out.read_bytes()  # reproducible bytes (fixed gzip mtime)
    table = load_table(out)
    assert table.coverage() == (8, 8) and table.space.signature() == packed.header["space_signature"]
    p = table.provenance  # provenance round trip: merged, with its sources and the note
    assert p["date"] == "2026-01-01..2026-01-02" and p["threads_recorded"] == [1, 2] and p["note"].startswith("threads")
    assert [s["name"] for s in p["sources"]] == ["t2", "t1"] and p["device_name"] == "test CPU"
    key = table.space.key({"model": "mobilenet_v2", "backend": "pytorch_eager", "precision": "fp32", "batch_size": 1,
                           "threads": 1})
    assert [m["metrics"]["latency_p95_ms"] for m in table.repeats(key)] == [19.0, 21.0]
    assert [e["source"] for e in table.extras[key]] == ["t1", "t1"] and table.extras[key][0]["load_avg_1m"] == 0.5
    # each measurement keeps the time limit it was recorded under (the chunks' headers differ)
    assert table.extras[key][0]["time_limit_s"] == 120.0 and p["time_limits_s"] == [60.0, 120.0]
    assert p["time_limit_s"] == 120.0
    task = ReplayTask("edge_tight", table, str(out))
    assert task.space["threads"].low == 1 and task.space["threads"].high == 2
    # a quiet re-recording of one configuration supersedes the repeats measured while other jobs ran
    loaded = _write(tmp_path / "loaded.jsonl", grid_space(**grid, threads=[2]), {
        ("resnet18", "fp32", 1): [_measurement(60.0), _measurement(70.0)]}, load=6.0)
    quiet = pack_tables([load_table(loaded), *tables], name="cpu", prefer_load_below=2.0)
    r18 = table.space.key({"model": "resnet18", "backend": "pytorch_eager", "precision": "fp32", "batch_size": 1, "threads": 2})
    assert [r["measurement"]["metrics"]["latency_p95_ms"] for r in quiet.records if r["key"] == r18] == [10.0]
    assert quiet.filtered_out == 2 and quiet.header["provenance"]["prefer_load_below"] == 2.0
    mixed = pack_tables([load_table(loaded), *tables], name="cpu")
    assert [r["measurement"]["metrics"]["latency_p95_ms"] for r in mixed.records if r["key"] == r18] == [60.0, 70.0, 10.0]
    with pytest.raises(TableError, match="covers 10 of its 12"):
        ReplayTask("edge_tight", load_table(write_table(tmp_path / "p.jsonl", partial.header, partial.records)), "p")


def test_recommendation_truly_feasible_metric(table_path):
    from types import SimpleNamespace

    base = {"model": "mobilenet_v2", "backend": "pytorch_eager", "precision": "fp32", "batch_size": 1, "threads": 2}
    cases = [SimpleNamespace(task="edge_tight", target=str(table_path), best_config=base),  # feasible in 1 of 3 repeats
             SimpleNamespace(task="edge_tight", target=str(table_path), best_config={**base, "model": "resnet18"}),  # 2 of 2
             SimpleNamespace(task="edge_tight", target=str(table_path), best_config=None)]  # found nothing
    assert RecommendationTrulyFeasible().compute(cases) == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert RecommendationTrulyFeasible().compute([SimpleNamespace(task="crashy_branin", target="analytic",
                                                                  best_config=None)]) is None
    assert build_replay_task("edge_tight", str(table_path)).metadata.kind == "replay"


@pytest.mark.slow
def test_recorder_with_a_fake_profiler_repeats_near_caps_and_resumes(tmp_path, monkeypatch, capsys):
    from deploybench.cli.main import main
    from deploybench.live import profiler

    calls = []

    def fake_profile(request):
        calls.append(request)
        p95 = {1: 21.0, 2: 400.0}[request.config["batch_size"]]  # batch 1 lies within ±30 % of the 20 ms cap
        return profiler.Measurement(status="ok", metrics={"latency_p95_ms": p95, "latency_p99_ms": p95,
                                                          "memory_peak_mb": 50.0, "accuracy": 0.7},
                                    cost_s=3.0, stages={}, info={})

    monkeypatch.setattr(profiler, "profile", fake_profile)
    out = tmp_path / "rec.jsonl"
    argv = ["record", "--out", str(out), "--models", "mobilenet_v2", "--backends", "onnxruntime", "--precisions", "fp32",
            "--batch-sizes", "1,2", "--threads", "1", "--graph-optimizations", "all", "--repeats", "3", "--device", "cpu"]
    assert main(argv) == 0
    # pass 0 measures every configuration once; later passes come back to the one near a cap (3 repeats)
    assert [r.config["batch_size"] for r in calls] == [1, 2, 1, 1]
    assert all(r.early_stop_factor == 5.0 and r.latency_cap_ms == 100.0 for r in calls)  # 5x the loosest cap
    assert all(r.device_profile == "cpu" and r.memory_limit_mb == 4096.0 for r in calls)  # the default device
    printed = capsys.readouterr().out
    assert "grid 2/2 configurations measured" in printed and "seconds per measurement" in printed
    assert main(argv) == 0 and len(calls) == 4  # resumed: nothing measured twice
    table = load_table(out)
    assert table.provenance["threads_recorded"] == [1] and len(table.measurements) == 2
    assert all("load_avg_1m" in e and e["time_limit_s"] == 120.0 for es in table.extras.values() for e in es)
    near = table.space.key(calls[0].config)
    assert [e["pass"] for e in table.extras[near]] == [0, 1, 2]  # repeats in separate passes, not back to back


def test_quiet_gate_waits_for_a_quiet_machine(monkeypatch):
    from types import SimpleNamespace

    from deploybench.live import contention

    clock = [0.0]

    def sleep(seconds):
        clock[0] += seconds

    # the machine's busy seconds since boot, read before and after each 1 s sample: 1.8, 1.4, then 0.1 cores busy
    busy = iter([100.0, 101.8, 101.8, 103.2, 103.2, 103.3])
    monkeypatch.setattr(contention, "time", SimpleNamespace(sleep=sleep, perf_counter=lambda: clock[0],
                                                            monotonic=lambda: clock[0]))
    monkeypatch.setattr(contention, "system_busy_seconds", lambda: next(busy))
    assert contention.wait_for_quiet(0.15, max_wait_s=3600) == pytest.approx(0.1)  # waited through two busy samples
    assert clock[0] == pytest.approx(3.0)
    monkeypatch.setattr(contention, "system_busy_seconds", lambda: clock[0] * 1.9)  # 1.9 cores busy for ever
    assert contention.wait_for_quiet(0.15, max_wait_s=0) == pytest.approx(1.9)  # gives up, says how busy it was


def test_recorder_holds_the_lock_during_each_measurement(tmp_path, monkeypatch):
    import fcntl

    from deploybench.cli.main import main
    from deploybench.live import profiler

    lock = tmp_path / "record.lock"
    held = []

    def try_lock() -> bool:
        with open(lock, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(fh, fcntl.LOCK_UN)
            return True

    def fake_profile(request):
        held.append(not try_lock())  # another open file description cannot take the lock now
        return profiler.Measurement(status="ok", metrics={"latency_p95_ms": 300.0, "latency_p99_ms": 300.0,
                                                          "memory_peak_mb": 50.0, "accuracy": 0.7},
                                    cost_s=1.0, stages={}, info={})

    monkeypatch.setattr(profiler, "profile", fake_profile)
    argv = ["record", "--out", str(tmp_path / "rec.jsonl"), "--models", "mobilenet_v2", "--backends", "onnxruntime",
            "--precisions", "fp32", "--batch-sizes", "1,2", "--threads", "1", "--graph-optimizations", "all",
            "--device", "cpu", "--lock", str(lock)]
    assert main(argv) == 0
    assert held == [True, True]
    assert try_lock()  # released between and after measurements


def test_default_target_is_the_best_shipped_table():
    from deploybench.tasks.deployment_plugin import default_target

    assert default_target(("cpu", "h100")) == "h100"
    assert default_target(("cpu",)) == "cpu"
    assert default_target(("my_board",)) == "my_board"
    assert default_target(()) == "live"


def test_edge_tight_replays_the_edge_recording_first(tmp_path, monkeypatch):
    import deploybench.device_tables.table as tables_module
    from deploybench.plugins import create_plugin_manager

    for name in ("cpu", "edge", "small"):
        shutil.copy(tables_module.shipped_tables()["cpu"], tmp_path / f"{name}.jsonl.gz")
    monkeypatch.setattr(tables_module, "shipped_tables_dir", lambda: tmp_path)
    specs = create_plugin_manager().task_specs()
    assert specs["edge_tight"].default_target == "edge"  # an edge scenario on the edge device
    assert specs["server_throughput"].default_target == "cpu"
    assert specs["ultra_low_budget"].default_target == "small"  # the small-memory board, when it ships
    assert {"live", "cpu", "edge", "small"} <= set(specs["server_throughput"].targets)


def test_recorder_stop_after_starts_nothing_that_could_overrun(tmp_path, monkeypatch, capsys):
    from deploybench.cli.main import main
    from deploybench.live import profiler

    calls = []
    monkeypatch.setattr(profiler, "profile", lambda request: calls.append(request))
    argv = ["record", "--out", str(tmp_path / "rec.jsonl"), "--models", "mobilenet_v2", "--backends", "onnxruntime",
            "--precisions", "fp32", "--batch-sizes", "1", "--threads", "1", "--graph-optimizations", "all",
            "--device", "cpu", "--time-limit", "60", "--stop-after", "30"]
    assert main(argv) == 0
    assert calls == []  # one measurement may take 60 s: it would end past the 30 s
    out = capsys.readouterr().out
    assert "time box of 30 s" in out and "run the same command again" in out and "grid 0/1 configurations" in out


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(shipped_tables()))
def test_every_shipped_table_is_complete_with_provenance_and_replays(name):
    from deploybench.device_tables.table import resolve_table
    from deploybench.tasks.deployment import scenarios

    table = load_table(resolve_table(name))
    covered, grid = table.coverage()
    assert covered == grid > 0 and not table.problems and table.off_grid() == 0
    assert table.header["space_signature"] == table.space.signature()
    p = table.provenance
    for field in ("device", "device_name", "cpu", "versions", "date", "profiler_version"):
        assert p.get(field), f"{name}: provenance lacks {field}"
    for scenario in scenarios():
        task = build_replay_task(scenario, name)
        assert task.space.signature() == table.space.signature()  # optimizers see exactly the recorded grid
        config = next(iter(table.space.grid()))
        outcome = task.evaluate(config, EvalContext(seed=0, trial=0))
        assert outcome.cost_s > 0


def test_an_unknown_target_names_the_known_ones_and_exits_2(capsys):
    from deploybench.cli.main import main

    assert main(["run", "-o", "random", "-t", "edge_tight", "--target", "h10", "--collect-only"]) == 2
    err = capsys.readouterr().err
    assert "unknown target 'h10' for task 'edge_tight'" in err and "live" in err and "recorded table" in err


def test_pack_can_require_the_repeats_near_the_caps(tmp_path, cli):
    grid = dict(models=["mobilenet_v2"], backends=["pytorch_eager"], precisions=["fp32"], batch_sizes=[1, 8])
    # batch 1 lies at 19 ms, within ±30 % of edge_tight's 20 ms p95 cap: it needs 3 repeats; batch 8 does not
    chunk = _write(tmp_path / "c.jsonl", grid_space(**grid, threads=[1]), {
        ("mobilenet_v2", "fp32", 1): [_measurement(19.0), _measurement(21.0)], ("mobilenet_v2", "fp32", 8): [_measurement(400.0)]}, threads=1)
    short = cli("table", "pack", str(chunk), "--out", str(tmp_path / "t.jsonl.gz"), "--require-repeats", "3")
    assert short.returncode == 2 and "1 configurations near a scenario cap have fewer than 3" in short.stderr
    assert not (tmp_path / "t.jsonl.gz").exists()
    ok = cli("table", "pack", str(chunk), "--out", str(tmp_path / "t.jsonl.gz"), "--require-repeats", "2")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "t.jsonl.gz").exists()
