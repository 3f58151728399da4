"""The default model's training run, time-boxed: phantoms in parallel, training, calibration.

The same functions as `spine-report train` (reporter.training.vlm_data.cache_phantoms,
reporter.training.vlm_train),
with wall-clock budgets instead of fixed counts so that it fits one lease of the GPU machine.
Sequential (generate, then train):

    PYTHONPATH=. python scripts/vlm_device_train.py --out OUT/model --workers 16 \
        --generate-seconds 50 --train-seconds 55

Overlapped (scripts/device_train.sh): one process caches training phantoms (`--generate-only`)
while another trains on the shards written so far and re-reads the folder every
`--reload-every` steps (`--train-only`), so generation and training share the lease.

On a CPU the same commands work (slower: fewer phantoms, fewer steps in the same budgets).
The seeds actually trained on are recorded in train_summary.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from reporter.training.vlm_data import cache_phantoms
from reporter.training.vlm_train import TrainConfig, train
from reporter.vlm.config import ViewConfig

TRAIN_SITES = ["site-a", "site-b"]
# Two realistic shards for each balanced one: rare grades still get enough examples.
TRAIN_PRIORS = ("realistic", "realistic", "balanced")


def generate_train(args: argparse.Namespace, cfg: ViewConfig, t0: float) -> None:
    seeds = list(range(args.seed_start, args.seed_start + args.max_train))
    n_train, errors = cache_phantoms(
        args.cache / "train", seeds, TRAIN_SITES, cfg,
        workers=args.workers, shard_size=6, priors=TRAIN_PRIORS,
        time_limit_s=args.generate_seconds,
    )  # fmt: skip
    print(f"training phantoms: {n_train} ({len(errors)} skipped) at {time.time() - t0:.0f} s",
          flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, help="Model folder to write (not with --generate-only).")
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
    ap.add_argument("--vision-steps", type=int, default=600, help="grade-heads-only steps first")
    ap.add_argument("--aux-weight", type=float, default=0.5, help="grade heads' loss weight")
    ap.add_argument(
        "--generate-only",
        action="store_true",
        help="Only cache training phantoms (beside a --train-only process).",
    )
    ap.add_argument(
        "--train-only",
        action="store_true",
        help="Train on shards another process is still writing.",
    )
    ap.add_argument(
        "--min-shards",
        type=int,
        default=40,
        help="With --train-only: wait until this many training shards exist.",
    )
    ap.add_argument(
        "--max-wait",
        type=float,
        default=240,
        help="With --train-only: start after this many seconds whatever exists.",
    )
    ap.add_argument(
        "--reload-every",
        type=int,
        default=0,
        help="Re-read the training folder every this many steps (0 = never).",
    )
    ap.add_argument(
        "--seed-start",
        type=int,
        default=0,
        help="First training seed (a continuation run "
        "starts after the seeds the first run used; all within 0..99,999).",
    )
    ap.add_argument(
        "--init",
        type=Path,
        default=None,
        help="Start from this model folder's weights (continue a finished run on more data).",
    )
    args = ap.parse_args()
    t0 = time.time()
    cfg = ViewConfig()
    if args.generate_only:
        generate_train(args, cfg, t0)
        return
    if args.out is None:
        ap.error("--out is required unless --generate-only")
    n_val, _ = cache_phantoms(
        args.cache / "val", list(range(100_000, 100_000 + args.val)), TRAIN_SITES, cfg,
        workers=args.workers, shard_size=4,
    )  # fmt: skip
    print(f"validation phantoms: {n_val} in {time.time() - t0:.0f} s", flush=True)
    if args.train_only:
        shards = args.cache / "train"
        while (
            len(list(shards.glob("views-*.safetensors"))) < args.min_shards
            and time.time() - t0 < args.max_wait
        ):
            time.sleep(2)
        print(f"training starts at {time.time() - t0:.0f} s", flush=True)
    else:
        generate_train(args, cfg, t0)
    tcfg = TrainConfig(
        steps=args.steps, batch_studies=args.batch, lr=args.lr, warmup=100,
        workers=args.loader_workers if torch.cuda.is_available() else 0,
        time_limit_s=args.train_seconds, checkpoint_every=10**9,
        reload_every=args.reload_every, vision_steps=args.vision_steps,
        aux_weight=args.aux_weight,
    )  # fmt: skip
    summary = train([args.cache / "train"], args.out, tcfg, val_dirs=[args.cache / "val"],
                    resume=False, init=args.init)  # fmt: skip
    summary["total_seconds"] = round(time.time() - t0, 1)
    written = json.loads((args.out / "train_summary.json").read_text())
    written["total_seconds"] = summary["total_seconds"]
    (args.out / "train_summary.json").write_text(json.dumps(written, indent=1, default=str))
    print({k: v for k, v in summary.items() if k not in ("loss_history", "train_seeds")})


if __name__ == "__main__":
    main()
