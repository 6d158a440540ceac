"""The Ray executor plugin (plugins/ray-executor, distribution ``deploybench-ray``): found through its
entry point, its ``--ray-address`` option reaches the executor, and it produces the same records as a
serial run, on a local Ray instance (started by the test, or by the run with ``--ray-address local``)."""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a real Ray instance

from deploybench.plugins import create_plugin_manager
from deploybench.results import read_case_file
from deploybench.runner import Case, RunOptions
from deploybench.collection import collect

try:
    md.distribution("deploybench-ray")
except md.PackageNotFoundError:  # pragma: no cover - the README test command installs it
    pytest.skip("deploybench-ray is not installed: pip install ./plugins/ray-executor (the README test "
                "command and .ci/run do)", allow_module_level=True)

from deploybench_ray.executor import RayExecutor, resources_for  # noqa: E402

TIMING = ("ask_s", "eval_s", "tell_s")
ARGS = ("run", "-o", "random", "-o", "tba", "-t", "crashy_branin", "-t", "hierarchical_rosenbrock", "--seeds", "2",
        "--budget", "8")


def _records(out: Path) -> dict[str, list[dict]]:
    found = {}
    for path in sorted(out.rglob("seed_*.jsonl")):
        case = read_case_file(path)
        assert case.completed, path
        found[str(path.relative_to(out))] = [{k: v for k, v in t.items() if k not in TIMING} for t in case.trials]
    return found


def _case(kind: str) -> Case:
    return Case(task="t", target="x", task_label="t", optimizer="random", seed=0, budget=3, kind=kind)


def test_resources_one_cpu_per_case_and_one_device_per_live_case():
    assert resources_for(_case("analytic"), {"CPU": 8, "GPU": 2}, 8) == {"num_cpus": 1}
    assert resources_for(_case("replay"), {"CPU": 8}, 8) == {"num_cpus": 1}
    assert resources_for(_case("live"), {"CPU": 8, "GPU": 2}, 8, "auto") == {"num_cpus": 1, "num_gpus": 1}
    assert resources_for(_case("live"), {"CPU": 8, "GPU": 2}, 8, "cpu") == {"num_cpus": 8}  # live on CPU: a node
    assert resources_for(_case("live"), {"CPU": 16}, 4, "auto") == {"num_cpus": 4}


def test_plugin_registers_the_executor_and_its_option(cli):
    dist = md.distribution("deploybench-ray")
    assert [ep.name for ep in dist.entry_points if ep.group == "deploybench"] == ["ray"]
    assert "ray" in cli("list", "executors").stdout
    assert "--ray-address" in cli("run", "--help").stdout


def test_record_takes_the_ray_options_and_names_the_executors_that_can_record(cli, tmp_path):
    text = cli("record", "--help").stdout
    assert "--executor" in text and "--ray-address" in text and "--ray-every-node" in text
    assert "--ray-every-node" not in cli("run", "--help").stdout  # a recording option only
    refused = cli("record", "--out", str(tmp_path / "t.jsonl"), "--executor", "process")
    assert refused.returncode == 2
    assert "executor 'process' runs cases but cannot record" in refused.stderr and "ray, serial" in refused.stderr
    assert not (tmp_path / "t.jsonl").exists()  # refused before anything was written
    # a wrong address is named at once (Ray itself retries it for minutes)
    nobody = cli("record", "--out", str(tmp_path / "t.jsonl"), "--executor", "ray", "--ray-address", "127.0.0.1:1",
                 "--models", "resnet18", "--backends", "onnxruntime", "--precisions", "fp32", "--batch-sizes", "1")
    assert nobody.returncode == 2 and "cannot reach the Ray cluster at '127.0.0.1:1'" in nobody.stderr


def test_ray_started_by_the_test_gives_the_serial_records(tmp_path):
    import ray

    pm = create_plugin_manager(())
    cases = collect(pm, tasks=["crashy_branin"], optimizers=["random"], seeds=[0, 1, 2], budget=6)
    serial = tmp_path / "serial"
    for result in pm.executors()["serial"].run(cases, RunOptions(out_dir=str(serial)), pm=pm):
        assert result.status == "completed"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        got = list(RayExecutor().run(cases, RunOptions(out_dir=str(tmp_path / "ray")), workers=2))
        assert ray.is_initialized()  # an instance the caller started is left running
    finally:
        ray.shutdown()
    assert sorted(r.case.node_id for r in got) == sorted(c.node_id for c in cases)
    assert all(r.status == "completed" and r.n_trials == 6 for r in got)
    assert _records(serial) == _records(tmp_path / "ray")


def test_cli_ray_run_matches_a_serial_run(run_cli, tmp_path):
    serial = run_cli(*ARGS, "--out", str(tmp_path / "serial"))
    ray = run_cli(*ARGS, "--executor", "ray", "--ray-address", "local", "-n", "2", "--out", str(tmp_path / "ray"),
                  timeout=600)
    assert serial.returncode == 0 and ray.returncode == 0, ray.stdout + ray.stderr
    assert "executor: ray on a local Ray instance with 2 CPUs, one CPU per case" in ray.stdout
    assert _records(tmp_path / "serial") == _records(tmp_path / "ray")
