"""Recording throughput on a local Ray fleet against the serial recorder, and heterogeneity recovered.

    python benchmarks/fleet_recording.py [--batches 1,2,4,8,16,32] [--nodes 1,2,3] [--json OUT]

Records the same small grid (the tiny test model, PyTorch eager, fp32, one thread, the given batch
sizes) with the serial recorder (``LocalPool``) and with ``record --executor ray``'s pool on a
``ray.cluster_utils.Cluster`` of 1, 2 and 3 measuring nodes on this machine, and prints configurations
per minute. Then two nodes that emulate different speeds (each rescales its real latencies to a target
p95: 14 ms and 28 ms, beside edge_tight's 20 ms cap) record every configuration on every node, and the
heterogeneity report shows what it recovers. The nodes share this machine's cores, so the contention
guard is off and more nodes than cores cannot speed anything up: the figures measure the fleet path's
overhead and its scaling up to the core count, not a fleet of real machines.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DEPLOYBENCH_TESTING", "1")  # the tiny model, in this process and every raylet's workers

from deploybench.device_tables.grid import DeploymentGrid  # noqa: E402
from deploybench.device_tables.heterogeneity import heterogeneity  # noqa: E402
from deploybench.device_tables.recording import Recorder  # noqa: E402
from deploybench.tasks.deployment import scenarios  # noqa: E402

TARGET_P95_MS = {"node-1": 14.0, "node-2": 28.0}


class EmulatedSpeed:
    """The live profiler, then the node's emulated speed: latencies rescaled so that a configuration's
    p95 lands on the node's target times the measurement's own ratio to a quiet reference."""

    def __init__(self, quiet_p95: dict[str, float]) -> None:
        self.quiet_p95 = quiet_p95

    def __call__(self, request):
        from deploybench.live.profiler import profile

        m = profile(request)
        factor = TARGET_P95_MS[os.environ["DEPLOYBENCH_NODE_LABEL"]] / self.quiet_p95[json.dumps(request.config,
                                                                                                 sort_keys=True)]
        for name, value in list(m.metrics.items()):
            if name.startswith("latency_") and name.endswith("_ms") and isinstance(value, (int, float)):
                m.metrics[name] = value * factor
        return m


def _record(grid: DeploymentGrid, out: Path, cache: Path, pool=None, repeats: int = 1) -> tuple[float, int]:
    started = time.perf_counter()
    summary = Recorder(grid, out, device_profile="host", device="cpu", repeats_near_cap=repeats, max_other_cores=64.0,
                       artefact_cache=str(cache), pool=pool).run(on_line=lambda line: None)
    return time.perf_counter() - started, len(summary.new)


def _cluster(n: int):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for i in range(n):
        cluster.add_node(num_cpus=1, resources={"device:tiny": 1}, env_vars={"DEPLOYBENCH_NODE_LABEL": f"node-{i + 1}"})
    return cluster


def main() -> int:
    import ray
    from deploybench_ray.recording import RayMeasurementPool

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,2,4,8,16,32")
    parser.add_argument("--nodes", default="1,2,3")
    parser.add_argument("--json", default=None, metavar="OUT")
    args = parser.parse_args()
    grid = DeploymentGrid(models=("tiny_cnn",), backends=("pytorch_eager",), precisions=("fp32",),
                          batch_sizes=tuple(int(b) for b in args.batches.split(",")), threads=(1,),
                          memory_formats=("contiguous",))
    rows = []
    with tempfile.TemporaryDirectory(prefix="deploybench-fleet-") as tmp:
        base = Path(tmp)
        os.environ["DEPLOYBENCH_CACHE_DIR"] = str(base / "cache")
        _record(grid, base / "warm.jsonl", base / "art")  # artefacts prepared once, for every run below
        wall, n = _record(grid, base / "serial.jsonl", base / "art")
        rows.append({"executor": "serial", "nodes": 1, "configurations": n, "wall_s": round(wall, 1),
                     "per_minute": round(60 * n / wall, 1)})
        print(rows[-1], flush=True)
        for nodes in (int(x) for x in args.nodes.split(",")):
            cluster = _cluster(nodes)
            ray.init(address=cluster.address, log_to_driver=False)
            try:
                wall, n = _record(grid, base / f"ray{nodes}.jsonl", base / "art", RayMeasurementPool("tiny"))
            finally:
                ray.shutdown()
                cluster.shutdown()
            rows.append({"executor": "ray", "nodes": nodes, "configurations": n, "wall_s": round(wall, 1),
                         "per_minute": round(60 * n / wall, 1)})
            print(rows[-1], flush=True)
        # heterogeneity: every configuration on both emulated nodes, two passes near the cap
        from deploybench.live.profiler import ProfileRequest, profile

        quiet = {}
        for config in grid.space().grid():
            m = profile(ProfileRequest(config=config, device="cpu", max_other_cores=64.0, artefact_cache=str(base / "art")))
            quiet[json.dumps(config, sort_keys=True)] = m.metrics["latency_p95_ms"]
        cluster = _cluster(2)
        ray.init(address=cluster.address, log_to_driver=False)
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        try:
            pool = RayMeasurementPool("tiny", every_node=True, profile_fn=EmulatedSpeed(quiet))
            _record(grid, base / "study.jsonl", base / "art", pool, repeats=2)
        finally:
            ray.shutdown()
            cluster.shutdown()
        from deploybench.device_tables.table import load_table

        report = heterogeneity(load_table(base / "study.jsonl"), list(scenarios().values()))
    print("\n".join(report.lines()))
    if args.json:
        Path(args.json).write_text(json.dumps({"throughput": rows, "heterogeneity": report.to_json()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
