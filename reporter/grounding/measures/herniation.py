"""Disc material beyond the vertebral outline on the sagittal slices: extension, base, rim
angle, share of slices and side (the herniation family)."""

from __future__ import annotations

import numpy as np

from reporter.contracts import labels as L
from reporter.contracts.verdicts import Unit
from reporter.grounding import grading
from reporter.grounding.measures.frame import Frame, Grid

HERNIATION_UNITS: dict[str, Unit] = {
    "posterior_extension_mm": "mm",
    "herniation_base_mm": "mm",
    "herniation_circumference_deg": "deg",
    "herniation_broad_fraction": "ratio",
    "herniation_lateral_mm": "mm",
}


def herniation_reach(grid: Grid, level: str, frame: Frame, up: str, lo: str) -> dict[str, float]:
    """Reach of the disc beyond the vertebral outline on each sagittal slice across the
    posterior wall's flat part (where the outline's normal is AP, so the AP reach is the radial
    one); slices further out see the rim obliquely and are left out."""
    lab = grid.labels
    rows: list[tuple[float, float]] = []  # (lateral, reach)
    half_widths = []
    for kk in range(lab.shape[0]):
        dm = lab[kk] == L.disc_label(level)
        if dm.sum() < 5:
            continue
        dc = grid.slice_coords(kk, dm, frame)
        half_widths.append(abs(float(np.median(dc[:, 0]))))
        dc = dc[np.abs(dc[:, 2]) < 12.0]
        walls = []
        for name in (up, lo):
            vm = lab[kk] == L.vertebra_label(name)
            if vm.sum() < 5:
                continue
            vc = grid.slice_coords(kk, vm, frame)
            vc = vc[np.abs(vc[:, 2]) < 14.0]  # the body's rim next to the disc, not its arch
            if len(vc):
                walls.append(float(np.percentile(vc[:, 1], 99)))
        if walls and len(dc):
            reach = float(np.percentile(dc[:, 1], 99.5)) - float(np.mean(walls))
            rows.append((float(np.median(dc[:, 0])), reach))
    if not rows or not half_widths:
        return {}
    disc_half = max(half_widths) + 0.5 * grid.series.spacing[0]
    arr = np.array([r for r in rows if abs(r[0]) <= 0.6 * disc_half])
    if not len(arr):
        return {}
    lat, reach = arr[:, 0], arr[:, 1]
    step = grid.series.spacing[0]
    best = int(np.argmax(reach))
    depth = max(float(reach[best]), 0.0)
    over = reach >= grading.rules()["herniation"]["min_extension_mm"]
    # Rim angle per slice: its width over the posterior wall's distance from the body centre.
    per_slice = float(np.degrees(step / 16.0))
    # A bulge reaches out all around, so (nearly) every slice across the wall shows it; the
    # share of slices that do is kept apart from the focal angle.
    tol = grading.rules()["herniation"]["tolerance_mm"]
    broad = float((reach >= grading.rules()["herniation"]["min_extension_mm"] - tol).mean())
    base = float((reach >= 0.5 * depth).sum() * step) if depth > 0 else 0.0
    return {
        "posterior_extension_mm": depth,
        "herniation_base_mm": base,
        "herniation_circumference_deg": float(over.sum() * per_slice),
        "herniation_broad_fraction": broad if len(reach) >= 3 else 0.0,
        "herniation_lateral_mm": float(lat[best]),
    }
