#!/usr/bin/env bash
# The full phantom-v1 evaluation of the default model, from a clean snapshot of one commit, so the
# committed eval/results/phantom-v1/ names exactly the code and weights that made it.
#   eval/run_phantom_v1.sh [COMMIT] [extra spine-report eval options]
# Writes eval/results/phantom-v1/ (metrics.json, run.json, summary.md, studies.jsonl, plots/).
set -euo pipefail
cd "$(dirname "$0")/.."
commit=$(git rev-parse "${1:-HEAD}")
shift || true
snap=$(mktemp -d)
trap 'rm -rf "$snap"' EXIT
git archive "$commit" | tar -x -C "$snap"
out="${OUT:-$PWD/eval/results/phantom-v1}"
cd "$snap"  # the snapshot's reporter/ comes first on sys.path (before the editable install)
SPINE_REPORTER_COMMIT="$commit" PYTHONPATH="$snap" OMP_NUM_THREADS=1 \
  python -c 'import sys; from reporter.cli import main; sys.argv[0] = "spine-report"; main()' \
  eval --benchmark phantom-v1 --workers "${WORKERS:-2}" --out "$out" "$@"
