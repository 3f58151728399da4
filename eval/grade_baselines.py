"""Grading baselines on the VLM's own real crops: majority class and a plain CNN.

    python eval/grade_baselines.py --shards runs/realvlm \
        --out eval/results/grading_baselines_real.json [--epochs 30] [--threads 2]

The crops are exactly what the VLM sees for each disc (the `level_sag` view of the shards written
by reporter.training.real_views: 64 x 64 px at 1 mm, channels T2 / T1 / STIR, per-series
percentile scaling), so a difference between a baseline and the VLM is the model, not the input.
Split by patient (reporter.datasets.splits, as cached): fitted on `train`, the epoch chosen on
`val` (mean of Pfirrmann and Modic balanced accuracy), reported once on `test` with a 95 %
interval from resampling patients.

Runs, each a fresh CNN: both sets together (`both`), SPIDER only and Sudirman only, and the cross-
set results (trained on one set, tested on the other's test patients: the site shift users will
meet). Sudirman grades Pfirrmann only (L3-L4 .. L5-S1); Modic is SPIDER's (compared with
modic_upper). Balanced accuracy here is over the discs the anatomy found (the VLM's "assessed"
figure); discs it did not find are counted by the VLM evaluation, not here.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from reporter.evaluation import metrics as M
from reporter.training.vlm_data import ShardSet
from reporter.vlm.decoding import level_grammar

PFIRRMANN_SLOT = next(i for i, s in enumerate(level_grammar().slots) if s.field == "pfirrmann")
MODIC_SLOT = next(i for i, s in enumerate(level_grammar().slots) if s.field == "modic_upper")
SETS = ("spider", "sudirman")


@dataclass
class Discs:
    x: np.ndarray  # (n, 3, 64, 64) float32
    pfirrmann: np.ndarray  # (n,) 0..4 = grade 1..5, -1 unknown
    modic: np.ndarray  # (n,) 0..3, -1 unknown
    patient: list[str]

    def __len__(self) -> int:
        return len(self.x)

    @staticmethod
    def concat(parts: list[Discs]) -> Discs:
        return Discs(
            np.concatenate([p.x for p in parts]),
            np.concatenate([p.pfirrmann for p in parts]),
            np.concatenate([p.modic for p in parts]),
            [q for p in parts for q in p.patient],
        )


def load_discs(folder: Path, name: str) -> Discs:
    data = ShardSet.load([folder])
    codes = data.level_codes.astype(int)

    def value(code: np.ndarray) -> np.ndarray:  # grammar code: 0 na, i+1 value i, -1 unknown
        return np.where(code >= 1, code - 1, -1)

    return Discs(
        data.level_images[:, 0].astype(np.float32),
        value(codes[:, PFIRRMANN_SLOT]),
        value(codes[:, MODIC_SLOT]),
        [f"{name}/{data.meta[int(s)].get('case')}" for s in data.level_study],
    )


class PlainCNN(nn.Module):
    """Four conv blocks from scratch, global average pooling, a Pfirrmann and a Modic head."""

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        chans = [3, width, 2 * width, 4 * width, 4 * width]
        blocks: list[nn.Module] = []
        for a, b in itertools.pairwise(chans):
            blocks += [nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.drop = nn.Dropout(0.3)
        self.pfirrmann = nn.Linear(chans[-1], 5)
        self.modic = nn.Linear(chans[-1], 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.drop(self.features(x))
        return self.pfirrmann(h), self.modic(h)


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Shifts of up to 4 px, gain, gamma-like contrast and noise (what differs between sites)."""
    n = len(x)
    dy, dx = (int(v) for v in torch.randint(-4, 5, (2,), generator=g))
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    gain = 0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=g)
    gamma = 0.7 + 0.6 * torch.rand(n, 1, 1, 1, generator=g)
    x = torch.sign(x + 0.5) * (x + 0.5).abs() ** gamma * gain - 0.5
    return x + 0.03 * torch.randn(x.shape, generator=g)


def _weights(y: np.ndarray, k: int) -> torch.Tensor:
    counts = np.bincount(y[y >= 0], minlength=k).astype(float)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / k, 0.0)
    return torch.tensor(w, dtype=torch.float32)


