"""Measurements per disc level, from the label map and the images of the same study.

Every number is taken in a local frame of the level: `u` runs cranially along the spine (from
the lower to the upper vertebral body centroid), `a` runs posteriorly in the mid-sagittal plane,
`l` runs to the patient's left (LPS +x). Sagittal measurements are taken on the mid-sagittal
slice (the slice through the canal's centre at that level); cross-sections on the axial slice
nearest to the disc centre where an axial stack covers it.

Definitions (the phantom generator derives its ground truth from the drawn geometry with the same
definitions; see reporter/grounding/rules.json for the thresholds):
- canal_ap_mm: AP extent of the thecal sac (canal + cord) on the mid-sagittal slice, averaged over
  a band of +-1.5 mm around the disc's mid-height;
- dural_sac_area_mm2: thecal sac area on the axial slice nearest the disc centre;
- *_relative: the level's value over the median of the study's levels graded normal by the same
  measurement (the study's own normal levels);
- disc_height_mm: mean height of the central 40% (AP) of the disc on the mid-sagittal slice;
  disc_height_index: disc height over the expected height (see `expected_disc_height`);
- disc_csf_t2_ratio: median T2 signal of the central disc (nucleus) over median CSF signal at
  the level;
- modic_t{1,2}_ratio_{upper,lower}: median signal of the endplate marrow band (ENDPLATE_BAND_MM
  next to the disc, cortex excluded) over the vertebral body's central marrow;
- slip_percent: offset of the upper body's posterior-inferior corner from the lower body's
  posterior-superior corner, along the lower endplate, in % of the lower endplate's AP length
  (positive = anterolisthesis);
- posterior_extension_mm: how far the disc reaches behind the line joining the posterior walls
  of the two vertebral bodies; herniation_base_mm its lateral width where it exceeds the
  minimum extension; herniation_circumference_deg that width as an angle of the disc rim;
  herniation_lateral_mm where it is largest (positive = left);
- foraminal_fat_{sector}_{side}: perineural fat present in each of 4 sectors around the exiting
  root, as a fraction of the sector; root_area_ratio_{side}: root cross-section over the
  study's largest root at the same side (expected);
- lateral_recess_depth_mm_{side}: AP depth of the lateral recess (canal) at the subarticular
  zone on the axial slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from reporter.anatomy import labels as L
from reporter.anatomy.anatomy import Anatomy
from reporter.anatomy.importers import resample_nearest, stack_key
from reporter.grounding import grading
from reporter.grounding.verdicts import Measurement
from reporter.schema import split_level
from reporter.study import Series, Study

ENDPLATE_BAND_MM = 4.0
CANAL_BAND_MM = 1.5
THECAL = (L.CANAL, L.CORD)


@dataclass
class Frame:
    origin: np.ndarray  # LPS mm, disc centroid
    u: np.ndarray  # cranial
    a: np.ndarray  # posterior
    lat: np.ndarray  # left

    def coords(self, lps: np.ndarray) -> np.ndarray:
        """(n, 3) LPS -> (n, 3) (l, a, u) in mm relative to the origin."""
        d = lps - self.origin
        return np.stack([d @ self.lat, d @ self.a, d @ self.u], axis=1)


@dataclass
class Grid:
    """A label map on one series' grid, with what we need to measure on it."""

    series: Series
    labels: np.ndarray

    @property
    def affine(self) -> np.ndarray:
        return self.series.affine

    def points(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.argwhere(mask)
        return idx, idx @ self.affine[:3, :3].T + self.affine[:3, 3]

    @property
    def pixel_area(self) -> float:
        sp = self.series.spacing
        return sp[1] * sp[2]


def _find_series(study: Study, uid: str, stack: int) -> Series | None:
    return next((s for s in study.series if s.series_uid == uid and s.stack_index == stack), None)


def _grid_for(series: Series | None, anatomy: Anatomy, ref: Series) -> Grid | None:
    if series is None:
        return None
    if series is ref:
        return Grid(series, anatomy.labels)
    lab = anatomy.extra_labels.get(stack_key(series))
    if lab is None or tuple(lab.shape) != series.shape:
        lab = resample_nearest(anatomy.labels, anatomy.affine, series.shape, series.affine)
    return Grid(series, lab)


def _frame(grid: Grid, level: str) -> Frame | None:
    upper, lower = split_level(level)
    lab = grid.labels
    disc = lab == L.disc_label(level)
    if disc.sum() < 5:
        return None
    _, disc_pts = grid.points(disc)
    origin = disc_pts.mean(0)
    cu = _centroid(grid, L.vertebra_label(upper))
    cl = _centroid(grid, L.vertebra_label(lower))
    if cu is not None and cl is not None:
        u = cu - cl
    else:  # one body missing: the disc's thinnest direction is the spine axis
        _, _, vt = np.linalg.svd(disc_pts - origin, full_matrices=False)
        u = vt[2]
    u = u / np.linalg.norm(u)
    if u[2] < 0:
        u = -u
    normal = grid.series.normal
    a = np.cross(normal, u)
    a /= np.linalg.norm(a)
    if a[1] < 0:  # LPS +y is posterior
        a = -a
    lat = np.cross(u, a)
    lat /= np.linalg.norm(lat)
    if lat[0] < 0:
        lat = -lat
    return Frame(origin, u, a, lat)


def _centroid(grid: Grid, value: int) -> np.ndarray | None:
    idx = np.argwhere(grid.labels == value)
    if len(idx) < 5:
        return None
    return idx.mean(0) @ grid.affine[:3, :3].T + grid.affine[:3, 3]


def _mid_slice(grid: Grid, frame: Frame) -> int:
    """Sagittal slice through the thecal sac's centre near the level (else the disc centre)."""
    mask = np.isin(grid.labels, THECAL)
    idx, pts = grid.points(mask)
    if len(idx):
        c = frame.coords(pts)
        near = np.abs(c[:, 2]) < 15.0
        if near.any():
            centre = pts[near].mean(0)
            return int(
                np.clip(round(grid.series.lps_to_index(centre)[0]), 0, grid.labels.shape[0] - 1)
            )
    return int(
        np.clip(round(grid.series.lps_to_index(frame.origin)[0]), 0, grid.labels.shape[0] - 1)
    )


def _slice_coords(grid: Grid, k: int, mask2d: np.ndarray, frame: Frame) -> np.ndarray:
    jj, ii = np.nonzero(mask2d)
    idx = np.stack([np.full_like(jj, k), jj, ii], 1)
    return frame.coords(idx @ grid.affine[:3, :3].T + grid.affine[:3, 3])


def _band_extent(
    coords: np.ndarray, along: int, across: int, centre: float, half: float, px_area: float
) -> float | None:
    """Mean extent along axis `along` of the pixels within +-half of `centre` on axis `across`:
    area in the band over the band's width (robust to the grid being tilted)."""
    sel = np.abs(coords[:, across] - centre) <= half
    if sel.sum() == 0:
        return None
    return float(sel.sum() * px_area / (2 * half))


def _m(
    name: str,
    value: float | None,
    unit: str,
    level: str,
    grid: Grid | None,
    k: int | None = None,
    pos: np.ndarray | None = None,
    method: str = "",
) -> Measurement:
    return Measurement(
        name=name,
        value=None if value is None or not np.isfinite(value) else round(float(value), 4),
        unit=unit,
        level=level,
        series_uid=grid.series.series_uid if grid else None,
        stack_index=grid.series.stack_index if grid else 0,
        slice_index=k,
        position_lps=[round(float(x), 2) for x in pos] if pos is not None else None,
        method=method,
    )


# --- per-structure measurements -------------------------------------------------------------------
def _disc_geometry(grid: Grid, level: str, frame: Frame, k: int) -> dict[str, float]:
    """Central disc height and AP depth on the mid-sagittal slice."""
    mask = grid.labels[k] == L.disc_label(level)
    if mask.sum() < 5:
        return {}
    c = _slice_coords(grid, k, mask, frame)
    a0, a1 = np.percentile(c[:, 1], [1, 99])
    depth = float(a1 - a0)
    centre = float((a0 + a1) / 2)
    height = _band_extent(c, 2, 1, centre, 0.2 * depth, grid.pixel_area)
    return {
        "height": height or np.nan,
        "depth": depth,
        "a_centre": centre,
        "a_post": float(c[:, 1].max()),
        "u_centre": float(np.median(c[:, 2])),
    }


def _body_geometry(grid: Grid, name: str, frame: Frame, k: int) -> dict[str, float]:
    mask = grid.labels[k] == L.vertebra_label(name)
    if mask.sum() < 10:
        return {}
    c = _slice_coords(grid, k, mask, frame)
    a0, a1 = np.percentile(c[:, 1], [1, 99])
    depth = float(a1 - a0)
    centre = float((a0 + a1) / 2)
    height = _band_extent(c, 2, 1, centre, 0.2 * depth, grid.pixel_area)
    u_lo, u_hi = float(c[:, 2].min()), float(c[:, 2].max())
    # Posterior wall near each endplate (corners), and endplate AP lengths.
    near_lo = c[c[:, 2] < u_lo + 3.0]
    near_hi = c[c[:, 2] > u_hi - 3.0]
    return {
        "height": height or np.nan,
        "depth": depth,
        "a_centre": centre,
        "u_lo": u_lo,
        "u_hi": u_hi,
        "post_lo": float(near_lo[:, 1].max()) if len(near_lo) else np.nan,
        "post_hi": float(near_hi[:, 1].max()) if len(near_hi) else np.nan,
        "ant_lo": float(near_lo[:, 1].min()) if len(near_lo) else np.nan,
        "ant_hi": float(near_hi[:, 1].min()) if len(near_hi) else np.nan,
        "post_mid": float(c[np.abs(c[:, 2] - (u_lo + u_hi) / 2) < 3.0][:, 1].max())
        if (np.abs(c[:, 2] - (u_lo + u_hi) / 2) < 3.0).any()
        else np.nan,
    }


def expected_disc_height(body_heights: list[float]) -> float:
    """Expected disc height from the adjacent vertebral bodies: a healthy lumbar disc is about a
    third of the body height (disc/body height ratio 0.3-0.4, Frobin et al., Clin Biomech
    1997;12 Suppl 1:S1-S63)."""
    return float(np.nanmean(body_heights)) * DISC_BODY_RATIO


DISC_BODY_RATIO = 0.36


def _canal_ap(grid: Grid, frame: Frame, k: int, u_centre: float) -> float | None:
    mask = np.isin(grid.labels[k], THECAL)
    if mask.sum() < 5:
        return None
    c = _slice_coords(grid, k, mask, frame)
    c = c[np.abs(c[:, 2] - u_centre) < 30]  # the sac at this level, not the whole column
    return _band_extent(c, 1, 2, u_centre, CANAL_BAND_MM, grid.pixel_area)


def _signal(series: Series, grid: Grid, mask3d: np.ndarray) -> float | None:
    vals = series.pixels[mask3d]
    return float(np.median(vals)) if vals.size >= 3 else None


def _erode2d(mask: np.ndarray) -> np.ndarray:
    """In-plane erosion (one pixel), slice by slice: drop partial-volume rims."""
    st = np.zeros((3, 3, 3), bool)
    st[1] = ndimage.generate_binary_structure(2, 1)
    return ndimage.binary_erosion(mask, st)


def _lateral_slab(grid: Grid, frame: Frame, half_mm: float) -> np.ndarray:
    """Slices whose centre lies within +-half_mm (left-right) of the level origin."""
    n = grid.labels.shape[0]
    ks = np.arange(n)
    centres = (
        np.stack([ks, np.zeros(n), np.zeros(n)], 1) @ grid.affine[:3, :3].T + grid.affine[:3, 3]
    )
    lat = (centres - frame.origin) @ frame.lat
    # Only the component along l matters: row/col positions are the same for every slice.
    return np.abs(lat - lat[np.argmin(np.abs(lat))]) <= half_mm


def _disc_csf_ratio(
    t2: Series, grid: Grid, level: str, frame: Frame, k: int, geo: dict[str, float]
) -> float | None:
    if not geo:
        return None
    n = grid.labels.shape[0]
    lab = grid.labels
    ks = [kk for kk in range(max(k - 1, 0), min(k + 2, n))]
    disc_vals: list[np.ndarray] = []
    csf_vals: list[np.ndarray] = []
    for kk in ks:
        dm = _erode2d(lab[kk : kk + 1] == L.disc_label(level))[0]
        if dm.any():
            c = _slice_coords(grid, kk, dm, frame)
            central = (np.abs(c[:, 1] - geo["a_centre"]) <= 0.25 * geo["depth"]) & (
                np.abs(c[:, 2] - geo["u_centre"]) <= 0.3 * max(geo["height"], 2.0)
            )
            jj, ii = np.nonzero(dm)
            disc_vals.append(t2.pixels[kk, jj[central], ii[central]])
        cm = _erode2d(lab[kk : kk + 1] == L.CANAL)[0]
        if cm.any():
            c = _slice_coords(grid, kk, cm, frame)
            near = np.abs(c[:, 2]) <= 25.0
            jj, ii = np.nonzero(cm)
            csf_vals.append(t2.pixels[kk, jj[near], ii[near]])
    d = np.concatenate(disc_vals) if disc_vals else np.array([])
    s = np.concatenate(csf_vals) if csf_vals else np.array([])
    if d.size < 3 or s.size < 3:
        return None
    csf = float(np.median(s))
    return float(np.median(d)) / csf if csf > 0 else None


def _modic_ratio(
    series: Series, grid: Grid, body: str, frame: Frame, side: str, k: int
) -> float | None:
    """Endplate band / central marrow on the body next to the disc. `side`: 'upper' means the
    body above the disc (its inferior endplate), 'lower' the body below (superior endplate)."""
    lab = grid.labels
    n = lab.shape[0]
    band: list[np.ndarray] = []
    core: list[np.ndarray] = []
    for kk in range(max(k - 1, 0), min(k + 2, n)):
        m = _erode2d(lab[kk : kk + 1] == L.vertebra_label(body))[0]
        if m.sum() < 10:
            continue
        c = _slice_coords(grid, kk, m, frame)
        a0, a1 = np.percentile(c[:, 1], [2, 98])
        central_ap = np.abs(c[:, 1] - (a0 + a1) / 2) <= 0.35 * (a1 - a0)
        u_lo, u_hi = c[:, 2].min(), c[:, 2].max()
        if side == "upper":  # inferior endplate of the body above the disc
            in_band = c[:, 2] <= u_lo + ENDPLATE_BAND_MM
        else:
            in_band = c[:, 2] >= u_hi - ENDPLATE_BAND_MM
        mid = (u_lo + u_hi) / 2
        in_core = np.abs(c[:, 2] - mid) <= 0.2 * (u_hi - u_lo)
        jj, ii = np.nonzero(m)
        band.append(series.pixels[kk, jj[in_band & central_ap], ii[in_band & central_ap]])
        core.append(series.pixels[kk, jj[in_core & central_ap], ii[in_core & central_ap]])
    b = np.concatenate(band) if band else np.array([])
    c0 = np.concatenate(core) if core else np.array([])
    if b.size < 5 or c0.size < 5:
        return None
    ref = float(np.median(c0))
    return float(np.median(b)) / ref if ref > 0 else None


def measure(study: Study, anatomy: Anatomy) -> dict[str, dict[str, Measurement]]:
    """Measurements at every level the anatomy names (levels outside the FOV are absent)."""
    ref = _find_series(study, anatomy.reference_series_uid, anatomy.reference_stack_index)
    if ref is None:
        return {}
    grid = Grid(ref, anatomy.labels)
    if tuple(grid.labels.shape) != ref.shape:
        return {}
    t2 = ref if ref.weighting == "T2" else study.get("sag_t2")
    t1 = study.get("sag_t1")
    t1_grid = _grid_for(t1, anatomy, ref)
    t2_grid = grid if t2 is ref else _grid_for(t2, anatomy, ref)
    axials = [_grid_for(s, anatomy, ref) for s in study.all("ax_t2")]
    out: dict[str, dict[str, Measurement]] = {}
    for level in anatomy.levels:
        frame = _frame(grid, level)
        if frame is None:
            continue
        out[level] = _measure_level(level, frame, grid, t1, t1_grid, t2, t2_grid, axials)
    _add_relative(out)
    return out


def _measure_level(
    level: str,
    frame: Frame,
    grid: Grid,
    t1: Series | None,
    t1_grid: Grid | None,
    t2: Series | None,
    t2_grid: Grid | None,
    axials: list[Grid | None],
) -> dict[str, Measurement]:
    upper, lower = split_level(level)
    k = _mid_slice(grid, frame)
    pos = frame.origin
    res: dict[str, Measurement] = {}

    def add(
        name: str,
        value: float | None,
        unit: str,
        g: Grid | None = grid,
        kk: int | None = k,
        method: str = "",
    ) -> None:
        res[name] = _m(name, value, unit, level, g, kk, pos, method)

    disc = _disc_geometry(grid, level, frame, k)
    up = _body_geometry(grid, upper, frame, k)
    lo = _body_geometry(grid, lower, frame, k)
    if disc:
        add("disc_height_mm", disc["height"], "mm", method="central 40% of the disc, mid-sagittal")
        bodies = [b["height"] for b in (up, lo) if b and np.isfinite(b.get("height", np.nan))]
        if bodies:
            add(
                "disc_height_index",
                disc["height"] / expected_disc_height(bodies),
                "ratio",
                method=f"disc height / ({DISC_BODY_RATIO} x mean adjacent body height)",
            )
        ap = _canal_ap(grid, frame, k, disc["u_centre"])
        add("canal_ap_mm", ap, "mm", method="thecal sac AP at disc mid-height, mid-sagittal")
    if t2 is not None and t2_grid is not None and disc:
        k2 = _mid_slice(t2_grid, frame) if t2_grid is not grid else k
        add(
            "disc_csf_t2_ratio",
            _disc_csf_ratio(t2, t2_grid, level, frame, k2, disc),
            "ratio",
            g=t2_grid,
            kk=k2,
            method="median nucleus / median CSF, T2",
        )
    for series, g, tag in ((t1, t1_grid, "t1"), (t2, t2_grid, "t2")):
        if series is None or g is None:
            continue
        kk = _mid_slice(g, frame)
        for side, body in (("upper", upper), ("lower", lower)):
            if upper == "S1" and side == "upper":
                continue
            add(
                f"modic_{tag}_ratio_{side}",
                _modic_ratio(series, g, body, frame, side, kk),
                "ratio",
                g=g,
                kk=kk,
                method=f"endplate band {ENDPLATE_BAND_MM} mm / central marrow",
            )
    if up and lo:
        slip = _slip_percent(up, lo)
        add("slip_percent", slip, "%", method="posterior corners, % of lower endplate AP length")
    if disc and up and lo:
        _herniation(res, grid, level, frame, up, lo, add)
    ax = _axial_for(axials, frame)
    if ax is not None:
        g, kk = ax
        area = _thecal_area(g, kk, frame)
        res["dural_sac_area_mm2"] = _m(
            "dural_sac_area_mm2",
            area,
            "mm2",
            level,
            g,
            kk,
            pos,
            "thecal sac area, axial slice nearest the disc centre",
        )
    return {k_: v for k_, v in res.items()}


def _slip_percent(up: dict[str, float], lo: dict[str, float]) -> float | None:
    """Positive when the upper body sits anterior to the lower (anterolisthesis)."""
    length = lo["post_hi"] - lo["ant_hi"]
    if not np.isfinite(length) or length <= 5:
        return None
    return float((lo["post_hi"] - up["post_lo"]) / length * 100.0)


def _herniation(
    res: dict[str, Measurement],
    grid: Grid,
    level: str,
    frame: Frame,
    up: dict[str, float],
    lo: dict[str, float],
    add,
) -> None:  # type: ignore[no-untyped-def]
    """Posterior extension per sagittal slice beyond the line of the posterior walls."""
    lab = grid.labels
    line = (up["post_lo"] + lo["post_hi"]) / 2
    ext_by_lat: list[tuple[float, float]] = []
    for kk in range(lab.shape[0]):
        m = lab[kk] == L.disc_label(level)
        if m.sum() < 3:
            continue
        c = _slice_coords(grid, kk, m, frame)
        ext_by_lat.append((float(np.median(c[:, 0])), float(c[:, 1].max() - line)))
    if not ext_by_lat:
        return
    lats = np.array([p[0] for p in ext_by_lat])
    exts = np.array([p[1] for p in ext_by_lat])
    step = grid.series.spacing[0]
    best = int(np.argmax(exts))
    add(
        "posterior_extension_mm",
        max(float(exts[best]), 0.0),
        "mm",
        method="max over sagittal slices of disc reach beyond the posterior wall line",
    )
    over = exts >= grading.rules()["herniation"]["min_extension_mm"]
    base = float(over.sum() * step)
    add("herniation_base_mm", base, "mm", method="lateral width where extension >= minimum")
    width = float((len(exts)) * step)
    circ = 180.0 * base / width if width > 0 else 0.0  # posterior half-rim = 180 degrees
    add("herniation_circumference_deg", circ, "deg", method="base width as share of the rim")
    add("herniation_lateral_mm", float(lats[best]), "mm", method="lateral position, + = left")


def _axial_for(axials: list[Grid | None], frame: Frame) -> tuple[Grid, int] | None:
    best: tuple[float, Grid, int] | None = None
    for g in axials:
        if g is None:
            continue
        kf = g.series.lps_to_index(frame.origin)
        kk = round(float(kf[0]))
        if not (0 <= kk < g.labels.shape[0]):
            continue
        dist = abs(kf[0] - kk) * g.series.spacing[0]
        if best is None or dist < best[0]:
            best = (dist, g, kk)
    return (best[1], best[2]) if best is not None else None


def _thecal_area(g: Grid, k: int, frame: Frame) -> float | None:
    mask = np.isin(g.labels[k], THECAL)
    if mask.sum() < 3:
        return None
    comp, n = ndimage.label(mask)
    if n > 1:  # the sac is the component nearest the level's centre line
        c = g.series.lps_to_index(frame.origin)
        sizes = np.bincount(comp.ravel())
        sizes[0] = 0
        mask = comp == int(np.argmax(sizes))
        del c
    return float(mask.sum() * g.pixel_area)


def _add_relative(out: dict[str, dict[str, Measurement]]) -> None:
    """Canal AP and area relative to the study's own normal levels."""
    for name, grade_fn in (
        ("canal_ap_mm", grading.canal_grade_from_ap),
        ("dural_sac_area_mm2", grading.canal_grade),
    ):
        vals = {lv: m[name].value for lv, m in out.items() if name in m and m[name].value}
        normal = [v for v in vals.values() if grade_fn(v) == "none"]  # type: ignore[arg-type]
        if not normal:
            continue
        ref = float(np.median(normal))
        for lv, v in vals.items():
            src = out[lv][name]
            out[lv][name.rsplit("_", 1)[0] + "_relative"] = src.model_copy(
                update={
                    "name": name.rsplit("_", 1)[0] + "_relative",
                    "value": round(v / ref, 4),  # type: ignore[operator]
                    "unit": "ratio",
                    "method": "over the median of the study's normal levels",
                }
            )


def central_heights_mm(
    labels: np.ndarray,
    affine: np.ndarray,
    values: list[int],
    lateral_half_mm: float = 3.0,
    ap_fraction: float = 0.4,
) -> dict[int, float]:
    """Mid-sagittal central height of each structure (vertebral body or disc) in a 3-D label map.

    The spine axis at a structure runs between its neighbours' centroids (the structures in
    `values`, ordered along the column); the height is the structure's volume inside a slab of
    +-`lateral_half_mm` about its centre and the central `ap_fraction` of its AP depth, divided by
    that slab's cross-section: the mean central height, unbiased by the voxel grid's tilt.
    """
    from reporter.anatomy.naming import centroids, spine_axis

    cents = {v: c for v, (c, _) in centroids(labels, affine).items() if v in values}
    if not cents:
        return {}
    axis = spine_axis(list(cents.values()))
    order = sorted(cents, key=lambda v: -float(cents[v] @ axis))
    voxel_volume = abs(float(np.linalg.det(affine[:3, :3])))
    out: dict[int, float] = {}
    for n, v in enumerate(order):
        nb = [cents[w] for w in order[max(n - 1, 0) : n + 2]]
        u = nb[0] - nb[-1] if len(nb) > 1 else axis
        u = u / np.linalg.norm(u)
        lat = np.array([1.0, 0.0, 0.0]) - u[0] * u  # left-right, orthogonal to the axis
        lat /= np.linalg.norm(lat)
        a = np.cross(u, lat)
        idx = np.argwhere(labels == v)
        pts = idx @ affine[:3, :3].T + affine[:3, 3] - cents[v]
        ca, cl = pts @ a, pts @ lat
        a0, a1 = np.percentile(ca, [1, 99])
        half_ap = ap_fraction * (a1 - a0) / 2
        sel = (np.abs(cl) <= lateral_half_mm) & (np.abs(ca - (a0 + a1) / 2) <= half_ap)
        if sel.sum() == 0:
            continue
        out[v] = float(sel.sum() * voxel_volume / (2 * lateral_half_mm * 2 * half_ap))
    return out
