#!/usr/bin/env bash
# Regenerate the published leaderboard: run every built-in optimizer and the SMAC and Nevergrad
# adapters (plugins/, installed by the README's test command) on every synthetic task and on the
# deployment scenarios replayed from the shipped tables (`edge_tight` from `edge`, the others from `cpu`), compact the records (no timings, the
# software versions stamped into each header, gzip), then write README.md, index.html (the same as a
# web page) and plots/ from them. Each task × optimizer run replaces only its own folder of
# leaderboard/runs, so one group can be refreshed without rerunning the others.
#
# Seeds: 20 per synthetic case, 100 per deployment case (DEPLOYMENT_SEEDS). On the replayed deployment
# scenarios the optimizers' lead over random search is small against the spread between seeds, and a
# 20-seed Wilcoxon test with Holm's correction over the table's 55 pairs almost never sees it
# (benchmarks/deployment_power.py measures that power; docs/significance.md holds the figures); a replay
# costs no measurement, so those tables run 100 seeds.
#
#   leaderboard/regenerate.sh                 # everything: 3 synthetic tasks × 11 optimizers × 20 seeds
#                                             #   + 3 deployment scenarios × 11 × 100 = 3960 cases
#   TASKS="crashy_branin hierarchical_rosenbrock crash_cliff" leaderboard/regenerate.sh
#                                             # 480 cases: 2 min 43 s wall on 2 cores (measured, -n 2)
#   OPTIMIZERS="random tpe" leaderboard/regenerate.sh
#   SEEDS=5 DEPLOYMENT_SEEDS=5 JOBS=4 leaderboard/regenerate.sh
#   SKIP_RUNS=1 leaderboard/regenerate.sh     # keep leaderboard/runs, only rebuild README.md, index.html, plots/
#
# Neither page holds dates or timings: `deploybench leaderboard --check` (and tests/test_leaderboard.py)
# regenerates both from leaderboard/runs and fails when either differs from the committed file;
# `deploybench leaderboard --reproduce N` reruns N published cases and compares them trial by trial.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
cd "$ROOT"

DEPLOYBENCH="${DEPLOYBENCH:-deploybench}"
PYTHON="${PYTHON:-python}"
if [ -x "$ROOT/.venv/bin/deploybench" ]; then
  DEPLOYBENCH="$ROOT/.venv/bin/deploybench"
  PYTHON="$ROOT/.venv/bin/python"
fi
OPTIMIZERS="${OPTIMIZERS:-random tba tba_tpe tba_tpe_plus tpe cbo cbo_plus scout tpe_hyperband smac nevergrad}"
TASKS="${TASKS:-crashy_branin hierarchical_rosenbrock crash_cliff edge_tight server_throughput ultra_low_budget}"
SEEDS="${SEEDS:-20}"
DEPLOYMENT_SEEDS="${DEPLOYMENT_SEEDS:-100}"
DEPLOYMENT_TASKS="edge_tight server_throughput ultra_low_budget"
JOBS="${JOBS:-2}"

if [ -z "${SKIP_RUNS:-}" ]; then
  rm -rf leaderboard/runs.new
  for kind in synthetic deployment; do
    args=()
    for t in $TASKS; do
      case " $DEPLOYMENT_TASKS " in
        *" $t "*) [ "$kind" = deployment ] && args+=(-t "$t") ;;
        *) [ "$kind" = synthetic ] && args+=(-t "$t") ;;
      esac
    done
    [ ${#args[@]} -eq 0 ] && continue
    for o in $OPTIMIZERS; do args+=(-o "$o"); done
    seeds="$SEEDS"; [ "$kind" = deployment ] && seeds="$DEPLOYMENT_SEEDS"
    # exit status 1 (some case errored) still publishes: errored cases are shown in the tables
    "$DEPLOYBENCH" run "${args[@]}" --seeds "$seeds" --out "leaderboard/runs.new/$kind" -n "$JOBS" -q || [ $? -eq 1 ]
  done
  "$PYTHON" leaderboard/compact_records.py leaderboard/runs.new
  for dir in leaderboard/runs.new/*/*/*/; do  # <kind>/<task>/<optimizer>/
    name="${dir#leaderboard/runs.new/*/}"
    rm -rf "leaderboard/runs/$name"
    mkdir -p "$(dirname "leaderboard/runs/$name")"
    mv "$dir" "leaderboard/runs/$name"
  done
  rm -rf leaderboard/runs.new
fi

rm -rf leaderboard/plots
"$DEPLOYBENCH" leaderboard leaderboard/runs --references leaderboard/references.json \
  --plots leaderboard/plots --out leaderboard/README.md
"$DEPLOYBENCH" leaderboard --format html --out leaderboard/index.html  # the same, as a web page
rm -f leaderboard/plots/*.svg  # the README and the page show the PNGs; SVGs would be unlinked weight
"$DEPLOYBENCH" leaderboard --check > /dev/null
echo "leaderboard regenerated: leaderboard/README.md, leaderboard/index.html, leaderboard/plots/"