def predict(model: PlainCNN, d: Discs) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    with torch.no_grad():
        outs = [model(torch.from_numpy(d.x[i : i + 256])) for i in range(0, len(d), 256)]
    return (
        torch.cat([o[0] for o in outs]).argmax(1).numpy(),
        torch.cat([o[1] for o in outs]).argmax(1).numpy(),
    )


def scores(d: Discs, pf: np.ndarray, mo: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, truth, pred, k in (("pfirrmann", d.pfirrmann, pf, 5), ("modic", d.modic, mo, 4)):
        keep = truth >= 0
        if not keep.any():
            continue
        t, p = list(truth[keep]), list(pred[keep])
        g = [q for q, m in zip(d.patient, keep, strict=True) if m]
        labels = list(range(k))
        out[name] = {
            "n_discs": int(keep.sum()),
            "n_patients": len(set(g)),
            "balanced_accuracy": M.balanced_accuracy(t, p, labels),
            "balanced_accuracy_ci95": M.bootstrap_by_group(
                g, t, p, M.balanced_accuracy, labels=labels
            ),
            "qwk": M.quadratic_weighted_kappa(t, p, labels),
        }
    return out


def _val_score(s: dict[str, Any]) -> float:
    return float(np.mean([v["balanced_accuracy"] for v in s.values()]))


def fit_cnn(train: Discs, val: Discs, epochs: int, seed: int = 0) -> tuple[PlainCNN, dict]:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = PlainCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-3)
    w_pf, w_mo = _weights(train.pfirrmann, 5), _weights(train.modic, 4)
    x = torch.from_numpy(train.x)
    y_pf, y_mo = torch.from_numpy(train.pfirrmann).long(), torch.from_numpy(train.modic).long()
    best: tuple[float, dict, int] = (-1.0, {}, -1)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train), generator=g)
        for i in range(0, len(order), 64):
            idx = order[i : i + 64]
            a, b = model(augment(x[idx], g))
            loss = F.cross_entropy(a, y_pf[idx], weight=w_pf, ignore_index=-1).nan_to_num()
            if bool((y_mo[idx] >= 0).any()):
                loss = loss + F.cross_entropy(b, y_mo[idx], weight=w_mo, ignore_index=-1)
            opt.zero_grad()
            loss.backward()
            opt.step()
        v = _val_score(scores(val, *predict(model, val)))
        if v > best[0]:
            best = (v, {k: t.clone() for k, t in model.state_dict().items()}, epoch)
    model.load_state_dict(best[1])
    return model, {"best_epoch": best[2], "val_mean_ba": best[0]}


def majority(train: Discs, test: Discs) -> dict[str, Any]:
    pf = np.bincount(train.pfirrmann[train.pfirrmann >= 0], minlength=5).argmax()
    mo_known = train.modic[train.modic >= 0]
    mo = np.bincount(mo_known, minlength=4).argmax() if len(mo_known) else 0
    return scores(test, np.full(len(test), pf), np.full(len(test), mo))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    d = {
        (s, sp): load_discs(args.shards / s / sp, s)
        for s in SETS
        for sp in ("train", "val", "test")
    }
    runs = {
        "both": (("spider", "sudirman"), ("spider", "sudirman")),
        "spider": (("spider",), ("spider", "sudirman")),
        "sudirman": (("sudirman",), ("sudirman", "spider")),
    }
    results: dict[str, Any] = {}
    for name, (train_sets, test_sets) in runs.items():
        train = Discs.concat([d[(s, "train")] for s in train_sets])
        val = Discs.concat([d[(s, "val")] for s in train_sets])
        model, info = fit_cnn(train, val, args.epochs)
        results[name] = {"trained_on": list(train_sets), "n_train_discs": len(train), **info}
        for s in test_sets:
            test = d[(s, "test")]
            results[name][f"test_{s}"] = {
                "plain_cnn": scores(test, *predict(model, test)),
                "majority": majority(train, test),
            }
        print(json.dumps({name: results[name]}, indent=1), flush=True)
    results["seconds"] = round(time.time() - t0, 1)
    results["command"] = "python eval/grade_baselines.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(M.nan_to_none(results), indent=1) + "\n")


if __name__ == "__main__":
    main()
