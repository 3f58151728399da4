"""Training of the 2-D input networks (OrientNet, DiscNet) on real images.

    python -m reporter.training.image2d_train --data runs/realmri/data.npz --out OUT [--device cuda]

`--data` is an .npz made by ``scripts/baselines_spider.py prepare`` from ../shared/data/real (never
committed): ``spider/<name>`` native 8-bit SPIDER images, ``l3d/<volume>`` and ``l3dseg/<volume>``
a few near-midline sagittal slices of each lumbar3d volume and their masks.

Ground truth for orientation: every one of the 360 SPIDER training images was inspected (contact
sheets of all of them): all show the sacrum at the top and the abdomen at the left, i.e.
orientation code 6 ("superior at the bottom, anterior at the left"); lumbar3d slices are stored
in the standard display (code 0, the README's axis order). Training draws a random one of the
eight orientations per sample, so every label is known exactly. Weighting labels come from the
SPIDER file names (t1 / t2 / t2_SPACE) and the lumbar3d JSON (vb3 = T1 FFE, ivd = T2 FSE).

Disc positions for DiscNet come from the lumbar3d masks: ivd volumes label the five discs
directly (centroids); vb3 volumes label the five vertebral bodies, and a disc centre is taken
halfway between the centroids of the bodies above and below it (L5-S1: half a step below L5).

Splits: SPIDER patients and lumbar3d volumes go through reporter.datasets.splits.split_of
(ids ``spider-<n>``, ``lumbar3d-<stem>``); only ``train`` ids are trained on, ``val`` picks the
checkpoint, and metrics are printed for ``val`` and ``test``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch.nn import functional as F

from reporter.datasets.splits import split_of
from reporter.ingest.image2d_nets import (
    DISC_LEVELS,
    DISC_SIZE,
    N_ORIENTATIONS,
    ORIENT_SIZE,
    DiscNet,
    OrientNet,
    apply_orientation,
    decode_discs,
    fit_square,
    normalize,
    undo_orientation,
)

SPIDER_NATIVE_ORIENTATION = 6  # by inspection of all 360 images, see the module docstring


# ----------------------------------------------------------------------------- data
def load_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def spider_items(arrays: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    items = []
    for key, img in arrays.items():
        if not key.startswith("spider/"):
            continue
        name = key.split("/", 1)[1]
        patient, series = name.split("_", 1)
        items.append(
            {
                "name": name,
                "patient_id": f"spider-{patient}",
                "series": series,
                "canonical": normalize(undo_orientation(img, SPIDER_NATIVE_ORIENTATION)),
                "weighting": 0 if series == "t1" else 1,
            }
        )
    return items


def disc_centres_from_mask(seg: np.ndarray, stem: str) -> np.ndarray:
    """(5, 2) disc centres (row, col) L1-L2..L5-S1 on one slice; NaN where undefined."""
    out = np.full((len(DISC_LEVELS), 2), np.nan)

    def centroid(v: int) -> np.ndarray | None:
        rr, cc = np.nonzero(seg == v)
        return None if rr.size < 20 else np.array([rr.mean(), cc.mean()])

    if stem.startswith("ivd"):
        # labels 1..5 = L5-S1 .. L1-L2
        for v in range(1, 6):
            c = centroid(v)
            if c is not None:
                out[5 - v] = c
    else:
        # labels 1..5 = L1..L5 vertebral bodies
        bodies = [centroid(v) for v in range(1, 6)]
        for i in range(4):
            if bodies[i] is not None and bodies[i + 1] is not None:
                out[i] = (bodies[i] + bodies[i + 1]) / 2
        if bodies[3] is not None and bodies[4] is not None:
            out[4] = bodies[4] + (bodies[4] - bodies[3]) / 2
    return out


def l3d_items(arrays: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    items = []
    for key, vol in arrays.items():
        if not key.startswith("l3d/"):
            continue
        stem = key.split("/", 1)[1]
        seg = arrays[f"l3dseg/{stem}"]
        for k in range(vol.shape[2]):
            discs = disc_centres_from_mask(seg[:, :, k], stem)
            items.append(
                {
                    "name": f"{stem}#{k}",
                    "patient_id": f"lumbar3d-{stem}",
                    "canonical": normalize(vol[:, :, k]),
                    "weighting": 0 if stem.startswith("vb3") else 1,
                    "discs": discs,
                }
            )
    return items


def phantom_items(path: Path) -> list[dict[str, Any]]:
    """Mid-sagittal phantom slices (training seeds of reporter.synth.seeds) with disc centres,
    as written by runs/realmri/gen_phantoms.py: ``ph/<seed>_<role>`` and ``phdiscs/...``."""
    arrays = load_arrays(path)
    items = []
    for key, img in arrays.items():
        if not key.startswith("ph/"):
            continue
        name = key.split("/", 1)[1]
        discs = arrays[f"phdiscs/{name}"]
        if not np.isfinite(discs).all():
            continue
        items.append(
            {
                "name": name,
                "patient_id": f"phantom-{name.split('_')[0]}",
                "canonical": normalize(img),
                "weighting": 0 if name.endswith("t1") else 1,
                "discs": discs.astype(float),
            }
        )
    return items


# ----------------------------------------------------------------------------- augmentation
def intensity_jitter(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img = np.clip(img, 0, 1) ** rng.uniform(0.6, 1.6)
    img = img * rng.uniform(0.8, 1.2) + rng.normal(0, rng.uniform(0.0, 0.05), img.shape)
    # A smooth multiplicative bias field (receive-coil shading).
    r, c = img.shape
    yy, xx = np.mgrid[0:r, 0:c] / max(r, c)
    bias = 1 + rng.uniform(-0.3, 0.3) * (yy - 0.5) + rng.uniform(-0.3, 0.3) * (xx - 0.5)
    return np.clip(img * bias, 0, 1.5).astype(np.float32)


def random_crop(img: np.ndarray, rng: np.random.Generator, lo: float = 0.6) -> np.ndarray:
    r, c = img.shape
    h, w = int(r * rng.uniform(lo, 1.0)), int(c * rng.uniform(lo, 1.0))
    y, x = rng.integers(0, r - h + 1), rng.integers(0, c - w + 1)
    return img[y : y + h, x : x + w]


def orient_sample(item: dict[str, Any], rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
    img = random_crop(item["canonical"], rng)
    img = intensity_jitter(img, rng)
    code = int(rng.integers(0, N_ORIENTATIONS))
    sq, _, _ = fit_square(apply_orientation(img, code), ORIENT_SIZE)
    # The pad always sits bottom-right in fit_square; roll it so its place is no cue.
    sq = np.roll(sq, (rng.integers(0, ORIENT_SIZE // 4), rng.integers(0, ORIENT_SIZE // 4)), (0, 1))
    return sq, code, item["weighting"]


def disc_sample(
    item: dict[str, Any], rng: np.random.Generator, augment: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(DISC_SIZE, DISC_SIZE) image and (5, 3) keypoints (row, col, visible) in its pixels."""
    img = item["canonical"]
    pts = item["discs"].copy()
    if augment:
        img = intensity_jitter(img, rng)
        if rng.random() < 0.15:
            img = 1.0 - np.clip(img, 0, 1)  # contrast inversion: learn shape, not brightness
        # Zoom out: real studies show more than lumbar3d's 22 cm (thoracic spine, pelvis).
        pad = rng.uniform(0.0, 0.8)
        r, c = img.shape
        pr, pc = int(r * pad), int(c * pad * rng.uniform(0.3, 1.0))
        top, left = rng.integers(0, pr + 1), rng.integers(0, pc + 1)
        canvas = rng.normal(0.05, 0.03, (r + pr, c + pc)).astype(np.float32)
        canvas[top : top + r, left : left + c] = img
        img, pts = canvas, pts + np.array([top, left])
    sq, scale, _ = fit_square(img, DISC_SIZE)
    pts = pts * scale
    if augment:
        # Small rotation and shift, applied to image and points together.
        ang = math.radians(rng.uniform(-15, 15))
        t = torch.from_numpy(sq)[None, None]
        cos, sin = math.cos(ang), math.sin(ang)
        theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=torch.float32)[None]
        grid = F.affine_grid(theta, list(t.shape), align_corners=False)
        sq = F.grid_sample(t, grid, align_corners=False)[0, 0].numpy()
        # grid maps output -> input; points go input -> output through the inverse rotation.
        n = DISC_SIZE
        xy = np.stack([(2 * pts[:, 1] + 1) / n - 1, (2 * pts[:, 0] + 1) / n - 1], 1)
        inv = np.array([[cos, sin], [-sin, cos]])
        xy = xy @ inv.T
        pts = np.stack([((xy[:, 1] + 1) * n - 1) / 2, ((xy[:, 0] + 1) * n - 1) / 2], 1)
    vis = np.isfinite(pts).all(1) & (pts >= 0).all(1) & (pts < DISC_SIZE).all(1)
    return sq.astype(np.float32), np.concatenate([np.nan_to_num(pts), vis[:, None]], 1)


