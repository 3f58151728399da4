"""Endplate marrow signal for Modic typing: the band just past the cortex over the body's
central marrow, on T1 and T2."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from reporter.contracts import labels as L
from reporter.contracts.study import Series
from reporter.grounding.measures.frame import Frame, Grid, mid_slice

MODIC_BAND_MM = (1.5, 2.8)


def depth_inside(mask: np.ndarray, sampling: tuple[float, float]) -> np.ndarray:
    """Distance (mm) of every pixel of `mask` to the nearest pixel outside it, computed on the
    mask's bounding box grown by one pixel: the same numbers as on the whole slice (the grown
    box's rim is outside, and no outside pixel beyond it is nearer), at a fraction of the cost."""
    rows, cols = np.nonzero(mask)
    r0, r1 = max(int(rows.min()) - 1, 0), min(int(rows.max()) + 2, mask.shape[0])
    c0, c1 = max(int(cols.min()) - 1, 0), min(int(cols.max()) + 2, mask.shape[1])
    out = np.zeros(mask.shape)
    out[r0:r1, c0:c1] = ndimage.distance_transform_edt(mask[r0:r1, c0:c1], sampling=sampling)
    return out


def modic_ratio(series: Series, grid: Grid, body: str, frame: Frame, side: str) -> float | None:
    """Endplate marrow band over central marrow on the body next to the disc. `side` 'upper':
    the body above the disc (its inferior endplate); 'lower': the body below (superior)."""
    k = mid_slice(grid, frame)
    n = grid.labels.shape[0]
    sp = grid.series.spacing
    band: list[np.ndarray] = []
    core: list[np.ndarray] = []
    for kk in range(max(k - 1, 0), min(k + 2, n)):
        m = grid.labels[kk] == L.vertebra_label(body)
        if m.sum() < 50:
            continue
        dist = depth_inside(m, (sp[1], sp[2]))
        c = grid.slice_coords(kk, m, frame)
        dd = dist[m]
        a0, a1 = np.percentile(c[:, 1], [2, 98])
        central_ap = np.abs(c[:, 1] - (a0 + a1) / 2) <= 0.3 * (a1 - a0)
        if not central_ap.any():
            continue
        # The endplate facing the disc, and the body's centre 12 mm inside it (not the middle
        # of the whole label: the sacrum is long).
        inward = 1.0 if side == "upper" else -1.0
        face_u = float(np.percentile(c[central_ap, 2], 1 if side == "upper" else 99))
        depth_in = (c[:, 2] - face_u) * inward
        in_band = (
            central_ap & (depth_in <= 6.0) & (dd >= MODIC_BAND_MM[0]) & (dd <= MODIC_BAND_MM[1])
        )
        in_core = central_ap & (np.abs(depth_in - 12.0) <= 4.0) & (dd >= 4.0)
        jj, ii = np.nonzero(m)
        band.append(series.pixels[kk, jj[in_band], ii[in_band]])
        core.append(series.pixels[kk, jj[in_core], ii[in_core]])
    b = np.concatenate(band) if band else np.array([])
    c0 = np.concatenate(core) if core else np.array([])
    if b.size < 8 or c0.size < 8:
        return None
    ref = float(np.median(c0))
    return float(np.median(b)) / ref if ref > 0 else None
