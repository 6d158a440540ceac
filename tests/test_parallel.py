"""Executors give the same results as a serial run: -n 2 worker processes, and Ray (a real local
Ray instance started by the run) through the separately installed deploybench-ray plugin."""

from __future__ import annotations

from pathlib import Path

from deploybench.results import read_case_file

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


def test_parallel_workers_match_a_serial_run(run_cli, tmp_path):
    serial = run_cli(*ARGS, "--out", str(tmp_path / "serial"))
    parallel = run_cli(*ARGS, "-n", "2", "--out", str(tmp_path / "parallel"))
    assert serial.returncode == 0 and parallel.returncode == 0, serial.stderr + parallel.stderr
    assert "executor: process with 2 workers" in parallel.stdout
    a, b = _records(tmp_path / "serial"), _records(tmp_path / "parallel")
    assert len(a) == 8 and a == b


def test_ray_executor_matches_a_serial_run(run_cli, tmp_path):
    listing = run_cli("list", "executors")
    assert "ray" in listing.stdout, "deploybench-ray is not installed (pip install ./plugins/ray-executor)"
    serial = run_cli(*ARGS, "--out", str(tmp_path / "serial"))
    ray = run_cli(*ARGS, "--executor", "ray", "-n", "2", "--out", str(tmp_path / "ray"), timeout=600)
    assert ray.returncode == 0, ray.stdout + ray.stderr
    assert "executor: ray with 2 workers" in ray.stdout
    assert _records(tmp_path / "serial") == _records(tmp_path / "ray")
