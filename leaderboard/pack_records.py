"""Pack run results into the published records: one compact, reproducible xz archive per table.

Usage: python leaderboard/pack_records.py SOURCE [SOURCE ...] --into leaderboard/runs

Each SOURCE is a results folder as ``deploybench run`` writes it (any depth). The optimizers present in
SOURCE replace their members of ``<task label>.tar.xz``; the others are kept. What compaction drops and
stamps, and why one archive per table: :mod:`deploybench.archive`.
"""

from __future__ import annotations

import argparse
import sys

from deploybench.archive import pack_runs


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="results folders to pack")
    parser.add_argument("--into", required=True, metavar="DIR", help="folder of the per-table archives")
    args = parser.parse_args(argv)
    counts = pack_runs(args.sources, args.into)
    for name, n in counts.items():
        print(f"{name}: {n} cases")
    print(f"packed into {len(counts)} archives")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
