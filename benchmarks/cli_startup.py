"""Start-up cost of the command line, against ``pytest --version`` measured in the same rounds.

Each round runs, one after another (paired, so load on the machine hits all of them alike):
``pytest --version``, ``deploybench --version``, ``deploybench list`` and the README's main command
(``deploybench run --optimizer tba --task edge_tight --seeds 5``, into a fresh folder). Reports the
median wall time of each over the rounds, the ratio of ``--version`` to pytest's (goal: at most 2x),
and the main command's wall time against its own case time, the seconds the session reports for its
cases (goal: at most 1.5x the case time + 1 s).

    .venv/bin/python benchmarks/cli_startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

BIN = Path(sys.executable).parent
MAIN_COMMAND = ["run", "--optimizer", "tba", "--task", "edge_tight", "--seeds", "5"]


def _wall(argv: list[str], cwd: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr}")
    return wall, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    deploybench, pytest = str(BIN / "deploybench"), str(BIN / "pytest")
    walls: dict[str, list[float]] = {k: [] for k in ("pytest --version", "deploybench --version", "deploybench list",
                                                      "main command", "main command: case time")}
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as cwd:
            walls["pytest --version"].append(_wall([pytest, "--version"], cwd)[0])
            walls["deploybench --version"].append(_wall([deploybench, "--version"], cwd)[0])
            walls["deploybench list"].append(_wall([deploybench, "list"], cwd)[0])
            wall, out = _wall([deploybench, *MAIN_COMMAND, "--out", str(Path(cwd) / "results")], cwd)
            walls["main command"].append(wall)
            walls["main command: case time"].append(float(re.search(r"cases? completed in ([\d.]+)s", out).group(1)))
    median = {k: statistics.median(v) for k, v in walls.items()}
    print(tabulate([[k, f"{m:.3f}", " ".join(f"{x:.3f}" for x in walls[k])] for k, m in median.items()],
                   headers=["command", "median s", "rounds"]))
    ratio = median["deploybench --version"] / median["pytest --version"]
    limit = 1.5 * median["main command: case time"] + 1.0
    print(f"\n--version / pytest --version: {ratio:.2f}x (goal <= 2x)")
    print(f"main command: {median['main command']:.2f} s wall vs 1.5 x {median['main command: case time']:.2f} s "
          f"case time + 1 s = {limit:.2f} s ({'met' if median['main command'] <= limit else 'NOT met'})")


if __name__ == "__main__":
    main()
