"""Real labelled sagittal images for the 2-D networks, read straight from ../shared/data/real.

Each item is one standard-display image (superior at the top, anterior at the left) with its disc
centres: ``discs`` (5, 2) rows/cols of L1-L2 ... L5-S1 (NaN where not labelled) and ``all_discs``
(n, 2) every labelled disc in view, cranial first (thoracic discs included). Where a set has
masks, ``mask`` holds 0 background, 1 vertebra, 2 disc, 3 canal.

Level names come from counting up from the most caudal disc, taken as L5-S1:
- sudirman_sagittal: disc boxes (Normal IVD, DDD, LDB, TDB) grouped where they overlap (the README:
  58 images carry two boxes on one disc), sorted by vertical centre; the lowest group is L5-S1.
  The README warns this is not checked per image; a transitional L6 or an S1-S2 disc would shift
  names, which is label noise we accept and measure against.
- spider_slices: connected components of the disc label (>= MIN_DISC_PX pixels), sorted by row;
  the lowest is L5-S1 (SPIDER labels no sacral disc; checked on overlays of 12 random slices).
  Slices with fewer than five disc components (far-lateral cuts) keep ``all_discs`` only.
- lumbar3d: the masks' level labels (ivd: discs; vb3: bodies, disc centres halfway between).

Patient ids are those of reporter.datasets.splits (``sudirman-<n>``, ``spider-<n>``,
``lumbar3d-<stem>``); callers split by them, never by image.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from reporter.ingest.image2d_nets import DISC_LEVELS, normalize

DISC_CLASSES = frozenset(
    {
        "Normal IVD",
        "Degenerative Disc Disease (DDD)",
        "Lumbar Disc Bulge (LDB)",
        "Thoracic Disc Bulge (TDB)",
    }
)
MIN_DISC_PX = 20
# Images are kept at most this many pixels a side: the networks see 160-320 px, and 315 SPIDER
# slices at 640 px would otherwise hold ~0.5 GB as float32.
MAX_SIDE = 448


def _shrink(img: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, Any, float]:
    s = min(1.0, MAX_SIDE / max(img.shape))
    if s >= 1.0:
        return img, mask, 1.0
    size = (round(img.shape[1] * s), round(img.shape[0] * s))
    small = np.asarray(Image.fromarray(img).resize(size, Image.BILINEAR))
    if mask is not None:
        mask = np.asarray(Image.fromarray(mask).resize(size, Image.NEAREST))
    return small, mask, s


def lumbar_from_chain(chain: np.ndarray) -> np.ndarray:
    """(5, 2) L1-L2..L5-S1 from discs ordered cranial first, the last being L5-S1."""
    out = np.full((len(DISC_LEVELS), 2), np.nan)
    n = min(len(chain), len(DISC_LEVELS))
    if n:
        out[len(DISC_LEVELS) - n :] = chain[len(chain) - n :]
    return out


def group_boxes(boxes: list[tuple[float, float, float, float]]) -> list[np.ndarray]:
    """Merge boxes that overlap (two classes drawn on one disc) into one box per disc."""
    groups: list[np.ndarray] = []
    for b in sorted(boxes, key=lambda b: (b[1] + b[3]) / 2):
        box = np.array(b, dtype=float)
        for i, g in enumerate(groups):
            ix = min(g[2], box[2]) - max(g[0], box[0])
            iy = min(g[3], box[3]) - max(g[1], box[1])
            small = min((g[2] - g[0]) * (g[3] - g[1]), (box[2] - box[0]) * (box[3] - box[1]))
            if ix > 0 and iy > 0 and ix * iy > 0.3 * small:
                groups[i] = np.array(
                    [min(g[0], box[0]), min(g[1], box[1]), max(g[2], box[2]), max(g[3], box[3])]
                )
                break
        else:
            groups.append(box)
    return sorted(groups, key=lambda g: (g[1] + g[3]) / 2)


def sudirman_items(root: Path) -> list[dict[str, Any]]:
    boxes: dict[str, list[tuple[float, float, float, float]]] = {}
    with (root / "boxes.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["class"] in DISC_CLASSES:
                boxes.setdefault(row["image"], []).append(
                    tuple(float(row[k]) for k in ("x0", "y0", "x1", "y1"))  # type: ignore[misc]
                )
    items = []
    with (root / "images.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            name = row["image"]
            if name not in boxes:
                continue  # 8 T1 images without boxes (README): nothing to learn from
            img = np.asarray(Image.open(root / "images" / name).convert("L"))
            groups = group_boxes(boxes[name])
            chain = np.array([[(g[1] + g[3]) / 2, (g[0] + g[2]) / 2] for g in groups])
            items.append(
                {
                    "name": f"sudirman/{Path(name).stem}",
                    "patient_id": f"sudirman-{row['patient']}",
                    "source": "sudirman",
                    "canonical": normalize(img),
                    "weighting": 0 if row["sequence"] == "T1" else 1,
                    "discs": lumbar_from_chain(chain),
                    "all_discs": chain,
                    "boxes": np.array(groups),
                }
            )
    return items


def disc_chain_from_mask(mask: np.ndarray) -> np.ndarray:
    lab, n = ndi.label(mask == 2)
    if n == 0:
        return np.zeros((0, 2))
    idx = range(1, n + 1)
    sizes = ndi.sum(np.ones_like(lab), lab, idx)
    cents = np.array(ndi.center_of_mass(np.ones_like(lab), lab, idx))
    keep = cents[np.asarray(sizes) >= MIN_DISC_PX]
    return keep[np.argsort(keep[:, 0])] if len(keep) else np.zeros((0, 2))


def spider_slice_items(root: Path) -> list[dict[str, Any]]:
    items = []
    for p in sorted((root / "images").glob("*.png")):
        img = np.asarray(Image.open(p).convert("L"))
        raw = np.asarray(Image.open(root / "masks" / p.name))
        mask = np.select([raw == 76, raw == 29, raw == 150], [1, 2, 3], 0).astype(np.uint8)
        if raw.max() <= 3:  # already 0-3 (a folder written by our own tools)
            mask = raw.astype(np.uint8)
        img, mask, _ = _shrink(img, mask)
        chain = disc_chain_from_mask(mask)
        items.append(
            {
                "name": f"spider_slices/{p.stem}",
                "patient_id": f"spider-{p.name.split('_', 1)[0]}",
                "source": "spider_slices",
                "canonical": normalize(img),
                "weighting": 1,
                "discs": lumbar_from_chain(chain) if len(chain) >= 5 else np.full((5, 2), np.nan),
                "all_discs": chain,
                "mask": mask,
            }
        )
    return items


def lumbar3d_items(root: Path, half_width: int = 6) -> list[dict[str, Any]]:
    """Near-midline sagittal slices (every other one within +-half_width of the slice with the
    most labelled voxels) of every volume, in standard display (axis 0 runs downward already)."""
    import nibabel as nib

    from reporter.training.image2d_train import disc_centres_from_mask

    items = []
    for p in sorted(root.glob("*_seg.nii.gz")):
        stem = p.name.replace("_seg.nii.gz", "")
        vol = np.asarray(nib.load(root / f"{stem}.nii.gz").dataobj, dtype=np.float32)
        seg = np.asarray(nib.load(p).dataobj).astype(np.uint8)
        count = (seg > 0).sum((0, 1))
        mid = int(np.argmax(count))
        for k in range(mid - half_width, mid + half_width + 1, 2):
            if not (0 <= k < vol.shape[2]) or count[k] < 0.3 * count[mid]:
                continue
            discs = disc_centres_from_mask(seg[:, :, k], stem)
            items.append(
                {
                    "name": f"lumbar3d/{stem}#{k}",
                    "patient_id": f"lumbar3d-{stem}",
                    "source": "lumbar3d",
                    "canonical": normalize(vol[:, :, k]),
                    "weighting": 0 if stem.startswith("vb3") else 1,
                    "discs": discs,
                    # Only the five lumbar discs are known; other discs in view are unlabelled.
                    "all_discs": discs[np.isfinite(discs).all(1)],
                    "partial_chain": True,
                }
            )
    return items


def real_items(real: Path) -> list[dict[str, Any]]:
    """Every labelled real image under `real` (sets that are absent are skipped)."""
    items: list[dict[str, Any]] = []
    if (real / "sudirman_sagittal" / "boxes.csv").is_file():
        items += sudirman_items(real / "sudirman_sagittal")
    if (real / "spider_slices" / "masks").is_dir():
        items += spider_slice_items(real / "spider_slices")
    if (real / "lumbar3d").is_dir():
        items += lumbar3d_items(real / "lumbar3d")
    return items
