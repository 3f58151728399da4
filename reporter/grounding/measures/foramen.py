"""The neural foramina on the parasagittal slices: perineural fat in the four Lee sectors and
the exiting root's size against the study's own roots."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from reporter.contracts import labels as L
from reporter.contracts.verdicts import Measurement
from reporter.grounding.measures.disc import Body
from reporter.grounding.measures.frame import Frame, Grid

SECTORS = ("cranial", "caudal", "anterior", "posterior")
# Perineural fat of an unnarrowed foramen (mm) in the cranial, anterior and posterior sectors;
# the caudal sector's expected fat is the room between the root and the lower body.
NORMAL_FAT_MM = {"cranial": 2.6, "anterior": 2.6, "posterior": 3.0}
EXPECTED_ROOT_RADIUS_MM = 2.8


def foramen_sectors(
    grid: Grid, frame: Frame, side: str, disc_half: float, up: Body | None, lower: str
) -> dict[str, float]:
    fat_lab = L.FORAMEN_LEFT if side == "left" else L.FORAMEN_RIGHT
    root_lab = L.ROOT_LEFT if side == "left" else L.ROOT_RIGHT
    lab = grid.labels
    up_h = up.u_hi - up.u_lo if up is not None else 27.0
    target_u = disc_half + 0.55 * up_h - 5.9  # where the exiting root sits above the disc
    # The root in cross-section: the largest root profile near the expected height (slices at
    # the foramen's edge cut it partly).
    best: tuple[int, int, np.ndarray] | None = None
    for kk in range(lab.shape[0]):
        rm = lab[kk] == root_lab
        if rm.sum() < 3:
            continue
        comp, n = ndimage.label(rm)
        for ci in range(1, n + 1):
            cm = comp == ci
            c = grid.slice_coords(kk, cm, frame)
            du = abs(float(c[:, 2].mean()) - target_u)
            if du < 10.0 and (best is None or len(c) > best[0]):
                best = (len(c), kk, cm)
    if best is None:
        return {}
    _, kk, root = best
    sp = grid.series.spacing
    rc = grid.slice_coords(kk, root, frame)
    centre = rc.mean(0)
    # Rays from the root centre in the slice plane; the fat run starts where the root ends.
    room_caudal = _room_below(grid, kk, frame, rc, lower)
    out: dict[str, float] = {
        "root_area_mm2": float(root.sum() * sp[1] * sp[2]),
        "slice": float(kk),
    }
    directions = {"cranial": (0.0, 1.0), "caudal": (0.0, -1.0), "anterior": (-1.0, 0.0),
                  "posterior": (1.0, 0.0)}  # fmt: skip
    steps = np.arange(0.0, 25.0, 0.1)
    for sector, (da, du) in directions.items():
        runs = []
        for ang in np.radians([-20.0, -10.0, 0.0, 10.0, 20.0]):
            ca, sa = np.cos(ang), np.sin(ang)
            ra, ru = da * ca - du * sa, da * sa + du * ca
            pts = frame.lps(
                np.full(steps.size, centre[0]), centre[1] + ra * steps, centre[2] + ru * steps
            )
            labs = grid.sample(pts, k=kk)
            i = 0
            while i < labs.size and labs[i] == root_lab:
                i += 1
            j = i
            while j < labs.size and labs[j] == fat_lab:
                j += 1
            runs.append((j - i) * 0.1)
        # A sub-pixel fat rim shows as one whole pixel or none; half a pixel off the run keeps
        # an obliterated sector from reading as a thin layer of fat.
        thickness = max(float(np.median(runs)) - 0.5 * float(sp[1]), 0.0)
        expected = NORMAL_FAT_MM.get(sector, room_caudal)
        out[sector] = thickness / max(expected, 1.0)
    return out


def _room_below(grid: Grid, k: int, frame: Frame, rc: np.ndarray, lower: str) -> float:
    """Caudal room for fat in an unnarrowed foramen: from the root's lower edge to the top of
    the vertebral body below (on the same parasagittal slice), plus 1 mm."""
    root_bottom = float(rc[:, 2].min())
    body = grid.labels[k] == L.vertebra_label(lower)
    if not body.any():
        return 6.0
    c = grid.slice_coords(k, body, frame)
    below = c[c[:, 2] < root_bottom]
    if not len(below):
        return 6.0
    return max(root_bottom - float(below[:, 2].max()) + 1.0, 2.0)


def root_ratios(out: dict[str, dict[str, Measurement]]) -> None:
    """Root cross-section over the expected one: the study's median root (most roots are not
    compressed), or a 2.8 mm radius root when too few roots were measured."""
    areas = [m[f"root_area_mm2_{s}"].value for m in out.values() for s in ("left", "right")
             if f"root_area_mm2_{s}" in m and m[f"root_area_mm2_{s}"].value]  # fmt: skip
    ref = float(np.median(areas)) if len(areas) >= 4 else np.pi * EXPECTED_ROOT_RADIUS_MM**2
    for m in out.values():
        for s in ("left", "right"):
            src = m.get(f"root_area_mm2_{s}")
            if src is not None and src.value:
                m[f"root_area_ratio_{s}"] = src.model_copy(
                    update={
                        "name": f"root_area_ratio_{s}",
                        "value": round(src.value / ref, 4),
                        "unit": "ratio",
                        "method": "root area / the study's median root",
                    }
                )
