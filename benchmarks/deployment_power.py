"""How many seeds does "better than random" need on the deployment scenarios?

The leaderboard tests every pair of optimizers of a table (Wilcoxon signed-rank paired by
seed, Holm over all pairs: 55 for 11 optimizers, so the smallest p must be below 0.05 / 55 ≈ 0.0009). On the
replayed deployment scenarios the optimizers' lead over random search is real but small against the
spread between seeds (which configurations a seed's first trials hit), so whether a 20-seed test
finds it depends on the seeds drawn. This script measures that instead of arguing it:

1. runs the optimizers and random search on the deployment scenarios over many seeds with the real runner
   (``deploybench run --resume``, so an interrupted sweep continues), then
2. for each optimizer against random, over all seeds: mean penalised best, wins / ties / losses by seed,
   the Wilcoxon p-value; and the *power* of a 20-, 50- and 100-seed test, estimated by the bootstrap:
   the share of samples of that many seeds, drawn with replacement from the measured ones, whose test
   reaches p < 0.05 and p < 0.05 / 55 (the bound Holm's first rejection needs on the leaderboard).

    flock /tmp/deploybench-measure.lock python benchmarks/deployment_power.py --seeds 100 --out results/power
    python benchmarks/deployment_power.py --out results/power --analyse-only     # tables from the records
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

SCENARIOS = ("edge_tight", "server_throughput", "ultra_low_budget")
OPTIMIZERS = ("random", "tba", "tba_tpe", "tba_tpe_plus", "tpe", "cbo", "cbo_plus")
SEED_COUNTS = (20, 50, 100)
#: the leaderboard's pair count for 11 optimizers: Holm's first step rejects below alpha / 55
LEADERBOARD_PAIRS = 55


def run_cases(optimizers: list[str], scenarios: list[str], seeds: int, out: Path, workers: int) -> None:
    """The real runner, resumable: ``deploybench run ... --resume`` skips finished cases."""
    cmd = [str(Path(sys.executable).with_name("deploybench")), "run", "--seeds", str(seeds), "--out", str(out),
           "-n", str(workers), "-q", "--resume"]
    for name in optimizers:
        cmd += ["-o", name]
    for scenario in scenarios:
        cmd += ["-t", scenario]
    subprocess.run(cmd, check=True)


def wilcoxon_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of paired losses, zero differences dropped as the leaderboard does.
    The normal approximation (with the tie correction): the leaderboard's exact or permutation p for
    fewer than 50 seeds costs about a second per tied sample, too slow for hundreds of resamples; above
    50 seeds both use the approximation."""
    from scipy.stats import wilcoxon

    d = a - b
    d = d[d != 0]
    return float(wilcoxon(d, method="approx").pvalue) if d.size else 1.0


def power(a: np.ndarray, b: np.ndarray, size: int, alphas: tuple[float, ...], draws: int,
          rng: np.random.Generator) -> list[float]:
    """Bootstrap power: for each alpha, the share of ``draws`` samples of ``size`` seed pairs (drawn with
    replacement) whose two-sided test has p < alpha (read it beside W/T/L: it counts a rejection in
    either direction, as the leaderboard's test does)."""
    ps = np.array([wilcoxon_p(a[idx], b[idx]) for idx in (rng.integers(0, len(a), size) for _ in range(draws))])
    return [float((ps < alpha).mean()) for alpha in alphas]


def analyse(out: Path, optimizers: list[str], draws: int, seed: int) -> None:
    from tabulate import tabulate

    from deploybench.scoring.board import build_leaderboard
    from deploybench.scoring.metrics import loss

    board = build_leaderboard([out])
    rng = np.random.default_rng(seed)
    rows = []
    for group in board.groups:
        labels = {r.label for r in group.rows}
        if "random" not in labels:
            continue
        base = group.row("random").best_by_seed
        for name in [n for n in optimizers if n in labels and n != "random"]:
            mine = group.row(name).best_by_seed
            seeds = sorted(set(base) & set(mine))
            a = np.array([loss(mine[s], group.direction) for s in seeds])
            b = np.array([loss(base[s], group.direction) for s in seeds])
            cells = [group.key.task_label, name, len(seeds),
                     f"{np.mean([mine[s] for s in seeds]):.4g}", f"{np.mean([base[s] for s in seeds]):.4g}",
                     f"{(a < b).sum()}/{(a == b).sum()}/{(a > b).sum()}", f"{wilcoxon_p(a, b):.2g}"]
            for size in SEED_COUNTS:
                loose, holm = power(a, b, size, (0.05, 0.05 / LEADERBOARD_PAIRS), draws, rng)
                cells.append(f"{loose:.2f} / {holm:.2f}")
            rows.append(cells)
    headers = ["scenario", "optimizer", "seeds", "mean best", "random", "W/T/L vs random", "p (all seeds)",
               *[f"power n={n} (p<.05 / p<.05/55)" for n in SEED_COUNTS]]
    print(tabulate(rows, headers=headers, tablefmt="github"))


def _closest(name: str, choices) -> str:
    from deploybench.space import closest_name

    close = closest_name(name, list(choices))
    return f" (did you mean {close!r}?)" if close else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100, help="seeds 0..N-1 per case (default 100)")
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS), help="comma list; random is always added")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--out", type=Path, default=Path("results/deployment_power"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--draws", type=int, default=400, help="random seed subsets per power estimate")
    parser.add_argument("--analyse-only", action="store_true", help="only print the tables from --out")
    args = parser.parse_args()
    optimizers = list(dict.fromkeys(["random", *args.optimizers.split(",")]))
    scenarios = args.scenarios.split(",")
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}{_closest(unknown[0], SCENARIOS)}; "
                     f"allowed: {', '.join(SCENARIOS)}")
    if not args.analyse_only:
        from deploybench.plugins import create_plugin_manager

        installed = create_plugin_manager().optimizer_classes()
        missing = [n for n in optimizers if n not in installed]
        if missing:
            parser.error(f"unknown optimizer(s) {', '.join(missing)}{_closest(missing[0], installed)}; "
                         f"installed: {', '.join(sorted(installed))}")
    elif not args.out.is_dir():
        parser.error(f"--analyse-only reads the run records under --out, and {args.out} is not a folder")
    if args.seeds < 2:
        parser.error(f"--seeds must be at least 2 (a paired test needs pairs), got {args.seeds}")
    if not args.analyse_only:
        run_cases(optimizers, scenarios, args.seeds, args.out, args.workers)
    analyse(args.out, optimizers, args.draws, seed=0)


if __name__ == "__main__":
    main()
