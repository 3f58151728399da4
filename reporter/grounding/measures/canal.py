"""The central canal and lateral recesses: sagittal AP diameter, axial thecal sac area (or its
estimate from the AP diameter), bony canal width and recess depth on axial blocks or beside the
line on sagittal slices."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from reporter.contracts import labels as L
from reporter.contracts.findings import split_level
from reporter.contracts.verdicts import Measurement
from reporter.grounding import grading
from reporter.grounding.measures.frame import FREE, THECAL, Frame, Grid, make_measurement


def canal_ap(grid: Grid, frame: Frame, k: int) -> float | None:
    """AP run of the thecal sac at the disc's mid-height (the longest run behind the disc)."""
    t = np.arange(0.0, 60.0, 0.05)
    runs = []
    for off in (-1.0, -0.5, 0.0, 0.5, 1.0):
        inside = np.isin(
            grid.sample(frame.lps(np.zeros(t.size), t, np.full(t.size, off)), k=k), THECAL
        )
        if inside.any():
            edges = np.diff(np.concatenate([[0], inside.astype(int), [0]]))
            starts, stops = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
            runs.append(float((stops - starts).max() * 0.05))
    return float(np.mean(runs)) if runs else None


def axial_for(axials: list[Grid | None], frame: Frame) -> tuple[Grid, int] | None:
    best: tuple[float, Grid, int] | None = None
    for g in axials:
        if g is None:
            continue
        kf = float(g.series.lps_to_index(frame.origin)[0])
        kk = round(kf)
        if not (0 <= kk < g.labels.shape[0]) and not (-0.6 <= kf <= g.labels.shape[0] - 0.4):
            continue
        kk = int(np.clip(kk, 0, g.labels.shape[0] - 1))
        dist = abs(kf - kk) * g.series.spacing[0]
        if best is None or dist < best[0]:
            best = (dist, g, kk)
    return (best[1], best[2]) if best is not None else None


def thecal_area(g: Grid, k: int, frame: Frame) -> float | None:
    mask = np.isin(g.labels[k], THECAL)
    if mask.sum() < 3:
        return None
    comp, n = ndimage.label(mask)
    if n > 1:  # the sac is the largest component (nerve sleeves may split off)
        sizes = np.bincount(comp.ravel())
        sizes[0] = 0
        mask = comp == int(np.argmax(sizes))
    return float(mask.sum() * g.pixel_area)


