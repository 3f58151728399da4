"""SegNet2D: vertebra / disc / canal on one real sagittal image, from SPIDER's masks.

    python -m reporter.training.seg2d_train --real ../shared/data/real --out runs/segnet \\
        [--seconds 1500] [--threads 2] [--device cpu|cuda]

Data: ../shared/data/real/spider_slices (T2 SPACE slices with 3-class masks; see its README),
patients of the ``train`` split only (reporter.datasets.splits). The set has no ``val`` patients
under the fixed split, so nothing is selected on held-out data: the recipe is fixed and the last
weights are kept; `spine-report eval --format spider-slices --split test` measures them.

The masks come from one sequence of one data set, and users bring T1 and T2 from other
scanners. Augmentation therefore changes contrast between tissues, not only brightness: per
sample, a random offset is added inside each labelled class (SynthSeg-style, so a disc can turn
dark and CSF grey as on T1), then gamma, gain, noise, a smooth bias field, contrast inversion,
zoom, crop and rotation. Checkpoints every ``--checkpoint-every`` seconds and resumes.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from reporter.datasets.splits import split_of
from reporter.ingest.image2d_nets import SEG_CLASSES, SEG_SIZE, SegNet2D, fit_square
from reporter.training.image2d_train import TimeSchedule, batches, intensity_jitter, save_net
from reporter.training.real_labels import spider_slice_items
from reporter.training.run_state import Checkpoint, add_common_args


def _fit_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """The nearest-neighbour twin of fit_square for a label mask."""
    rows, cols = mask.shape
    scale = size / max(rows, cols)
    nr, nc = max(1, round(rows * scale)), max(1, round(cols * scale))
    t = torch.from_numpy(mask.astype(np.float32))[None, None]
    small = F.interpolate(t, size=(nr, nc), mode="nearest")[0, 0].numpy()
    out = np.zeros((size, size), dtype=np.int64)
    out[:nr, :nc] = small
    return out


def seg_sample(item: dict[str, Any], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    img, mask = item["canonical"].copy(), item["mask"]
    if rng.random() < 0.7:  # tissue contrast changed per class
        for k in range(1, len(SEG_CLASSES)):
            img[mask == k] += rng.uniform(-0.5, 0.5)
        img = np.clip(img, 0, 1)
    img = intensity_jitter(img, rng)
    if rng.random() < 0.2:
        img = 1.0 - np.clip(img, 0, 1)
    r, c = img.shape
    if rng.random() < 0.5:  # crop
        top, left = int(r * rng.uniform(0, 0.25)), int(c * rng.uniform(0, 0.2))
        bottom, right = r - int(r * rng.uniform(0, 0.15)), c - int(c * rng.uniform(0, 0.2))
        img, mask = img[top:bottom, left:right], mask[top:bottom, left:right]
    elif rng.random() < 0.5:  # zoom out onto a noisy canvas
        pad = rng.uniform(0.0, 0.5)
        pr, pc = int(r * pad), int(c * pad)
        top, left = rng.integers(0, pr + 1), rng.integers(0, pc + 1)
        canvas = rng.normal(0.05, 0.03, (r + pr, c + pc)).astype(np.float32)
        mcan = np.zeros((r + pr, c + pc), dtype=mask.dtype)
        canvas[top : top + r, left : left + c] = img
        mcan[top : top + r, left : left + c] = mask
        img, mask = canvas, mcan
    sq, _, _ = fit_square(img, SEG_SIZE)
    m = _fit_mask(mask, SEG_SIZE)
    ang = math.radians(rng.uniform(-12, 12))
    cos, sin = math.cos(ang), math.sin(ang)
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=torch.float32)[None]
    grid = F.affine_grid(theta, [1, 1, SEG_SIZE, SEG_SIZE], align_corners=False)
    sq = F.grid_sample(torch.from_numpy(sq)[None, None], grid, align_corners=False)[0, 0]
    mt = torch.from_numpy(m.astype(np.float32))[None, None]
    m = F.grid_sample(mt, grid, mode="nearest", align_corners=False)[0, 0]
    return sq.numpy().astype(np.float32), m.numpy().astype(np.int64)


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy plus soft Dice over the foreground classes (thin discs would otherwise be
    outvoted by background)."""
    ce = F.cross_entropy(logits, target)
    prob = logits.softmax(1)
    one = F.one_hot(target, prob.shape[1]).permute(0, 3, 1, 2).float()
    inter = (prob * one).sum((0, 2, 3))
    dice = (2 * inter + 1) / (prob.sum((0, 2, 3)) + one.sum((0, 2, 3)) + 1)
    return ce + (1 - dice[1:]).mean()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap, width=16, batch=6)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    items = spider_slice_items(args.real / "spider_slices")
    train = [it for it in items if split_of(it["patient_id"]) == "train"]
    n_pat = len({it["patient_id"] for it in train})
    print(f"train slices {len(train)} ({n_pat} patients)", flush=True)
    net = SegNet2D(width=args.width).to(args.device)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = TimeSchedule(opt, args.lr, args.seconds)
    ckpt = Checkpoint(args.out, args.checkpoint_every)
    step = ckpt.resume(net, sched)
    stream = batches(seg_sample, train, args.batch, args.seed + step, args.workers)
    while sched.step():
        xs, ms = zip(*next(stream), strict=True)
        x = torch.from_numpy(np.stack(xs))[:, None].to(args.device)
        y = torch.from_numpy(np.stack(ms)).to(args.device)
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 100 == 0:
            print(f"step {step} loss {loss.item():.4f} t {time.time() - sched.t0:.0f}s", flush=True)
        ckpt.maybe_save(net, step, sched)
    save_net(
        net.cpu(),
        args.out,
        "seg_net",
        {
            "arch": "SegNet2D",
            "width": args.width,
            "input": SEG_SIZE,
            "classes": list(SEG_CLASSES),
            "trained_on": f"spider_slices, train split ({len(train)} slices, {n_pat} patients)",
            "steps": step,
            "command": "python -m reporter.training.seg2d_train --real ../shared/data/real "
            f"--out OUT --seconds {args.seconds:.0f} --width {args.width}",
        },
    )
    print(f"saved after {step} steps", flush=True)


if __name__ == "__main__":
    main()
