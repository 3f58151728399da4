"""Preview montage of a phantom: mid-sagittal T1 and T2, the label map over T2, axial blocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from reporter.synth.phantom import Phantom

TILE = 256


def _to_u8(img: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    lo = float(np.percentile(img, 1)) if lo is None else lo
    hi = float(np.percentile(img, 99.5)) if hi is None else hi
    return (np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)


def _tile(a: np.ndarray) -> Image.Image:
    im = Image.fromarray(a)
    im.thumbnail((TILE, TILE))
    canvas = Image.new(im.mode, (TILE, TILE))
    canvas.paste(im, ((TILE - im.width) // 2, (TILE - im.height) // 2))
    return canvas


def _overlay(gray: np.ndarray, labels: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(7)
    lut = rng.integers(40, 255, (int(labels.max()) + 1, 3)).astype(np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=2).astype(np.float32)
    mask = labels > 0
    rgb[mask] = 0.5 * rgb[mask] + 0.5 * lut[labels[mask]]
    return rgb.astype(np.uint8)


def montage(phantom: Phantom) -> Image.Image:
    st = phantom.study
    t1, t2 = st.get("sag_t1"), st.get("sag_t2")
    tiles: list[Image.Image] = []
    if t1 is not None and t2 is not None:
        k = t2.shape[0] // 2
        tiles.append(_tile(_to_u8(t1.pixels[k])).convert("RGB"))
        g = _to_u8(t2.pixels[k])
        tiles.append(_tile(g).convert("RGB"))
        tiles.append(_tile(_overlay(g, phantom.anatomy.labels[k])))
    for s in st.all("ax_t2")[:5]:
        tiles.append(_tile(_to_u8(s.pixels[s.shape[0] // 2])).convert("RGB"))
    cols = 4
    rows = (len(tiles) + cols - 1) // cols
    out = Image.new("RGB", (cols * TILE, rows * TILE))
    for n, t in enumerate(tiles):
        out.paste(t, ((n % cols) * TILE, (n // cols) * TILE))
    return out


def write_preview(phantom: Phantom, path: Path) -> Path:
    montage(phantom).save(path, format="PNG", optimize=False)
    return path