def _plane_point(g: Grid, k: int, frame: Frame, lat: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Points (lat, a) of the frame moved along u onto axial slice k's plane."""
    n = g.series.normal
    p0 = g.affine[:3, 3] + k * g.affine[:3, 0]
    base = frame.lps(lat, a, np.zeros_like(lat))
    denom = float(frame.u @ n)
    if abs(denom) < 1e-3:
        return base
    shift = ((p0 - base) @ n) / denom
    return base + shift[..., None] * frame.u


def canal_half_width(g: Grid, k: int, frame: Frame, level: str) -> dict[str, float]:
    """Bony canal half-width on each side, from the axial slice: scanning sideways just behind
    the disc, the foraminal frame starts 0.5 mm outside the canal's wall."""
    step = 0.05
    a_line = np.arange(-10.0, 40.0, step)
    mid = g.sample(_plane_point(g, k, frame, np.zeros_like(a_line), a_line), k=k)
    up, lo = split_level(level)
    bony = [L.disc_label(level), L.vertebra_label(up), L.vertebra_label(lo)]
    is_bony = np.isin(mid, bony)
    if not is_bony.any():
        return {}
    wall_a = a_line[int(np.nonzero(is_bony)[0].max())]
    passable = (*FREE, *bony)  # a herniation may reach into the recess: look past it
    lat_line = np.arange(0.0, 30.0, step)
    lab = g.labels[k]
    out: dict[str, float] = {}
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        # Perineural fat and root fill the foramen from its medial edge, 0.5 mm outside the
        # canal wall; where the fat is gone, scan sideways just behind the disc instead (the
        # most lateral first hit over a few rows: a superior articular process is met medially).
        labs = (L.FORAMEN_LEFT, L.ROOT_LEFT) if side == "left" else (L.FORAMEN_RIGHT, L.ROOT_RIGHT)
        fat = np.isin(lab, labs)
        hits: list[float] = []
        if fat.sum() >= 5:
            c = g.slice_coords(k, fat, frame)
            c = c[(c[:, 1] > wall_a - 3.0) & (c[:, 1] < wall_a + 14.0)]
            if len(c) >= 5:
                hits.append(float(np.percentile(np.abs(c[:, 0]), 2)))
        if not hits:
            for da in (0.5, 0.8, 1.1):
                row = g.sample(
                    _plane_point(g, k, frame, sgn * lat_line, np.full(lat_line.size, wall_a + da)),
                    k=k,
                )
                hit = np.nonzero(~np.isin(row, passable))[0]
                if hit.size:
                    hits.append(float(lat_line[hit[0]]))
        if hits and 7.0 <= max(hits) <= 18.0:
            out[side] = max(hits) - 0.5
    return out


def recess_depths(
    grid: Grid, frame: Frame, level: str, up: str, lo: str, half_width: dict[str, float]
) -> dict[str, float]:
    """Free AP run behind the disc at the disc's mid-height, 2 mm inside the bony canal wall,
    on the sagittal slices around that line (axial blocks need not cut the disc's mid-height)."""
    bony = [L.disc_label(level), L.vertebra_label(up), L.vertebra_label(lo)]
    out: dict[str, float] = {}
    # The canal's centre line from its two walls (the disc centroid may sit off it).
    for side, x in _line_positions(half_width).items():
        kf = float(grid.series.lps_to_index(frame.lps(x, 0.0, 0.0))[0])
        # The line rarely lies on a slice: interpolate the runs of the two slices around it.
        k0 = int(np.floor(kf))
        runs: list[tuple[float, float]] = []
        for k, w in ((k0, 1.0 - (kf - k0)), (k0 + 1, kf - k0)):
            if 0 <= k < grid.labels.shape[0] and w > 0.05:
                r = _recess_run(grid, k, frame, x, bony)
                if r is not None:
                    runs.append((r, w))
        if runs:
            out[side] = float(sum(r * w for r, w in runs) / sum(w for _, w in runs))
    return out


def _line_positions(half_width: dict[str, float]) -> dict[str, float]:
    """Lateral position of each recess line: 2 mm inside the wall, about the canal's centre."""
    centre, half = 0.0, dict(half_width)
    if "left" in half_width and "right" in half_width:
        centre = (half_width["left"] - half_width["right"]) / 2
        half = dict.fromkeys(half_width, (half_width["left"] + half_width["right"]) / 2)
    return {side: centre + (1.0 if side == "left" else -1.0) * (half[side] - 2.0) for side in half}


def recess_depths_axial(
    g: Grid, frame: Frame, level: str, up: str, lo: str, half_width: dict[str, float]
) -> dict[str, float]:
    """The same run on the axial block, interpolated between the slices around the disc
    centre (blocks lie in the disc plane)."""
    bony = [L.disc_label(level), L.vertebra_label(up), L.vertebra_label(lo)]
    kf = float(g.series.lps_to_index(frame.origin)[0])
    k0 = int(np.floor(kf))
    ks = [
        (k, w)
        for k, w in ((k0, 1.0 - (kf - k0)), (k0 + 1, kf - k0))
        if 0 <= k < g.labels.shape[0] and w > 0.05
    ]
    step = 0.05
    a_line = np.arange(-10.0, 40.0, step)
    out: dict[str, float] = {}
    for side, x in _line_positions(half_width).items():
        runs: list[tuple[float, float]] = []
        for k, w in ks:
            pts = _plane_point(g, k, frame, np.full(a_line.size, x), a_line)
            r = _free_run_behind(g.sample(pts, k=k), bony, step)
            if r is not None:
                runs.append((r, w))
        if runs:  # interpolated between the slices around the disc centre
            out[side] = float(sum(r * w for r, w in runs) / sum(w for _, w in runs))
    return out


def _recess_run(grid: Grid, k: int, frame: Frame, x: float, bony: list[int]) -> float | None:
    """Free run behind the disc on slice k along the AP line at lateral x, mid-height."""
    step = 0.05
    a_line = np.arange(-10.0, 40.0, step)
    runs = []
    for u in (-0.5, 0.0, 0.5):
        line = grid.sample(frame.lps(np.full(a_line.size, x), a_line, np.full(a_line.size, u)), k=k)
        r = _free_run_behind(line, bony, step)
        if r is not None:
            runs.append(r)
    return float(np.median(runs)) if runs else None


def _free_run_behind(line: np.ndarray, bony: list[int], step: float) -> float | None:
    """Free run (mm) along an AP line of labels from just behind its last bony sample (disc or
    body) to the first sample that is not free space; None when the line meets no bone."""
    b = np.isin(line, bony)
    if not b.any():
        return None
    start = int(np.nonzero(b)[0].max()) + 1
    free = np.isin(line[start:], FREE)
    stop = np.nonzero(~free)[0]
    return float((stop[0] if stop.size else free.size) * step)


def recess_without_axial(
    out: dict[str, dict[str, Measurement]], grid: Grid, frames: dict[str, Frame]
) -> None:
    """Levels no axial block covers: their lateral recess is read with the canal width of the
    study's other levels (the bony canal changes little from level to level)."""
    widths = [
        m[f"canal_half_width_mm_{s}"].value
        for m in out.values()
        for s in ("left", "right")
        if f"canal_half_width_mm_{s}" in m and m[f"canal_half_width_mm_{s}"].value
    ]
    if len(widths) < 2:
        return
    hw = float(np.median(widths))
    for level, m in out.items():
        if "canal_half_width_mm_left" in m or "canal_half_width_mm_right" in m:
            continue
        frame = frames.get(level)
        if frame is None:
            continue
        upper, lower = split_level(level)
        depths = recess_depths(grid, frame, level, upper, lower, {"left": hw, "right": hw})
        for side, depth in depths.items():
            name = f"lateral_recess_depth_mm_{side}"
            m[name] = make_measurement(name, depth, "mm", level, grid, None, frame.origin,
                         "free AP run behind the disc 2 mm inside the canal wall, sagittal slices "
                         "beside the line (wall width from the study's axial levels)")  # fmt: skip


def area_from_ap(out: dict[str, dict[str, Measurement]]) -> None:
    """Levels without an axial cross-section: the dural sac area estimated from the sagittal AP
    diameter, scaled by the study's own axially measured normal levels (area ~ AP^1.5: a
    narrowing sac loses depth faster than width)."""
    ratios = [
        m["dural_sac_area_mm2"].value / m["canal_ap_mm"].value ** 1.5  # type: ignore[operator]
        for m in out.values()
        if m.get("dural_sac_area_mm2") and m.get("canal_ap_mm")
        and m["dural_sac_area_mm2"].value and m["canal_ap_mm"].value
        and grading.canal_grade(m["dural_sac_area_mm2"].value) == "none"
    ]  # fmt: skip
    if len(ratios) < 2:
        return
    k = float(np.median(ratios))
    for m in out.values():
        ap = m.get("canal_ap_mm")
        if "dural_sac_area_mm2" in m or ap is None or not ap.value:
            continue
        m["dural_sac_area_est_mm2"] = ap.model_copy(
            update={
                "name": "dural_sac_area_est_mm2",
                "value": round(k * ap.value**1.5, 2),
                "unit": "mm2",
                "method": "from the sagittal AP diameter, scaled by this "
                "study's axially measured normal levels (area ~ AP^1.5)",
            }
        )
