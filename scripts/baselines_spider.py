"""SPIDER baselines: Pfirrmann and Modic balanced accuracy of the majority class and of a plain
CNN on per-disc crops, on the project's patient-level held-out split.

    python scripts/baselines_spider.py prepare --real ../shared/data/real --work runs/realmri
    python scripts/baselines_spider.py run --work runs/realmri --out runs/realmri/baselines \
        [--weights reporter/weights/image2d] [--device cuda] [--epochs 40]

`prepare` packs the SPIDER images (8-bit, longer side at most 448 px), a few near-midline slices
of each lumbar3d volume and the two SPIDER CSVs into WORK (an ignored folder; the real data is
never committed). `run`:

1. turns every image to the standard display with OrientNet (the *predicted* orientation, so a
   wrong prediction costs the baseline as it would cost the product) and finds the five lumbar
   discs with DiscNet (reporter.ingest.image2d_nets); both networks are trained by
   reporter.training.image2d_train on training patients only;
2. calibrates the anatomical spacing constant (median disc-to-disc distance in mm, on training
   images, from the scanner's pixel spacing in overview.csv) and reports the spacing-estimate error
   on held-out images;
3. cuts a crop around each disc, turned so the local spine axis is vertical, sized to 1.4 disc
   steps, resampled to 48 x 48, two channels (T2 -- t2, else t2_SPACE -- and T1; a missing series
   is zeros);
4. majority class: the most frequent training grade, predicted for every held-out disc;
   plain CNN: four conv blocks from scratch (2 input channels, one output layer with two heads:
   Pfirrmann 1-5 and Modic 0-3), class-weighted cross-entropy, small shifts/rotations/intensity
   jitter, checkpoint chosen on the val split, numbers reported on the test split
   (reporter.datasets.splits).

Levels: L1-L2 ... L5-S1 (the discs DiscNet names). Balanced accuracy = mean recall over the
grades present in the held-out truth. The goal it is measured against: SpineNetV2 external
validation (Pfirrmann BA 78%, Modic BA 86%).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import shutil
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reporter.datasets.splits import split_of  # noqa: E402
from reporter.ingest.image2d_nets import DISC_LEVELS, normalize  # noqa: E402

# IVD label in radiological_gradings.csv -> level (1 = L5-S1, counting cranially).
IVD_LEVEL = {1: "L5-S1", 2: "L4-L5", 3: "L3-L4", 4: "L2-L3", 5: "L1-L2"}
CROP = 48


# ----------------------------------------------------------------------------- prepare
def prepare(real: Path, work: Path) -> None:
    import nibabel as nib
    from PIL import Image

    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, np.ndarray] = {}
    for p in sorted((real / "spider" / "images").glob("*.png")):
        im = Image.open(p).convert("L")
        s = min(1.0, 448 / max(im.size))
        if s < 1.0:
            im = im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS)
        out[f"spider/{p.stem}"] = np.asarray(im, dtype=np.uint8)
        out[f"spiderscale/{p.stem}"] = np.array([s])
    for p in sorted((real / "lumbar3d").glob("*_seg.nii.gz")):
        stem = p.name.replace("_seg.nii.gz", "")
        vol = np.asarray(nib.load(real / "lumbar3d" / f"{stem}.nii.gz").dataobj, dtype=np.float32)
        seg = np.asarray(nib.load(p).dataobj).astype(np.uint8)
        count = (seg > 0).sum((0, 1))
        mid = int(np.argmax(count))
        ks = [
            k
            for k in range(mid - 6, mid + 7)
            if 0 <= k < vol.shape[2] and count[k] > 0.3 * count[mid]
        ]
        lo, hi = np.percentile(vol, [0.5, 99.8])
        out[f"l3d/{stem}"] = (np.clip((vol[:, :, ks] - lo) / (hi - lo), 0, 1) * 255).astype(
            np.uint8
        )
        out[f"l3dseg/{stem}"] = seg[:, :, ks]
    np.savez_compressed(work / "data.npz", **out)
    for name in ("radiological_gradings.csv", "overview.csv"):
        shutil.copy(real / "spider" / name, work / name)
    print(f"wrote {work / 'data.npz'} ({len(out)} arrays)")


# ----------------------------------------------------------------------------- metrics
def balanced_accuracy(y_true: list[int], y_pred: list[int]) -> float:
    try:  # the project's one definition, when the evaluation package provides it
        from reporter.evaluation.metrics import balanced_accuracy as ba

        return float(ba(y_true, y_pred))
    except (ImportError, AttributeError):
        pass
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    recalls = [float((yp[yt == c] == c).mean()) for c in np.unique(yt)]
    return float(np.mean(recalls)) if recalls else float("nan")


def quadratic_kappa(y_true: list[int], y_pred: list[int], n: int) -> float:
    o = np.zeros((n, n))
    for a, b in zip(y_true, y_pred, strict=True):
        o[a, b] += 1
    w = np.array([[(i - j) ** 2 for j in range(n)] for i in range(n)]) / (n - 1) ** 2
    e = np.outer(o.sum(1), o.sum(0)) / max(o.sum(), 1)
    den = (w * e).sum()
    return float(1 - (w * o).sum() / den) if den > 0 else float("nan")


# ----------------------------------------------------------------------------- discs and crops
def load_nets(weights: Path, device: str) -> tuple[Any, Any]:
    from safetensors.torch import load_file

    from reporter.ingest.image2d_nets import DiscNet, OrientNet

    onet, dnet = OrientNet(), DiscNet()
    onet.load_state_dict(load_file(weights / "orient_net.safetensors"))
    dnet.load_state_dict(load_file(weights / "disc_net.safetensors"))
    return onet.eval().to(device), dnet.eval().to(device)


@torch.no_grad()
def analyse_images(arrays: dict[str, np.ndarray], weights: Path, device: str) -> dict[str, Any]:
    from reporter.ingest.image2d_nets import ORIENT_SIZE, fit_square, undo_orientation
    from reporter.training.image2d_train import locate_discs

    onet, dnet = load_nets(weights, device)
    out = {}
    for key in sorted(k for k in arrays if k.startswith("spider/")):
        name = key.split("/", 1)[1]
        img = normalize(arrays[key])
        lo, lw = onet(torch.from_numpy(fit_square(img, ORIENT_SIZE)[0])[None, None].to(device))
        code = int(lo.argmax(1))
        canonical = undo_orientation(img, code)
        pos, score = locate_discs(dnet, canonical, device)
        out[name] = {
            "orientation": code,
            "orientation_p": float(torch.softmax(lo, 1)[0, code]),
            "weighting": ["T1", "T2"][int(lw.argmax(1))],
            "canonical_shape": list(canonical.shape),
            "discs": {
                lv: [*map(float, pos[i]), float(score[i])] for i, lv in enumerate(DISC_LEVELS)
            },
        }
    return out


def disc_step_px(discs: dict[str, list[float]]) -> float:
    pts = np.array([discs[lv][:2] for lv in DISC_LEVELS])
    return float(np.median(np.linalg.norm(np.diff(pts, axis=0), axis=1)))


def crop_disc(canonical: np.ndarray, discs: dict[str, list[float]], level: str) -> np.ndarray:
    """CROP x CROP patch centred on `level`, spine axis vertical, 1.4 disc steps wide."""
    i = DISC_LEVELS.index(level)
    pts = np.array([discs[lv][:2] for lv in DISC_LEVELS])
    a, b = pts[max(0, i - 1)], pts[min(4, i + 1)]
    axis = (b - a) / (np.linalg.norm(b - a) + 1e-6)  # (drow, dcol), cranial -> caudal
    side = 1.4 * disc_step_px(discs)
    h, w = canonical.shape
    # grid_sample works in (x=col, y=row) normalised coordinates.
    ang = math.atan2(axis[1], axis[0])  # angle of the spine axis from the image's row direction
    cos, sin = math.cos(ang), math.sin(ang)
    cy, cx = pts[i]
    theta = torch.tensor(
        [
            [cos * side / w, sin * side / w, (2 * cx + 1) / w - 1],
            [-sin * side / h, cos * side / h, (2 * cy + 1) / h - 1],
        ],
        dtype=torch.float32,
    )[None]
    grid = F.affine_grid(theta, [1, 1, CROP, CROP], align_corners=False)
    t = torch.from_numpy(np.ascontiguousarray(canonical, dtype=np.float32))[None, None]
    return F.grid_sample(t, grid, align_corners=False, padding_mode="zeros")[0, 0].numpy()


def read_gradings(work: Path) -> dict[str, dict[str, dict[str, int]]]:
    out: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    with open(work / "radiological_gradings.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            lv = IVD_LEVEL.get(int(row["IVD label"]))
            if lv:
                out[row["Patient"].strip()][lv] = {
                    "pfirrmann": int(row["Pfirrman grade"]),
                    "modic": int(row["Modic"]),
                }
    return out


def read_spacing(work: Path) -> dict[str, float]:
    out = {}
    with open(work / "overview.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["PixelSpacing"].strip():
                # "[0.625, 0.625]" (some rows carry DICOM's "0.625\\0.625" style instead)
                first = re.split(r"[,\\\s]+", row["PixelSpacing"].strip("[]() "))[0]
                out[row["new_file_name"]] = float(first)
    return out


def build_crops(
    arrays: dict[str, np.ndarray], found: dict[str, Any], gradings: dict[str, Any]
) -> list[dict[str, Any]]:
    from reporter.ingest.image2d_nets import undo_orientation

    by_patient: dict[str, dict[str, str]] = defaultdict(dict)
    for name in found:
        patient, series = name.split("_", 1)
        by_patient[patient][series] = name
    rows = []
    for patient, series in sorted(by_patient.items()):
        if patient not in gradings:
            continue
        chans = [series.get("t2") or series.get("t2_SPACE"), series.get("t1")]
        canon = {}
        for n in chans:
            if n:
                canon[n] = undo_orientation(
                    normalize(arrays[f"spider/{n}"]), found[n]["orientation"]
                )
        for lv in DISC_LEVELS:
            if lv not in gradings[patient]:
                continue
            x = np.zeros((2, CROP, CROP), dtype=np.float32)
            for c, n in enumerate(chans):
                if n:
                    x[c] = crop_disc(canon[n], found[n]["discs"], lv)
            rows.append(
                {
                    "patient": patient,
                    "split": split_of(f"spider-{patient}"),
                    "level": lv,
                    "x": x,
                    **gradings[patient][lv],
                }
            )
    return rows


# ----------------------------------------------------------------------------- CNN
def make_cnn() -> torch.nn.Module:
    """A plain CNN (four conv blocks, global pooling, one linear layer with 5 + 4 outputs)."""
    from torch import nn

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )

    return nn.Sequential(
        block(2, 16), block(16, 32), block(32, 64), block(64, 96),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(96, 5 + 4),
    )  # fmt: skip


def augment(x: torch.Tensor) -> torch.Tensor:
    b = x.shape[0]
    ang = (torch.rand(b) - 0.5) * math.radians(20)
    sc = 1 + (torch.rand(b) - 0.5) * 0.2
    tx, ty = (torch.rand(b) - 0.5) * 0.15, (torch.rand(b) - 0.5) * 0.15
    theta = torch.stack(
        [
            torch.stack([torch.cos(ang) * sc, -torch.sin(ang) * sc, tx], 1),
            torch.stack([torch.sin(ang) * sc, torch.cos(ang) * sc, ty], 1),
        ],
        1,
    ).to(x.device)
    x = F.grid_sample(
        x, F.affine_grid(theta, list(x.shape), align_corners=False), align_corners=False
    )
    gamma = torch.exp((torch.rand(b, 2, 1, 1, device=x.device) - 0.5) * 0.6)
    return x.clamp(0, 1) ** gamma * (1 + (torch.rand(b, 2, 1, 1, device=x.device) - 0.5) * 0.3)


def train_cnn(
    rows: list[dict[str, Any]], epochs: int, device: str, seed: int = 0
) -> dict[str, Any]:
    torch.manual_seed(seed)
    sel = {s: [r for r in rows if r["split"] == s] for s in ("train", "val", "test")}

    def tensors(rs: list[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.stack([r["x"] for r in rs]))
        return (
            x,
            torch.tensor([r["pfirrmann"] - 1 for r in rs]),
            torch.tensor([r["modic"] for r in rs]),
        )

    xtr, ptr, mtr = (t.to(device) for t in tensors(sel["train"]))
    wp = 1.0 / torch.bincount(ptr, minlength=5).clamp(min=1).float()
    wm = 1.0 / torch.bincount(mtr, minlength=4).clamp(min=1).float()
    wp, wm = (wp / wp.sum() * 5).to(device), (wm / wm.sum() * 4).to(device)
    net = make_cnn().to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=5e-4)
    steps_per_epoch = max(1, len(xtr) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-3, total_steps=epochs * steps_per_epoch)

    @torch.no_grad()
    def predict(rs: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
        net.eval()
        x = tensors(rs)[0].to(device)
        out = torch.cat([net(x[i : i + 256]) for i in range(0, len(x), 256)])
        net.train()
        return out[:, :5].argmax(1).tolist(), out[:, 5:].argmax(1).tolist()

    def scores(rs: list[dict[str, Any]]) -> dict[str, float]:
        pp, pm = predict(rs)
        tp = [r["pfirrmann"] - 1 for r in rs]
        tm = [r["modic"] for r in rs]
        return {
            "pfirrmann_ba": balanced_accuracy(tp, pp),
            "pfirrmann_qwk": quadratic_kappa(tp, pp, 5),
            "modic_ba": balanced_accuracy(tm, pm),
            "modic_qwk": quadratic_kappa(tm, pm, 4),
        }

    best: tuple[float, dict[str, Any]] = (-1.0, {})
    for epoch in range(epochs):
        perm = torch.randperm(len(xtr), device=device)
        for s in range(steps_per_epoch):
            idx = perm[s * 64 : (s + 1) * 64]
            out = net(augment(xtr[idx]))
            loss = F.cross_entropy(out[:, :5], ptr[idx], weight=wp) + F.cross_entropy(
                out[:, 5:], mtr[idx], weight=wm
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        val = scores(sel["val"])
        key = val["pfirrmann_ba"] + val["modic_ba"]
        if key > best[0]:
            best = (key, {"epoch": epoch, "val": val, "test": scores(sel["test"])})
        print(f"cnn epoch {epoch} loss {loss.item():.3f} val {val}", flush=True)
    return best[1]


def majority(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for field, off in (("pfirrmann", 1), ("modic", 0)):
        common = Counter(r[field] for r in rows if r["split"] == "train").most_common(1)[0][0]
        for s in ("val", "test"):
            truth = [r[field] - off for r in rows if r["split"] == s]
            out.setdefault(s, {})[f"{field}_ba"] = balanced_accuracy(
                truth, [common - off] * len(truth)
            )
            out[s][f"{field}_majority_grade"] = common
    return out


def save_overlays(
    arrays: dict[str, np.ndarray], found: dict[str, Any], out: Path, split: str
) -> None:
    """Contact sheets of held-out images in the standard display with the five named discs."""
    from PIL import Image, ImageDraw

    from reporter.ingest.image2d_nets import undo_orientation

    names = [n for n in sorted(found) if split_of(f"spider-{n.split('_')[0]}") == split]
    tiles = []
    for n in names:
        f = found[n]
        canon = undo_orientation(normalize(arrays[f"spider/{n}"]), f["orientation"])
        im = Image.fromarray((canon * 255).astype(np.uint8)).convert("RGB")
        s = 220 / max(im.size)
        im = im.resize((round(im.width * s), round(im.height * s)))
        d = ImageDraw.Draw(im)
        for lv, (r, c, _score) in f["discs"].items():
            d.ellipse([c * s - 3, r * s - 3, c * s + 3, r * s + 3], fill=(255, 0, 0))
            d.text((c * s + 5, r * s - 6), lv, fill=(255, 255, 0))
        d.text((2, 2), n, fill=(0, 255, 0))
        tiles.append(im)
    per = 24
    for page in range(0, len(tiles), per):
        sheet = Image.new("RGB", (6 * 222, 4 * 222))
        for j, t in enumerate(tiles[page : page + per]):
            sheet.paste(t, ((j % 6) * 222, (j // 6) * 222))
        sheet.save(out / f"overlay_{split}_{page // per}.png")


def run(work: Path, weights: Path, out: Path, device: str, epochs: int) -> dict[str, Any]:
    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    with np.load(work / "data.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    found = analyse_images(arrays, weights, device)
    (out / "discs.json").write_text(json.dumps(found, indent=1) + "\n")
    metrics: dict[str, Any] = {"split": "reporter.datasets.splits (patient-level), test split"}

    # Orientation: all SPIDER images were inspected to be code 6 (see image2d_train).
    for s in ("train", "val", "test"):
        names = [n for n in found if split_of(f"spider-{n.split('_')[0]}") == s]
        metrics.setdefault("orientation_native_accuracy", {})[s] = float(
            np.mean([found[n]["orientation"] == 6 for n in names])
        )

    # Spacing: calibrate the disc-step constant on train images, check it on held-out ones.
    spacing = read_spacing(work)
    steps: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for n, f in found.items():
        if n in spacing:
            mm_per_px = spacing[n] / float(arrays[f"spiderscale/{n}"][0])
            steps[split_of(f"spider-{n.split('_')[0]}")].append(
                (disc_step_px(f["discs"]), mm_per_px)
            )
    step_mm = float(np.median([px * mm for px, mm in steps["train"]]))
    metrics["spacing"] = {"disc_step_mm_calibrated_on_train": step_mm}
    for s in ("val", "test"):
        rel = np.array([abs(step_mm / px - mm) / mm for px, mm in steps[s]])
        metrics["spacing"][s] = {
            "n_images": len(rel),
            "median_abs_rel_error": float(np.median(rel)),
            "within_10pct": float((rel < 0.10).mean()),
            "within_20pct": float((rel < 0.20).mean()),
        }

    rows = build_crops(arrays, found, read_gradings(work))
    metrics["n_discs"] = dict(Counter(r["split"] for r in rows))
    metrics["test_class_counts"] = {
        f: dict(sorted(Counter(r[f] for r in rows if r["split"] == "test").items()))
        for f in ("pfirrmann", "modic")
    }
    metrics["majority"] = majority(rows)
    metrics["cnn"] = train_cnn(rows, epochs, device)
    metrics["goal_spinenetv2"] = {"pfirrmann_ba": 0.78, "modic_ba": 0.86}
    metrics["seconds"] = time.time() - t0
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    for s in ("test", "val"):
        save_overlays(arrays, found, out, s)
    return metrics


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--real", type=Path, default=REPO.parent / "shared" / "data" / "real")
    p.add_argument("--work", type=Path, default=REPO / "runs" / "realmri")
    r = sub.add_parser("run")
    r.add_argument("--work", type=Path, default=REPO / "runs" / "realmri")
    r.add_argument("--weights", type=Path, default=REPO / "reporter" / "weights" / "image2d")
    r.add_argument("--out", type=Path, default=REPO / "runs" / "realmri" / "baselines")
    r.add_argument("--device", default="cpu")
    r.add_argument("--epochs", type=int, default=40)
    r.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if args.cmd == "prepare":
        prepare(args.real, args.work)
        return
    torch.set_num_threads(args.threads)
    metrics = run(args.work, args.weights, args.out, args.device, args.epochs)
    print(json.dumps({k: metrics[k] for k in ("majority", "cnn", "spacing")}, indent=1))


if __name__ == "__main__":
    main()
