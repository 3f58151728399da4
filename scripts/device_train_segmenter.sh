#!/usr/bin/env bash
# One GPU lease for the built-in segmenter alone: grow the shipped 2-D model into a 2.5-D one
# (each slice with its neighbours as input channels; `--context-slices 1`) and train on.
# Run by the lead through the device tool from the repository root:
#   bash scripts/device_train_segmenter.sh   (carry .whl and runs/lumbar3d-train; $OUT set)
# .whl/ and runs/lumbar3d-train are made as the header of scripts/device_train.sh says.
# DEVICE=cpu T_SEG_MIN=0.3 WORKERS=1 OUT=/tmp/o bash scripts/device_train_segmenter.sh: a smoke test.
set -u
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
T_SEG_MIN=${T_SEG_MIN:-7.5}   # minutes of training
WORKERS=${WORKERS:-14}
INIT=${INIT:-reporter/weights/segmenter}
source scripts/device_env.sh
python3 -c "import torch, monai, reporter.training.segmenter_train; print(torch.__version__, torch.cuda.is_available())" || exit 4
mkdir -p runs/res
python3 -m reporter.cli train-segmenter --out runs/res/segmenter25 --init "$INIT" \
    --context-slices 1 --device "$DEVICE" --workers "$WORKERS" --max-minutes "$T_SEG_MIN" \
    --steps 1000000 --batch-size 16 --crop 160 --pool-size 28 --refresh-every 30 \
    --real runs/lumbar3d-train --lr "${LR:-1e-3}" --seed "${SEED:-4}" > "$OUT/seg.log" 2>&1
echo "seg rc $?"
tar -C runs/res --exclude=checkpoint.safetensors -czf "$OUT/result.tar.gz" segmenter25 && ls -la "$OUT"
tail -c 600 "$OUT/seg.log"
