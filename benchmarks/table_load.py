"""How fast a recorded table loads and a replay task builds (the harness builds one per case).

Times the source table (default: the shipped cpu table) as it is, then a synthetic worst case: the
full grid (5 models x 3 backends x 3 precisions x 6 batch sizes x threads 1..2) with 3 repeats each,
drawn from the source's real measurements, written plain and gzip'd. Each is timed for load_table,
ground truth for every scenario, and ReplayTask construction.

    .venv/bin/python benchmarks/table_load.py [SOURCE_TABLE]
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

from deploybench.device_tables.grid import DeploymentGrid
from deploybench.device_tables.table import TABLE_FORMAT_VERSION, ground_truth, load_table, write_table
from deploybench.tasks.deployment import scenarios
from deploybench.tasks.replay import ReplayTask


def _time(path: Path) -> dict[str, float]:
    """Best of 5 for loading, ground truth of every scenario, and building an edge_tight replay task."""
    best: dict[str, float] = {}
    for _ in range(5):
        t0 = time.perf_counter()
        table = load_table(path)
        t1 = time.perf_counter()
        for s in scenarios().values():
            ground_truth(table, s)
        t2 = time.perf_counter()
        ReplayTask("edge_tight", table, str(path))
        t3 = time.perf_counter()
        for k, v in (("load", t1 - t0), ("ground truth x3", t2 - t1), ("ReplayTask", t3 - t2)):
            best[k] = min(best.get(k, 1e9), v)
    return best


def _report(path: Path, name: str, measurements: int) -> None:
    best = _time(path)
    size = path.stat().st_size / 1e6
    print(f"{name}: {measurements} measurements, {size:.2f} MB on disk; best of 5: "
          + ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in best.items()))


def main() -> None:
    source_path = Path(sys.argv[1] if len(sys.argv) > 1 else "deploybench/tasks/tables/cpu.jsonl.gz")
    source = load_table(source_path)
    _report(source_path, f"{source_path.name} (as recorded)", sum(map(len, source.measurements.values())))
    pool = [m for reps in source.measurements.values() for m in reps]
    rng = random.Random(0)
    space = DeploymentGrid().space()  # the whole v2 grid, knobs included
    header = {"type": "table", "format_version": TABLE_FORMAT_VERSION, "name": "synthetic", "space": space.to_json(),
              "space_signature": space.signature(), "provenance": dict(source.provenance)}
    records = [{"type": "measurement", "key": space.key(c), "config": c, "repeat": r, "load_avg_1m": 1.0,
                "measurement": rng.choice(pool)} for c in space.grid() for r in range(3)]
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("table.jsonl", "table.jsonl.gz"):
            path = write_table(Path(tmp) / name, header, records)
            _report(path, f"synthetic {name}", len(records))


if __name__ == "__main__":
    main()
