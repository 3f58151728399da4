#!/usr/bin/env bash
# Real-MRI grading of one model on one split of SPIDER and Sudirman, through the users' path
# (`spine-report eval`: 2-D image ingest, DiscNet/SegNet2D anatomy, VLM, grounding), then the
# grading table with 95 % intervals by patient, AUC and ECE (eval/grading_ci.py), and for SPIDER
# the same per field strength (overview.csv).
#   [ADAPTER=DIR] eval/run_real_grading.sh MODEL_DIR SPLIT OUT_DIR [REAL_DIR]
# MODEL_DIR "default" = the embedded model. SPLIT: val (for choices) or test (once, at the end).
# ADAPTER: a LoRA adapter folder applied on top of the model.
set -euo pipefail
cd "$(dirname "$0")/.."
model="$1"; split="$2"; out="$3"; real="${4:-../shared/data/real}"
opts=()
[ "$model" != "default" ] && opts+=(--model "$model")
[ -n "${ADAPTER:-}" ] && opts+=(--adapter "$ADAPTER")
for set in spider sudirman; do
  dir=spider; [ "$set" = sudirman ] && dir=sudirman_sagittal
  python -m reporter.cli eval --data "$real/$dir" --format "$set" --split "$split" \
    "${opts[@]}" --out "$out/$set" > "$out.$set.log" 2>&1
  echo "## $set ($split)"
  by=()
  [ "$set" = spider ] && by=(--by field_strength --overview "$real/spider/overview.csv")
  python eval/grading_ci.py "$out/$set" "${by[@]}"
  python - "$out/$set/metrics.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
c = m.get("coverage", {})
print(f"failed {m.get('n_failed')}, graded discs found {c.get('graded_discs_found')}, "
      f"assessed (not indeterminate) {c.get('graded_discs_assessed')} of {c.get('n_graded_discs')}")
PY
done
