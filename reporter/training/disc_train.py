"""DiscNet v2: every disc in view and the five lumbar names, trained on real labelled images.

    python -m reporter.training.disc_train --real ../shared/data/real --out runs/discnet \\
        [--seconds 1500] [--threads 2] [--device cpu|cuda]

Data (reporter.training.real_labels): sudirman_sagittal disc boxes, spider_slices disc masks and
lumbar3d level masks; only patients of the ``train`` split (reporter.datasets.splits) are trained
on, ``val`` is printed while training and picks nothing by hand, ``test`` is never read here
(`spine-report eval --split test` measures it through the product's own 2-D path).

Targets: six heatmaps at half resolution, L1-L2 ... L5-S1 and "every disc in view". A channel
is trained only where its label is known: a lumbar name that a set cannot give (a far-lateral
SPIDER slice with fewer than five discs, an image with fewer than five disc boxes) and the
every-disc channel of lumbar3d (which labels only the five lumbar discs) carry no loss, so the
network is never taught that a real disc is background.

Augmentation (per sample): contrast inversion, gamma, gain, noise, smooth bias field, zoom-out
onto a noisy canvas, crops that cut the cranial end and the sides (fields of view vary; the
caudal end is cut only slightly, because the count starts at the sacrum), rotation +-15 degrees.

The run checkpoints every ``--checkpoint-every`` seconds to OUT/checkpoint.safetensors (+ JSON
with the step and elapsed time) and resumes from it when started again with the same OUT.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from reporter.datasets.splits import split_of
from reporter.ingest.image2d_nets import (
    ANY_DISC,
    DISC_LEVELS,
    DISC_SIZE,
    DiscNet,
    decode_chain,
    fit_square,
)
from reporter.training.image2d_train import TimeSchedule, batches, intensity_jitter, save_net
from reporter.training.real_labels import real_items
from reporter.training.run_state import Checkpoint, add_common_args

N_OUT = len(DISC_LEVELS) + 1
SIGMA = 1.5


def _augment_geometry(
    img: np.ndarray, pts: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    r, c = img.shape
    if rng.random() < 0.5:  # crop: cranial end and sides freely, caudal end a little
        top = int(r * rng.uniform(0, 0.3))
        bottom = r - int(r * rng.uniform(0, 0.05))
        left = int(c * rng.uniform(0, 0.2))
        right = c - int(c * rng.uniform(0, 0.2))
        img, pts = img[top:bottom, left:right], pts - np.array([top, left])
        r, c = img.shape
    if rng.random() < 0.5:  # zoom out: real studies show more than lumbar3d's 22 cm
        pad = rng.uniform(0.0, 0.6)
        pr, pc = int(r * pad), int(c * pad * rng.uniform(0.3, 1.0))
        top, left = rng.integers(0, pr + 1), rng.integers(0, pc + 1)
        canvas = rng.normal(0.05, 0.03, (r + pr, c + pc)).astype(np.float32)
        canvas[top : top + r, left : left + c] = img
        img, pts = canvas, pts + np.array([top, left])
    return img, pts


def disc_sample(
    item: dict[str, Any], rng: np.random.Generator, augment: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(image, lumbar keypoints (5, 3) row/col/in-view, known (6,), every-disc points (n, 3))."""
    img = item["canonical"]
    lumbar, every = item["discs"], item["all_discs"]
    known = np.concatenate(
        [np.isfinite(lumbar).all(1), [not item.get("partial_chain", False)]]
    ).astype(np.float32)
    pts = np.concatenate([np.nan_to_num(lumbar, nan=-1e4), every.reshape(-1, 2)], 0)
    if augment:
        img = intensity_jitter(img, rng)
        if rng.random() < 0.15:
            img = 1.0 - np.clip(img, 0, 1)  # contrast inversion: learn shape, not brightness
        img, pts = _augment_geometry(img, pts, rng)
    sq, scale, _ = fit_square(img, DISC_SIZE)
    pts = pts * scale
    if augment:
        ang = math.radians(rng.uniform(-15, 15))
        cos, sin = math.cos(ang), math.sin(ang)
        theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=torch.float32)[None]
        t = torch.from_numpy(sq)[None, None]
        grid = F.affine_grid(theta, list(t.shape), align_corners=False)
        sq = F.grid_sample(t, grid, align_corners=False)[0, 0].numpy()
        n = DISC_SIZE
        xy = np.stack([(2 * pts[:, 1] + 1) / n - 1, (2 * pts[:, 0] + 1) / n - 1], 1)
        xy = xy @ np.array([[cos, sin], [-sin, cos]]).T
        pts = np.stack([((xy[:, 1] + 1) * n - 1) / 2, ((xy[:, 0] + 1) * n - 1) / 2], 1)
    vis = (pts >= 0).all(1) & (pts < DISC_SIZE).all(1)
    kp = np.concatenate([pts, vis[:, None]], 1)
    return sq.astype(np.float32), kp[: len(DISC_LEVELS)], known, kp[len(DISC_LEVELS) :]


def _train_sample(item: dict[str, Any], rng: np.random.Generator) -> Any:
    return disc_sample(item, rng, True)


