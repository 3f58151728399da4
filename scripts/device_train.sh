#!/usr/bin/env bash
# One GPU lease, two trainings side by side (the default VLM and the built-in segmenter).
# Run by the lead through the device tool from the repository root:
#   bash scripts/device_train.sh        (needs .whl/ and runs/lumbar3d-train carried; $OUT set)
# The GPU image lacks some of our dependencies; fetch them here first (git-ignored .whl/):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     pydantic==2.13.4 pydantic_core==2.46.4 annotated_types typing_inspection==0.4.2 \
#     open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.7.0 monai==1.6.1 pydicom==3.0.2 \
#     nibabel==5.4.2 highdicom==0.28.2
# and copy the lumbar3d training split (ivd_11, ivd_20, vb3_01..07) to runs/lumbar3d-train.
# Budgets below add up to < 9.5 minutes of wall clock. Everything the run made comes back as
# $OUT/result.tar.gz (model folders without optimizer checkpoints) plus the logs.
set -u
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
T_GEN=${T_GEN:-330}        # seconds of phantom caching for the VLM
T_VLM=${T_VLM:-390}        # seconds of VLM training
T_SEG_MIN=${T_SEG_MIN:-7.0}  # minutes of segmenter training
source scripts/device_env.sh
python3 -c "import torch, open_clip, monai, pydantic, reporter.training.vlm_train, reporter.training.segmenter_train; print(torch.__version__, torch.cuda.is_available())" || exit 4
mkdir -p runs/res
python3 -m reporter.cli train-segmenter --out runs/res/segmenter --init reporter/weights/segmenter \
    --device "$DEVICE" --workers 5 --max-minutes "$T_SEG_MIN" --steps 1000000 --batch-size 16 \
    --crop 160 --pool-size 6 --refresh-every 30 --real runs/lumbar3d-train --lr 1e-3 --seed 3 \
    > "$OUT/seg.log" 2>&1 &
SEG=$!
python3 scripts/vlm_device_train.py --generate-only --workers 8 --generate-seconds "$T_GEN" \
    > "$OUT/gen.log" 2>&1 &
GEN=$!
python3 scripts/vlm_device_train.py --train-only --out runs/res/vlm --workers 4 --loader-workers 3 \
    --train-seconds "$T_VLM" --batch 64 --lr 2e-3 --reload-every 300 --min-shards 30 --max-wait "${T_WAIT:-120}" \
    > "$OUT/vlm.log" 2>&1
echo "vlm rc $?"
wait $GEN; echo "gen rc $?"
wait $SEG; echo "seg rc $?"
rm -rf runs/res/vlm/checkpoint
tar -C runs/res --exclude=checkpoint.safetensors -czf "$OUT/result.tar.gz" . && ls -la "$OUT"
for f in "$OUT"/*.log; do echo "== $f"; tail -n 4 "$f"; done
