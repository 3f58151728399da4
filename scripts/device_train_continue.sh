#!/usr/bin/env bash
# A second, short GPU lease: continue the VLM of scripts/device_train.sh on fresh phantoms.
#   INIT=runs/gpu1/vlm bash scripts/device_train_continue.sh   (carry .whl and $INIT; $OUT set)
set -u
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
INIT=${INIT:-runs/gpu1/vlm}
SEED_START=${SEED_START:-2000}   # after the first run's seeds (0..1133)
T_GEN=${T_GEN:-140}
T_VLM=${T_VLM:-130}
source scripts/device_env.sh
mkdir -p runs/res
python3 scripts/vlm_device_train.py --generate-only --workers 12 --generate-seconds "$T_GEN" \
    --seed-start "$SEED_START" > "$OUT/gen.log" 2>&1 &
GEN=$!
timeout $((T_VLM + 120)) python3 scripts/vlm_device_train.py --train-only --out runs/res/vlm \
    --init "$INIT" --workers 4 --loader-workers 4 --train-seconds "$T_VLM" --batch 64 --lr 1e-3 \
    --reload-every 150 --min-shards 20 --max-wait 60 > "$OUT/vlm.log" 2>&1
echo "vlm rc $?"
kill $GEN 2>/dev/null; wait $GEN
rm -rf runs/res/vlm/checkpoint
tar -C runs/res -czf "$OUT/result.tar.gz" vlm && ls -la "$OUT"
for f in "$OUT"/*.log; do echo "== $f"; tail -n 4 "$f"; done
