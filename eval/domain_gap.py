"""How realistic are the phantoms? A real-vs-phantom classifier's AUC on held-out images.

    python eval/domain_gap.py --real ../shared/data/real [--engine v1|v2] [--phantoms 120]
                              [--seconds 240] [--eval-split test|val] [--json]

Real: mid-sagittal SPIDER (T1, T2) and sudirman_sagittal (T1, T2) images, split by patient with
reporter.datasets.splits (trained on ``train``, AUC on ``test``). Phantoms: mid-sagittal T1 and T2
slices of reporter.synth studies (``--engine v1``) or of reporter.synth.v2 studies generated with
one mid-sagittal slice per series (``--engine v2``), training sites and the new site; seeds
4,200 + i for training and 9,400 + i for the held-out half (disjoint). ``--eval-split val`` scores
the real ``val`` patients against phantom seeds 7,400 + i instead: the split used while tuning the
engine, so that the test images are looked at once, at the end. Every image is put in a random one
of the eight orientations, scaled by its own 1st-99th percentiles and fitted into 96 x 96, so
neither orientation, size nor brightness can separate the classes; what remains is what the
images look like. AUC 0.5 = indistinguishable, 1.0 = trivially told apart. A small CNN
(OrientNet's feature stack) is the classifier. Prints the AUC with a 95 % bootstrap interval.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from reporter.datasets.splits import split_of
from reporter.ingest.image2d_nets import (
    ORIENT_SIZE,
    OrientNet,
    apply_orientation,
    fit_square,
    normalize,
    undo_orientation,
)

SPIDER_NATIVE_ORIENTATION = 6  # reporter.training.image2d_train: all SPIDER PNGs are stored so


def real_images(real: Path) -> dict[str, list[tuple[np.ndarray, str]]]:
    out: dict[str, list[tuple[np.ndarray, str]]] = {"train": [], "val": [], "test": []}
    for p in sorted((real / "spider" / "images").glob("*_t[12].png")):
        pid = f"spider-{p.name.split('_')[0]}"
        split = split_of(pid)
        if split in out:
            img = np.asarray(Image.open(p).convert("L"), dtype=np.float32)
            out[split].append((undo_orientation(img, SPIDER_NATIVE_ORIENTATION), pid))
    for p in sorted((real / "sudirman_sagittal" / "images").glob("*.png")):
        pid = f"sudirman-{p.name.split('_')[0]}"
        split = split_of(pid)
        if split in out:
            out[split].append((np.asarray(Image.open(p).convert("L"), dtype=np.float32), pid))
    return out


def phantom_images(n: int, base: int, engine: str = "v1") -> list[tuple[np.ndarray, str]]:
    from reporter.synth import NEW_SITE, TRAINING_SITES, generate_study
    from reporter.synth.v2 import generate_study_v2

    sites = [*TRAINING_SITES, NEW_SITE]
    imgs = []
    for i in range(n):
        if engine == "v2":
            ph = generate_study_v2(base + i, site=sites[i % len(sites)], slices="mid")
        else:
            ph = generate_study(base + i, site=sites[i % len(sites)])
        for s in ph.study.series:
            if s.role in ("sag_t1", "sag_t2"):
                mid = np.asarray(s.pixels[s.pixels.shape[0] // 2], dtype=np.float32)
                imgs.append((mid, f"phantom-{base + i}"))
    return imgs


def sample(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    code = int(rng.integers(0, 8))
    sq, _, _ = fit_square(normalize(apply_orientation(img, code)), ORIENT_SIZE)
    return sq


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = OrientNet(width=8).features
        self.head = nn.Linear(64, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))[:, 0]


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels == 1], scores[labels == 0]
    greater = (pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()
    return float(greater / (len(pos) * len(neg)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, required=True)
    ap.add_argument("--phantoms", type=int, default=120, help="phantom studies per half")
    ap.add_argument("--seconds", type=float, default=240.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--engine", choices=("v1", "v2"), default="v1")
    ap.add_argument("--eval-split", choices=("test", "val"), default="test")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # a shared 2-core machine; the numbers do not depend on it
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    real = real_images(args.real)
    ph_train = phantom_images(args.phantoms, 4200, args.engine)
    held_base = 9400 if args.eval_split == "test" else 7400
    ph_test = phantom_images(max(1, args.phantoms // 2), held_base, args.engine)
    gen_s = time.time() - t0
    net = Classifier()
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    steps, t1 = 0, time.time()
    # Class-balanced batches: half real, half phantom.
    real_tr = [im for im, _ in real["train"]]
    ph_tr = [im for im, _ in ph_train]
    while time.time() - t1 < args.seconds:
        picks = [real_tr[i] for i in rng.integers(0, len(real_tr), 16)] + [
            ph_tr[i] for i in rng.integers(0, len(ph_tr), 16)
        ]
        x = torch.from_numpy(np.stack([sample(im, rng) for im in picks]))[:, None]
        y = torch.tensor([1.0] * 16 + [0.0] * 16)
        loss = F.binary_cross_entropy_with_logits(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    net.eval()
    held = real[args.eval_split]
    test = [(im, pid, 1) for im, pid in held] + [(im, pid, 0) for im, pid in ph_test]
    with torch.no_grad():
        x = torch.from_numpy(np.stack([sample(im, rng) for im, _, _ in test]))[:, None]
        scores = net(x).numpy()
    labels = np.array([y for _, _, y in test])
    value = auc(scores, labels)
    # 95 % interval by patient (a phantom seed is a patient): resample whole patients.
    groups: dict[str, list[int]] = {}
    for i, (_, pid, _) in enumerate(test):
        groups.setdefault(pid, []).append(i)
    members = list(groups.values())
    boot = []
    for _ in range(1000):
        pick = rng.integers(0, len(members), len(members))
        idx = np.array([i for g in pick for i in members[g]])
        if 0 < labels[idx].sum() < len(idx):
            boot.append(auc(scores[idx], labels[idx]))
    lo, hi = np.percentile(boot, [2.5, 97.5])
    result = {
        "phantom_engine": {"v1": "v1 (reporter.synth)", "v2": "v2 (reporter.synth.v2, mid)"}[
            args.engine
        ],
        "eval_split": args.eval_split,
        "auc_real_vs_phantom": round(value, 4),
        "auc_95ci": [round(float(lo), 4), round(float(hi), 4)],
        "n_test_patients": len(members),
        "n_test_real": int(labels.sum()),
        "n_test_phantom": int(len(labels) - labels.sum()),
        "n_train_real": len(real["train"]),
        "n_train_phantom": len(ph_train),
        "train_steps": steps,
        "phantom_generation_s": round(gen_s, 1),
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