def targets(samples: list[Any], size: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, 6, size, size) Gaussian targets and (B, 6) channel weights (0 = label unknown)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    f = size / DISC_SIZE
    out = np.zeros((len(samples), N_OUT, size, size), dtype=np.float32)
    weights = np.zeros((len(samples), N_OUT), dtype=np.float32)

    def blob(r: float, c: float) -> np.ndarray:
        rr, cc = (r + 0.5) * f - 0.5, (c + 0.5) * f - 0.5
        return np.exp(-((yy - rr) ** 2 + (xx - cc) ** 2) / (2 * SIGMA**2))

    for i, (_, kp, known, every) in enumerate(samples):
        weights[i] = known
        for ch in range(len(DISC_LEVELS)):
            if kp[ch, 2] > 0:
                out[i, ch] = blob(kp[ch, 0], kp[ch, 1])
        for r, c, v in every:
            if v > 0:
                out[i, ANY_DISC] = np.maximum(out[i, ANY_DISC], blob(r, c))
    return out, weights


@torch.no_grad()
def predict(net: DiscNet, canonical: np.ndarray, device: str = "cpu") -> tuple[Any, Any, Any]:
    """Lumbar (5, 2), their scores and the cranial chain (n, 2), in `canonical`'s pixels."""
    sq, scale, _ = fit_square(canonical, DISC_SIZE)
    logits = net(torch.from_numpy(sq)[None, None].to(device))[0].cpu()
    pos, score, cranial = decode_chain(logits)
    f = logits.shape[-1] / DISC_SIZE

    def back(p: np.ndarray) -> np.ndarray:
        return ((p + 0.5) / f - 0.5) / scale

    chain = back(np.array([c[:2] for c in cranial])) if cranial else np.zeros((0, 2))
    return back(pos), score, chain


def score_item(net: DiscNet, item: dict[str, Any], device: str) -> dict[str, float]:
    """Per image: every labelled disc detected (a predicted disc within 0.35 of the local disc
    step, each prediction used once) and each known lumbar name right (its own disc nearest)."""
    lumbar, _, chain = predict(net, item["canonical"], device)
    preds = np.concatenate([chain[::-1], lumbar], 0) if len(chain) else lumbar
    truth = item["all_discs"]
    if len(truth) >= 2:
        step = float(np.median(np.linalg.norm(np.diff(truth, axis=0), axis=1)))
    else:
        step = float("nan")
    tol = 0.35 * step
    detected = 0
    free = np.ones(len(preds), dtype=bool)
    for t in truth:
        d = np.where(free, np.linalg.norm(preds - t, axis=1), np.inf)
        j = int(np.argmin(d))
        if d[j] < tol:
            free[j] = False
            detected += 1
    named = known = 0
    for k in range(len(DISC_LEVELS)):
        if np.isfinite(item["discs"][k]).all():
            known += 1
            named += int(np.linalg.norm(lumbar[k] - item["discs"][k]) < tol)
    return {
        "detected": detected,
        "n_discs": len(truth),
        "named": named,
        "n_named": known,
        "five_right": float(known == 5 and named == 5),
    }


def evaluate(net: DiscNet, items: list[dict[str, Any]], device: str) -> dict[str, Any]:
    net.eval()
    out: dict[str, Any] = {}
    for src in sorted({it["source"] for it in items}):
        rows = [score_item(net, it, device) for it in items if it["source"] == src]
        five = [r["five_right"] for r in rows if r["n_named"] == 5]
        out[src] = {
            "n_images": len(rows),
            "detect_rate": sum(r["detected"] for r in rows)
            / max(1, sum(r["n_discs"] for r in rows)),
            "lumbar_named_right": sum(r["named"] for r in rows)
            / max(1, sum(r["n_named"] for r in rows)),
            "five_lumbar_right": float(np.mean(five)) if five else None,
        }
    net.train()
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap, width=12, batch=12)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    items = real_items(args.real)
    train = [it for it in items if split_of(it["patient_id"]) == "train"]
    val = [it for it in items if split_of(it["patient_id"]) == "val"]
    print(
        f"train images {len(train)} ({len({it['patient_id'] for it in train})} patients), "
        f"val {len(val)}",
        flush=True,
    )
    net = DiscNet(width=args.width, n_out=N_OUT).to(args.device)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = TimeSchedule(opt, args.lr, args.seconds)
    ckpt = Checkpoint(args.out, args.checkpoint_every)
    step0 = ckpt.resume(net, sched)
    stream = batches(_train_sample, train, args.batch, args.seed + step0, args.workers)
    hm = DISC_SIZE // 2
    step = step0
    while sched.step():
        samples = next(stream)
        x = torch.from_numpy(np.stack([s[0] for s in samples]))[:, None].to(args.device)
        tgt, w = targets(samples, hm)
        tgt_t, w_t = torch.from_numpy(tgt).to(args.device), torch.from_numpy(w).to(args.device)
        logits = net(x)
        per = F.binary_cross_entropy_with_logits(logits, tgt_t, reduction="none") * (1 + 30 * tgt_t)
        loss = (per.mean((2, 3)) * w_t).sum() / w_t.sum().clamp(min=1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 200 == 0:
            print(f"step {step} loss {loss.item():.4f} t {time.time() - sched.t0:.0f}s", flush=True)
        ckpt.maybe_save(net, step, sched)
    net = net.cpu()
    metrics = {"steps": step, "val": evaluate(net, val, "cpu")}
    print(json.dumps(metrics, indent=1), flush=True)
    save_net(
        net,
        args.out,
        "disc_net",
        {
            "arch": "DiscNet",
            "width": args.width,
            "n_out": N_OUT,
            "input": DISC_SIZE,
            "levels": [*DISC_LEVELS, "any"],
            "trained_on": "sudirman_sagittal + spider_slices + lumbar3d, train split",
            "command": "python -m reporter.training.disc_train --real ../shared/data/real "
            f"--out OUT --seconds {args.seconds:.0f} --width {args.width}",
            "metrics": metrics,
        },
    )


if __name__ == "__main__":
    main()
