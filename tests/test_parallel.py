"""``-n N`` worker processes give the same records as a serial run, and live cases never share a
device: one live case per GPU (pinned with CUDA_VISIBLE_DEVICES), or one at a time on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploybench.executors import LaneScheduler, live_on_cpu, visible_gpus
from deploybench.results import read_case_file
from deploybench.runner import Case

TIMING_FIELDS = ("ask_s", "eval_s", "tell_s")
ARGS = ("run", "-o", "random", "-o", "tba", "-t", "crashy_branin", "-t", "hierarchical_rosenbrock", "--seeds", "2",
        "--budget", "8")


def _records(out: Path) -> dict[str, list[dict]]:
    found = {}
    for path in sorted(out.rglob("seed_*.jsonl")):
        case = read_case_file(path)
        assert case.completed, path
        found[str(path.relative_to(out))] = [{k: v for k, v in t.items() if k not in TIMING_FIELDS} for t in case.trials]
    return found


@pytest.mark.slow
def test_parallel_workers_match_a_serial_run(cli, tmp_path):
    serial = cli(*ARGS, "--out", str(tmp_path / "serial"))
    parallel = cli(*ARGS, "-n", "2", "--out", str(tmp_path / "parallel"))
    assert serial.returncode == 0 and parallel.returncode == 0, serial.stderr + parallel.stderr
    assert "executor: process with 2 workers" in parallel.stdout
    a, b = _records(tmp_path / "serial"), _records(tmp_path / "parallel")
    assert len(a) == 8 and a == b


def _cases(kind: str, n: int) -> list[Case]:
    return [Case(task=f"{kind}_task", target="x", task_label=kind, optimizer="random", seed=s, budget=3, kind=kind)
            for s in range(n)]


def test_live_cases_run_one_per_gpu():
    live, other = _cases("live", 3), _cases("analytic", 3)
    sched = LaneScheduler(other + live, workers=4, gpus=["0", "1"])
    first = sched.take()
    assert [(c.kind, lane) for c, lane in first] == [("live", "0"), ("live", "1"), ("analytic", None), ("analytic", None)]
    assert sched.take() == []  # every worker busy
    sched.release(*first[2])  # an analytic case ends: the free worker takes analytic work, GPUs are busy
    assert [(c.kind, lane) for c, lane in sched.take()] == [("analytic", None)]
    sched.release(*first[1])  # GPU 1 frees up: the last live case goes there
    assert [(c.seed, lane) for c, lane in sched.take()] == [(2, "1")]
    assert not sched.pending


def test_live_cases_run_one_at_a_time_without_gpus():
    sched = LaneScheduler(_cases("live", 2) + _cases("analytic", 2), workers=3, gpus=[])
    first = sched.take()
    assert [(c.kind, lane) for c, lane in first] == [("live", None), ("analytic", None), ("analytic", None)]
    for item in first[1:]:
        sched.release(*item)
    assert sched.take() == []  # the second live case waits for the first, workers or not
    sched.release(*first[0])
    assert [(c.kind, c.seed) for c, _ in sched.take()] == [("live", 1)]


def test_visible_gpus_follow_the_environment(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert visible_gpus() == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,-1,0")
    assert visible_gpus() == ["1"]  # CUDA ignores ids after an invalid one
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert visible_gpus() == ["0"] and visible_gpus("cpu") == []  # live measured on the CPU: a single lane
    live = Case(task="edge_tight", target="live", task_label="edge_tight@live", optimizer="random", seed=0,
                budget=1, kind="live")
    on_cpu = Case(**{**live.__dict__, "task_params": (("device", "cpu"),)})
    assert not live_on_cpu([live]) and live_on_cpu([on_cpu]) and not live_on_cpu([live, on_cpu])
