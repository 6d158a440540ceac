"""List the configurations of a recorded table that lie near its device memory, one JSON object per line.

These are the configurations whose classification (running or ``oom``) a change of memory accounting
can change: a repeat whose device-held memory reached 90 % of the device (``--fraction``) or that ended
``oom``. Feed the list to ``deploybench record --only-configs`` to re-measure them under the current
accounting, and pack with ``deploybench table pack OLD --supersede NEW`` so their new measurements
replace the old ones::

    python benchmarks/near_device_memory.py edge > /tmp/edge-near-memory.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys

from deploybench.device_tables.recording import NEAR_MEMORY, configs_near_device_memory
from deploybench.device_tables.table import TableError, load_table, resolve_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", help="a shipped table name (edge) or a recorded table path")
    parser.add_argument("--fraction", type=float, default=1.0 - NEAR_MEMORY,
                        help=f"share of the device memory that counts as near (default {1.0 - NEAR_MEMORY:g})")
    args = parser.parse_args(argv)
    if not 0.0 < args.fraction <= 1.0:
        parser.error(f"--fraction must lie in (0, 1], got {args.fraction}")
    try:
        configs = configs_near_device_memory(load_table(resolve_table(args.table)), args.fraction)
    except TableError as exc:
        parser.exit(2, f"error: {exc}\n")
    for config in configs:
        sys.stdout.write(json.dumps(config) + "\n")
    print(f"{len(configs)} configurations near the device memory", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