def _disc_train_sample(item: dict[str, Any], rng: np.random.Generator) -> Any:
    return disc_sample(item, rng, True)


def heatmap_targets(kp: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """(B, 5, size, size) Gaussians at keypoints given in DISC_SIZE pixels (half resolution)."""
    b = kp.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = np.zeros((b, len(DISC_LEVELS), size, size), dtype=np.float32)
    f = size / DISC_SIZE
    for i in range(b):
        for ch in range(len(DISC_LEVELS)):
            r, c, v = kp[i, ch]
            if v > 0:
                # pixel centres: DISC_SIZE px k sits at heatmap (k + 0.5) * f - 0.5
                rr, cc = (r + 0.5) * f - 0.5, (c + 0.5) * f - 0.5
                out[i, ch] = np.exp(-((yy - rr) ** 2 + (xx - cc) ** 2) / (2 * sigma**2))
    return out


# ----------------------------------------------------------------------------- training
class TimeSchedule:
    """Warm-up then cosine decay over a wall-clock budget: the same script fits a slow CPU and a
    fast GPU, and always ends its schedule (low learning rate) when it stops."""

    def __init__(self, opt: torch.optim.Optimizer, max_lr: float, seconds: float) -> None:
        self.opt, self.max_lr, self.seconds, self.t0 = opt, max_lr, seconds, time.time()

    def step(self) -> bool:
        """Set this step's learning rate; False once the budget is spent."""
        frac = (time.time() - self.t0) / self.seconds
        if frac >= 1.0:
            return False
        lr = self.max_lr * (frac / 0.05 if frac < 0.05 else 0.5 * (1 + math.cos(math.pi * frac)))
        for g in self.opt.param_groups:
            g["lr"] = lr
        return True


class _Batches(torch.utils.data.IterableDataset):
    """Endless augmented batches; each DataLoader worker gets its own random stream."""

    def __init__(self, make: Any, items: list[dict[str, Any]], batch: int, seed: int) -> None:
        self.make, self.items, self.batch, self.seed = make, items, batch, seed

    def __iter__(self) -> Any:
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, 0 if info is None else info.id + 1])
        while True:
            picks = rng.integers(0, len(self.items), self.batch)
            yield [self.make(self.items[i], rng) for i in picks]


