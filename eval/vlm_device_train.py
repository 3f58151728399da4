"""The default model's training run, time-boxed: phantoms in parallel, training, calibration.

The same functions as `spine-report train` (reporter.vlm.data.cache_phantoms, reporter.vlm.train),
with wall-clock budgets instead of fixed counts so that it fits one lease of the GPU machine:

    PYTHONPATH=. python eval/vlm_device_train.py --out OUT/model --workers 16 \
        --generate-seconds 50 --train-seconds 55

On a CPU the same command works (slower: fewer phantoms, fewer steps in the same budgets).
The seeds actually used are recorded in the shards and in train_summary.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from reporter.vlm.config import ViewConfig
from reporter.vlm.data import ShardSet, cache_phantoms
from reporter.vlm.train import TrainConfig, train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=Path("runs/vlm-cache"))
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--loader-workers", type=int, default=12)
    ap.add_argument("--generate-seconds", type=float, default=50)
    ap.add_argument("--train-seconds", type=float, default=55)
    ap.add_argument("--max-train", type=int, default=20000)
    ap.add_argument("--val", type=int, default=64)
    ap.add_argument("--steps", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    args = ap.parse_args()
    t0 = time.time()
    cfg = ViewConfig()
    n_val, _ = cache_phantoms(
        args.cache / "val", list(range(100_000, 100_000 + args.val)), ["site-a", "site-b"], cfg,
        workers=args.workers, shard_size=4,
    )  # fmt: skip
    print(f"validation phantoms: {n_val} in {time.time() - t0:.0f} s", flush=True)
    n_train, errors = cache_phantoms(
        args.cache / "train", list(range(args.max_train)), ["site-a", "site-b"], cfg,
        workers=args.workers, shard_size=6, priors=("realistic", "realistic", "balanced"),
        time_limit_s=args.generate_seconds,
    )  # fmt: skip
    print(f"training phantoms: {n_train} ({len(errors)} skipped) at {time.time() - t0:.0f} s",
          flush=True)  # fmt: skip
    seeds = sorted(m["seed"] for m in ShardSet.load([args.cache / "train"]).meta)
    tcfg = TrainConfig(
        steps=args.steps, batch_studies=args.batch, lr=args.lr, warmup=100,
        workers=args.loader_workers if torch.cuda.is_available() else 0,
        time_limit_s=args.train_seconds, checkpoint_every=10**9,
    )  # fmt: skip
    summary = train([args.cache / "train"], args.out, tcfg, val_dirs=[args.cache / "val"],
                    resume=False)  # fmt: skip
    summary["train_seeds"] = seeds
    summary["total_seconds"] = round(time.time() - t0, 1)
    (args.out / "train_summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print({k: v for k, v in summary.items() if k not in ("loss_history", "train_seeds")})


if __name__ == "__main__":
    main()
