#!/usr/bin/env bash
# Regenerate the published leaderboard: run every built-in optimizer and the SMAC and Nevergrad
# adapters (plugins/, installed by the README's test command) on every synthetic task and on the
# deployment scenarios replayed from the shipped tables (`edge_tight` from `edge`, the others from `cpu`), compact the records (no timings, the
# software versions stamped into each header, gzip), then write README.md, index.html (the same as a
# web page) and plots/ from them. Each task × optimizer run replaces only its own folder of
# leaderboard/runs, so one group can be refreshed without rerunning the others.
#
#   leaderboard/regenerate.sh                 # everything (6 tasks × 11 optimizers × 20 seeds = 1320 cases)
#   TASKS="crashy_branin hierarchical_rosenbrock crash_cliff" leaderboard/regenerate.sh
#                                             # 480 cases: 2 min 43 s wall on 2 cores (measured, -n 2)
#   OPTIMIZERS="random tpe" leaderboard/regenerate.sh
#   SEEDS=5 JOBS=4 leaderboard/regenerate.sh
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
JOBS="${JOBS:-2}"

if [ -z "${SKIP_RUNS:-}" ]; then
  args=()
  for o in $OPTIMIZERS; do args+=(-o "$o"); done
  for t in $TASKS; do args+=(-t "$t"); done
  rm -rf leaderboard/runs.new
  # exit status 1 (some case errored) still publishes: errored cases are shown in the tables
  "$DEPLOYBENCH" run "${args[@]}" --seeds "$SEEDS" --out leaderboard/runs.new -n "$JOBS" -q || [ $? -eq 1 ]
  "$PYTHON" leaderboard/compact_records.py leaderboard/runs.new
  for dir in leaderboard/runs.new/*/*/; do  # <task>/<optimizer>/
    name="${dir#leaderboard/runs.new/}"
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