def batches(make: Any, items: list[dict[str, Any]], batch: int, seed: int, workers: int) -> Any:
    ds = _Batches(make, items, batch, seed)
    if workers <= 0:
        return iter(ds)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=None, num_workers=workers, collate_fn=lambda b: b, prefetch_factor=4
    )
    return iter(loader)


def train_orient(
    train: list[dict[str, Any]],
    evals: dict[str, list[dict[str, Any]]],
    steps: int,
    device: str,
    seed: int = 0,
    workers: int = 0,
    seconds: float = 600.0,
) -> tuple[OrientNet, dict[str, Any]]:
    torch.manual_seed(seed)
    net = OrientNet().to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = TimeSchedule(opt, 2e-3, seconds)
    stream = batches(orient_sample, train, 64, seed, workers)
    for step in range(steps):
        if not sched.step():
            break
        xs, ys, ws = zip(*next(stream), strict=True)
        x = torch.from_numpy(np.stack(xs))[:, None].to(device)
        lo, lw = net(x)
        loss = F.cross_entropy(lo, torch.tensor(ys, device=device)) + 0.5 * F.cross_entropy(
            lw, torch.tensor(ws, device=device)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 200 == 0:
            print(f"orient step {step} loss {loss.item():.3f}", flush=True)
    print(f"orient: {step + 1} steps", flush=True)
    net.eval()
    metrics = {name: eval_orient(net, items, device) for name, items in evals.items()}
    return net.cpu(), metrics


@torch.no_grad()
def eval_orient(net: OrientNet, items: list[dict[str, Any]], device: str) -> dict[str, Any]:
    """Every held-out image in all eight orientations, no augmentation."""
    correct = wcorrect = n = 0
    for it in items:
        xs = [fit_square(apply_orientation(it["canonical"], c), ORIENT_SIZE)[0] for c in range(8)]
        lo, lw = net(torch.from_numpy(np.stack(xs))[:, None].to(device))
        correct += int((lo.argmax(1).cpu() == torch.arange(8)).sum())
        wcorrect += int((lw.argmax(1).cpu() == it["weighting"]).sum())
        n += 8
    return {
        "n_images": len(items),
        "n_trials": n,
        "orientation_accuracy": correct / max(n, 1),
        "weighting_accuracy": wcorrect / max(n, 1),
    }


def train_disc(
    train: list[dict[str, Any]],
    evals: dict[str, list[dict[str, Any]]],
    steps: int,
    device: str,
    seed: int = 0,
    workers: int = 0,
    seconds: float = 600.0,
    init: Path | None = None,
) -> tuple[DiscNet, dict[str, Any]]:
    torch.manual_seed(seed)
    net = DiscNet()
    if init is not None:  # warm start (e.g. from the lumbar3d-only network)
        from safetensors.torch import load_file

        net.load_state_dict(load_file(init))
    net = net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = TimeSchedule(opt, 2e-3, seconds)
    hm = DISC_SIZE // 2
    stream = batches(_disc_train_sample, train, 8, seed, workers)
    for step in range(steps):
        if not sched.step():
            break
        xs, kps = zip(*next(stream), strict=True)
        x = torch.from_numpy(np.stack(xs))[:, None].to(device)
        tgt = torch.from_numpy(heatmap_targets(np.stack(kps), hm, sigma=1.5)).to(device)
        logits = net(x)
        loss = (
            F.binary_cross_entropy_with_logits(logits, tgt, reduction="none") * (1 + 30 * tgt)
        ).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 200 == 0:
            print(f"disc step {step} loss {loss.item():.4f}", flush=True)
    print(f"disc: {step + 1} steps", flush=True)
    net.eval()
    metrics = {name: eval_disc(net, items, device) for name, items in evals.items()}
    return net.cpu(), metrics


@torch.no_grad()
def locate_discs(
    net: DiscNet, canonical: np.ndarray, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """(5, 2) disc centres (row, col) in `canonical`'s pixels and their peak scores."""
    sq, scale, _ = fit_square(canonical, DISC_SIZE)
    logits = net(torch.from_numpy(sq)[None, None].to(device))[0].cpu()
    pos, score = decode_discs(logits)
    f = logits.shape[-1] / DISC_SIZE
    return ((pos + 0.5) / f - 0.5) / scale, score


@torch.no_grad()
def eval_disc(net: DiscNet, items: list[dict[str, Any]], device: str) -> dict[str, Any]:
    """Per slice: distance (mm, lumbar3d is 1 mm) of each disc from the truth; a slice's five
    discs are 'named right' when each predicted disc is nearer its own true disc than any other."""
    errs, named = [], []
    for it in items:
        truth = it["discs"]
        if not np.isfinite(truth).all():
            continue
        pos, _ = locate_discs(net, it["canonical"], device)
        d = np.linalg.norm(pos[:, None] - truth[None], axis=2)  # (pred, true)
        errs.extend(np.diag(d).tolist())
        named.append(bool((d.argmin(1) == np.arange(5)).all() and (np.diag(d) < 15).all()))
    return {
        "n_slices": len(named),
        "median_error_mm": float(np.median(errs)) if errs else None,
        "p90_error_mm": float(np.percentile(errs, 90)) if errs else None,
        "five_discs_named_right": float(np.mean(named)) if named else None,
    }


def pseudo_label(net: DiscNet, items: list[dict[str, Any]], device: str) -> list[dict[str, Any]]:
    """Self-training: keep a training image's predicted discs as labels only when all five are
    confident, run cranio-caudally and are evenly spaced (ratio of longest to shortest step
    below 1.5), i.e. look like a lumbar spine rather than a guess."""
    kept = []
    for it in items:
        pos, score = locate_discs(net, it["canonical"], device)
        steps = np.linalg.norm(np.diff(pos, axis=0), axis=1)
        if (
            score.min() > 0.5
            and (np.diff(pos[:, 0]) > 0).all()
            and steps.min() > 0
            and steps.max() / steps.min() < 1.5
        ):
            kept.append({**it, "discs": pos})
    return kept


def save_net(net: torch.nn.Module, out: Path, name: str, config: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, out / f"{name}.safetensors")
    (out / f"{name}.json").write_text(json.dumps(config, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--orient-steps", type=int, default=3000)
    ap.add_argument("--disc-steps", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers for augmentation")
    ap.add_argument("--orient-seconds", type=float, default=600.0)
    ap.add_argument("--phantoms", type=Path, help="npz of phantom slices for DiscNet training")
    ap.add_argument("--init-disc", type=Path, help="DiscNet safetensors to start from")
    ap.add_argument("--disc-seconds", type=float, default=600.0)
    ap.add_argument(
        "--self-train-seconds",
        type=float,
        default=0.0,
        help="> 0: a second DiscNet trained on lumbar3d + pseudo-labelled SPIDER train",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    arrays = load_arrays(args.data)
    sp, l3 = spider_items(arrays), l3d_items(arrays)
    by = {
        s: [it for it in sp + l3 if split_of(it["patient_id"]) == s]
        for s in ("train", "val", "test")
    }
    t0 = time.time()
    metrics: dict[str, Any] = {}
    if args.orient_steps > 0:
        evals = {
            f"{src}_{s}": [it for it in by[s] if it["patient_id"].startswith(src)]
            for src in ("spider", "lumbar3d")
            for s in ("val", "test")
        }
        onet, metrics["orientation"] = train_orient(
            by["train"],
            evals,
            args.orient_steps,
            args.device,
            workers=args.workers,
            seconds=args.orient_seconds,
        )
        save_net(
            onet,
            args.out,
            "orient_net",
            {
                "arch": "OrientNet",
                "width": 16,
                "input": ORIENT_SIZE,
                "metrics": metrics["orientation"],
            },
        )
        print(json.dumps(metrics["orientation"], indent=1), flush=True)
    if args.disc_steps > 0:
        l3_train = [it for it in l3 if split_of(it["patient_id"]) == "train"]
        l3_held = [it for it in l3 if split_of(it["patient_id"]) != "train"]
        if args.phantoms is not None:
            # Training seeds only (reporter.synth.seeds); phantoms widen the field of view and
            # contrast the network sees beyond lumbar3d's 22 cm.
            extra = phantom_items(args.phantoms)
            print(f"phantom slices: {len(extra)}", flush=True)
            l3_train = l3_train + extra
        dnet, metrics["discs"] = train_disc(
            l3_train,
            {"lumbar3d_heldout": l3_held},
            args.disc_steps,
            args.device,
            workers=args.workers,
            seconds=args.disc_seconds,
            init=args.init_disc,
        )
        save_net(
            dnet,
            args.out,
            "disc_net",
            {
                "arch": "DiscNet",
                "width": 8,
                "input": DISC_SIZE,
                "levels": list(DISC_LEVELS),
                "metrics": metrics["discs"],
            },
        )
        print(json.dumps(metrics["discs"], indent=1), flush=True)
        if args.self_train_seconds > 0:
            sp_train = [it for it in sp if split_of(it["patient_id"]) == "train"]
            sp_val = [it for it in sp if split_of(it["patient_id"]) == "val"]
            pseudo = pseudo_label(dnet, sp_train, "cpu")
            metrics["self_train"] = {
                "pseudo_labelled": len(pseudo),
                "of": len(sp_train),
                "val_plausible_before": len(pseudo_label(dnet, sp_val, "cpu")) / len(sp_val),
            }
            snet, m2 = train_disc(
                l3_train + pseudo + pseudo,  # pseudo-labelled real images drawn twice as often
                {"lumbar3d_heldout": l3_held},
                args.disc_steps,
                args.device,
                workers=args.workers,
                seconds=args.self_train_seconds,
                seed=1,
                init=args.out / "disc_net.safetensors",
            )
            metrics["self_train"].update(m2)
            metrics["self_train"]["val_plausible_after"] = len(
                pseudo_label(snet, sp_val, "cpu")
            ) / len(sp_val)
            save_net(
                snet,
                args.out / "self_trained",
                "disc_net",
                {
                    "arch": "DiscNet",
                    "width": 8,
                    "input": DISC_SIZE,
                    "levels": list(DISC_LEVELS),
                    "metrics": metrics["self_train"],
                },
            )
            print(json.dumps(metrics["self_train"], indent=1), flush=True)
    metrics["seconds"] = time.time() - t0
    (args.out / "image2d_train_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


if __name__ == "__main__":
    main()
