"""How fast a recorded table loads and a replay task builds (the harness builds one per case).

Builds a synthetic full-grid table (5 models x 3 backends x 3 precisions x 6 batch sizes x threads
1..2, 3 repeats each) from real measurement lines of a recorded table, writes it plain and gzip'd,
and times load_table, ground truth for every scenario, and ReplayTask construction.

    .venv/bin/python benchmarks/table_load.py [SOURCE_TABLE]
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

from deploybench.cli.record import table_space
from deploybench.tables import ground_truth, load_table, write_table
from deploybench.tasks.deployment import BACKENDS, BATCH_SIZES, MODELS, PRECISIONS, scenarios
from deploybench.tasks.replay import ReplayTask


def main() -> None:
    source = load_table(sys.argv[1] if len(sys.argv) > 1 else "recordings/cpu.jsonl")
    pool = [m for reps in source.measurements.values() for m in reps]
    rng = random.Random(0)
    space = table_space(MODELS, BACKENDS, PRECISIONS, BATCH_SIZES, [1, 2])
    header = {"type": "table", "format_version": 1, "name": "synthetic", "space": space.to_json(),
              "space_signature": space.signature(), "provenance": dict(source.provenance)}
    records = [{"type": "measurement", "key": space.key(c), "config": c, "repeat": r, "load_avg_1m": 1.0,
                "measurement": rng.choice(pool)} for c in space.grid() for r in range(3)]
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("table.jsonl", "table.jsonl.gz"):
            path = write_table(Path(tmp) / name, header, records)
            best = {}
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
            size = path.stat().st_size / 1e6
            print(f"{name}: {len(records)} measurements, {size:.2f} MB on disk; best of 5: "
                  + ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in best.items()))


if __name__ == "__main__":
    main()
