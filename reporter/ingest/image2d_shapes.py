"""Real shapes for a 2-D study: SegNet2D's vertebra / disc / canal classes, split into named
levels by DiscNet's disc chain.

DiscNet says where each named disc is; SegNet2D says which pixels are bone, disc and canal. A
disc component takes the name of the disc centre it holds (or lies nearest to, within half a
disc step); bone anterior of the canal is split into vertebral bodies by the nearest body centre
(midway between named discs), bone behind the canal's front wall is posterior elements. Where
the segmenter finds no component for a named disc, the caller keeps the schematic band.
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import torch
from scipy import ndimage as ndi
from torch.nn import functional as F

from reporter.contracts import labels as lab
from reporter.ingest.image2d_nets import SEG_SIZE, SegNet2D, fit_square, normalize
from reporter.resources import weights_dir

MIN_COMPONENT_PX = 12


@lru_cache(maxsize=1)
def _segnet() -> SegNet2D | None:
    """The shipped SegNet2D, or None when this install has no segmenter weights."""
    from safetensors.torch import load_file

    path = weights_dir() / "image2d" / "seg_net.safetensors"
    if not path.is_file():
        return None
    cfg = json.loads(path.with_suffix(".json").read_text())
    net = SegNet2D(width=int(cfg.get("width", 16)))
    net.load_state_dict(load_file(path))
    return net.eval()


@torch.no_grad()
def segment_classes(canonical: np.ndarray) -> np.ndarray | None:
    """Per-pixel class (0 background, 1 vertebra, 2 disc, 3 canal) on `canonical`'s grid."""
    net = _segnet()
    if net is None:
        return None
    sq, _, (nr, nc) = fit_square(normalize(canonical), SEG_SIZE)
    logits = net(torch.from_numpy(sq)[None, None])[:, :, :nr, :nc]
    up = F.interpolate(logits, size=canonical.shape, mode="bilinear", align_corners=False)
    return up[0].argmax(0).numpy().astype(np.uint8)


def _canal_front(canal: np.ndarray) -> np.ndarray:
    """Per row, the canal's anterior (smallest) column, interpolated over rows without canal;
    +inf everywhere when there is no canal."""
    rows = canal.shape[0]
    front = np.full(rows, np.nan)
    has = canal.any(1)
    if has.sum() < 2:
        return np.full(rows, np.inf)
    front[has] = canal[has].argmax(1)
    idx = np.arange(rows)
    return np.interp(idx, idx[has], front[has])


def named_labels(
    classes: np.ndarray, names: list[str], pts: np.ndarray, step: float
) -> tuple[np.ndarray, set[str]]:
    """A label map of reporter.contracts.labels values and the disc names it holds.

    `names` / `pts` are the named discs (row, col), cranial first, L5-S1 last."""
    out = np.zeros(classes.shape, dtype=np.int16)
    out[classes == 3] = lab.CANAL
    found: set[str] = set()
    comps, n = ndi.label(classes == 2)
    if n:
        idx = range(1, n + 1)
        sizes = np.asarray(ndi.sum(np.ones_like(comps), comps, idx))
        cents = np.asarray(ndi.center_of_mass(np.ones_like(comps), comps, idx)).reshape(-1, 2)
        for k in range(n):
            if sizes[k] < MIN_COMPONENT_PX:
                continue
            d = np.linalg.norm(pts - cents[k], axis=1)
            j = int(np.argmin(d))
            if d[j] < 0.5 * step:
                out[comps == k + 1] = lab.disc_label(names[j])
                found.add(names[j])
    # Body centres: half a step above the top disc, between discs, and S1 below L5-S1.
    body_names = [names[0].split("-")[0]] + [lv.split("-")[1] for lv in names]
    axis_top = (pts[0] - pts[1]) / (np.linalg.norm(pts[0] - pts[1]) + 1e-9)
    axis_bot = (pts[-1] - pts[-2]) / (np.linalg.norm(pts[-1] - pts[-2]) + 1e-9)
    centres = np.concatenate(
        [
            [pts[0] + axis_top * step / 2],
            (pts[:-1] + pts[1:]) / 2,
            [pts[-1] + axis_bot * step / 2],
        ]
    )
    rr, cc = np.nonzero(classes == 1)
    if rr.size:
        front = _canal_front(classes == 3)
        posterior = cc > front[rr]
        out[rr[posterior], cc[posterior]] = lab.POSTERIOR_ELEMENTS
        rb, cb = rr[~posterior], cc[~posterior]
        d = np.linalg.norm(np.stack([rb, cb], 1)[:, None] - centres[None], axis=2)
        nearest = d.argmin(1)
        near = d[np.arange(len(nearest)), nearest] < 0.9 * step
        values = np.array([lab.vertebra_label(v) for v in body_names], dtype=np.int16)
        out[rb[near], cb[near]] = values[nearest[near]]
    return out, found
