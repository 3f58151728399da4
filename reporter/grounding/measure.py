"""Measurements per disc level, from the label map and the images of the same study.

Every number is taken in a local frame of the level: `u` is the disc's normal pointing
cranially, `a` runs posteriorly in the mid-sagittal plane, `l` to the patient's left (LPS +x),
origin at the disc centroid. Sagittal measurements use the mid-sagittal slice (through the
thecal sac's centre at the level); cross-sections use the axial slice nearest the disc centre.

Definitions (the phantom generator measures its ground truth from the drawn geometry with the
same definitions, reporter/synth/groundtruth.py; thresholds in rules.json):
- dural_sac_area_mm2: thecal sac (canal + cord) area on the axial slice nearest the disc centre;
  canal_ap_mm: its AP extent on the mid-sagittal slice at the disc's mid-height;
  *_relative: the level's value over the median of the study's own normal levels;
- disc_height_mm: disc height at its AP centre (mid-sagittal); disc_height_index: that over the
  expected height, `expected_height_to_body_depth[level]` x the mean AP depth of the two bodies;
- disc_csf_t2_ratio: median T2 signal of the central disc (nucleus) over that of CSF nearby;
- modic_t{1,2}_ratio_{upper,lower}: median signal of the marrow 1.5-2.8 mm from the endplate
  (past the cortex, inside the thinnest Modic band) over the body's central marrow;
  upper = inferior endplate of the vertebra above, lower = superior endplate of the one below;
- slip_percent: offset of the upper body's posterior-inferior corner from the lower body's
  posterior-superior corner along the lower body's AP axis, in % of the lower body's AP depth
  (positive = anterolisthesis; Meyerding);
- posterior_extension_mm: the largest radial reach of the disc beyond the vertebral outline
  (per sagittal slice, the disc's posterior edge against the bodies' posterior edges on the
  same slice); herniation_base_mm: rim length where the reach is at least half the largest;
  herniation_circumference_deg: rim angle where it reaches the minimum extension;
  herniation_lateral_mm: lateral position of the largest reach (+ = left);
- foraminal_fat_{cranial,caudal,anterior,posterior}_{side}: perineural fat thickness around the
  exiting root in each Lee sector over the thickness of an unnarrowed foramen; root_area_ratio:
  root cross-section over the study's median root (expected);
- lateral_recess_depth_mm_{side}: free AP run (no bone, ligament or disc) behind the disc at
  2 mm inside the bony canal's lateral wall, on the axial slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from reporter.anatomy.importers import resample_nearest, stack_key
from reporter.contracts import labels as L
from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import split_level
from reporter.contracts.study import Series, Study
from reporter.contracts.verdicts import Measurement, ReadOn, Unit
from reporter.grounding import grading

THECAL = (L.CANAL, L.CORD)
# Labels the lateral recess may contain (free space): epidural fat (unlabelled), sac, roots.
FREE = (L.BACKGROUND, L.CANAL, L.CORD, L.ROOT_LEFT, L.ROOT_RIGHT, L.FORAMEN_LEFT, L.FORAMEN_RIGHT)
MODIC_BAND_MM = (1.5, 2.8)
SECTORS = ("cranial", "caudal", "anterior", "posterior")
# Perineural fat of an unnarrowed foramen (mm) in the cranial, anterior and posterior sectors;
# the caudal sector's expected fat is the room between the root and the lower body.
NORMAL_FAT_MM = {"cranial": 2.6, "anterior": 2.6, "posterior": 3.0}
EXPECTED_ROOT_RADIUS_MM = 2.8


@dataclass
class Frame:
    origin: np.ndarray  # LPS mm, disc centroid
    u: np.ndarray  # cranial (disc normal)
    a: np.ndarray  # posterior
    lat: np.ndarray  # left

    def coords(self, lps: np.ndarray) -> np.ndarray:
        """(n, 3) LPS -> (n, 3) (l, a, u) in mm relative to the origin."""
        d = lps - self.origin
        return np.stack([d @ self.lat, d @ self.a, d @ self.u], axis=1)

    def lps(self, lat: np.ndarray, a: np.ndarray, u: np.ndarray) -> np.ndarray:
        return (
            self.origin
            + np.asarray(lat)[..., None] * self.lat
            + np.asarray(a)[..., None] * self.a
            + np.asarray(u)[..., None] * self.u
        )


@dataclass
class Grid:
    """A label map on one series' grid."""

    series: Series
    labels: np.ndarray

    @property
    def affine(self) -> np.ndarray:
        return self.series.affine

    @property
    def pixel_area(self) -> float:
        sp = self.series.spacing
        return sp[1] * sp[2]

    def slice_coords(self, k: int, mask2d: np.ndarray, frame: Frame) -> np.ndarray:
        jj, ii = np.nonzero(mask2d)
        idx = np.stack([np.full_like(jj, k), jj, ii], 1)
        return frame.coords(idx @ self.affine[:3, :3].T + self.affine[:3, 3])

    def sample(self, lps: np.ndarray, k: int | None = None) -> np.ndarray:
        """Labels at LPS points by nearest neighbour (0 outside); `k` pins the slice."""
        idx = self.series.lps_to_index(lps)
        # A point that is not finite (from an empty mask's centroid) samples as outside.
        r = np.rint(np.where(np.isfinite(idx), idx, -1.0)).astype(int)
        if k is not None:
            r[..., 0] = k
        shape = np.array(self.labels.shape)
        ok = np.all((r >= 0) & (r < shape), axis=-1)
        out = np.zeros(r.shape[:-1], self.labels.dtype)
        out[ok] = self.labels[r[ok][:, 0], r[ok][:, 1], r[ok][:, 2]]
        return out


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


def _minor_axis(pts: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """The least principal axis of a structure, taken in the slice plane (orthogonal to the
    series `normal`). Within the plane because the frame's AP axis is cross(normal, u): a thin
    slab (one slice, a 2-D image) has its least variance along the normal itself, which would
    make that cross product zero and every measurement NaN."""
    centred = pts - pts.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    if abs(float(vt[2] @ normal)) < 0.5:  # a volume: the 3-D answer, unchanged
        return vt[2]
    e1 = np.cross(normal, [1.0, 0.0, 0.0] if abs(normal[0]) < 0.9 else [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(normal, e1)
    plane = np.stack([e1, e2])  # (2, 3) in-plane basis
    _, _, vt2 = np.linalg.svd(centred @ plane.T, full_matrices=False)
    return vt2[1] @ plane


def _frame(grid: Grid, level: str) -> Frame | None:
    """The level's frame. `u` is the mean height axis of the adjacent lumbar-type bodies (a
    body is lower than it is deep or wide, so height is its least principal axis); a slipped
    or wedged disc is too sheared for its own axes to be trusted. The sacrum does not count."""
    disc = grid.labels == L.disc_label(level)
    if disc.sum() < 20:
        return None
    to_lps = grid.affine[:3, :3].T
    pts = np.argwhere(disc) @ to_lps + grid.affine[:3, 3]
    origin = pts.mean(0)
    upper, lower = split_level(level)
    cu, cl = _centroid(grid, L.vertebra_label(upper)), _centroid(grid, L.vertebra_label(lower))
    normal = grid.series.normal
    axes = []
    for name in (upper, lower):
        if name == "S1":
            continue
        idx = np.argwhere(grid.labels == L.vertebra_label(name))
        if len(idx) >= 200:
            axes.append(_minor_axis(idx @ to_lps + grid.affine[:3, 3], normal))
    if not axes:
        axes = [_minor_axis(pts, normal)]
    ref = axes[0]
    u = np.sum([ax if ax @ ref >= 0 else -ax for ax in axes], axis=0)
    u /= np.linalg.norm(u)
    if cu is not None and cl is not None:
        if u @ (cu - cl) < 0:
            u = -u
    elif u[2] < 0:
        u = -u
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
    if len(idx) < 10:
        return None
    return idx.mean(0) @ grid.affine[:3, :3].T + grid.affine[:3, 3]


def _slice_at(grid: Grid, lps: np.ndarray) -> int:
    k = round(float(grid.series.lps_to_index(lps)[0]))
    return int(np.clip(k, 0, grid.labels.shape[0] - 1))


def _mid_slice(grid: Grid, frame: Frame) -> int:
    """Sagittal slice through the thecal sac's centre near the level (else the disc centre)."""
    idx = np.argwhere(np.isin(grid.labels, THECAL))
    if len(idx):
        pts = idx @ grid.affine[:3, :3].T + grid.affine[:3, 3]
        near = np.abs((pts - frame.origin) @ frame.u) < 15.0
        if near.sum() > 10:
            return _slice_at(grid, pts[near].mean(0))
    return _slice_at(grid, frame.origin)


def _m(
    name: str,
    value: float | None,
    unit: str,
    level: str,
    grid: Grid | None,
    k: int | None,
    pos: np.ndarray | None,
    method: str,
    read_on: ReadOn | None = None,
) -> Measurement:
    """One measurement; `read_on` defaults to the plane of the grid it was taken on."""
    ok = value is not None and bool(np.isfinite(value))
    return Measurement(
        name=name,
        value=round(float(value), 4) if ok else None,  # type: ignore[arg-type]
        unit=unit,
        level=level,
        series_uid=grid.series.series_uid if grid else None,
        stack_index=grid.series.stack_index if grid else 0,
        slice_index=k,
        position_lps=[round(float(x), 2) for x in pos] if pos is not None else None,
        read_on=read_on or (grid.series.plane if grid else None),
        method=method,
    )


# --- bodies and discs on the mid-sagittal slice ---------------------------------------------------
@dataclass
class Body:
    """A vertebral body on one slice, described at the endplate that faces the disc."""

    depth: float  # endplate length, rim to rim (mm): the body's AP depth
    height: float
    u_lo: float
    u_hi: float
    a_centre: float
    e: np.ndarray  # unit vector along the facing endplate, pointing posterior, in (a, u)
    post_corner: float  # projection of the posterior endplate corner on e
    face: np.ndarray  # (n, 2) (a, u) of the pixels within 2.5 mm of the facing endplate


def _run_through_centre(inside: np.ndarray, step: float) -> float | None:
    """Length of the run of True samples through the middle sample (or the True sample nearest
    it), `step` mm apart; nearest-neighbour boundaries fall half way between pixel centres."""
    if not inside.any():
        return None
    centre = inside.size // 2
    if not inside[centre]:  # start from the nearest sample inside
        hits = np.nonzero(inside)[0]
        centre = int(hits[np.argmin(np.abs(hits - centre))])
    lo = centre
    while lo > 0 and inside[lo - 1]:
        lo -= 1
    hi = centre
    while hi < inside.size - 1 and inside[hi + 1]:
        hi += 1
    return (hi - lo + 1) * step


def _mean_run(
    grid: Grid,
    k: int,
    frame: Frame,
    values: tuple[int, ...],
    a: float,
    u: float,
    along: str,
    half: float = 40.0,
) -> float | None:
    """Length of the run of `values` through (a, u) on slice k along `along` ('a' or 'u'),
    sampled every 0.05 mm, averaged over five parallel lines 0.5 mm apart (less pixel
    quantization)."""
    t = np.arange(-half, half, 0.05)
    runs = []
    for off in (-1.0, -0.5, 0.0, 0.5, 1.0):
        a0, u0 = a + (off if along == "u" else 0.0), u + (off if along == "a" else 0.0)
        aa = a0 + t if along == "a" else np.full(t.size, a0)
        uu = u0 + t if along == "u" else np.full(t.size, u0)
        inside = np.isin(grid.sample(frame.lps(np.zeros(t.size), aa, uu), k=k), values)
        r = _run_through_centre(inside, 0.05)
        if r is not None:
            runs.append(r)
    return float(np.mean(runs)) if runs else None


def _body(grid: Grid, name: str, frame: Frame, k: int) -> Body | None:
    """A vertebral body on slice k. Its facing endplate comes from its anterior and posterior
    rims (the concave centre is skipped), so slipped and wedged levels and the tapering sacrum
    are described along the body's own endplate, not the level's frame."""
    value = L.vertebra_label(name)
    mask = grid.labels[k] == value
    if mask.sum() < 30:
        return None
    c = grid.slice_coords(k, mask, frame)
    above = float(np.median(c[:, 2])) > 0
    u_lo, u_hi = float(c[:, 2].min()), float(c[:, 2].max())
    near = c[c[:, 2] < u_lo + 15.0] if above else c[c[:, 2] > u_hi - 15.0]
    if len(near) < 20:
        return None
    a0, a1 = np.percentile(near[:, 1], [1, 99])
    span = a1 - a0
    if span < 10:
        return None
    rims = []
    for lo_f, hi_f in ((0.03, 0.15), (0.85, 0.97)):  # anterior, posterior rim (off the corners)
        sel = (near[:, 1] >= a0 + lo_f * span) & (near[:, 1] <= a0 + hi_f * span)
        if not sel.any():
            return None
        edge = np.percentile(near[sel, 2], 2 if above else 98)
        rims.append((float(np.median(near[sel, 1])), float(edge)))
    e = np.array([rims[1][0] - rims[0][0], rims[1][1] - rims[0][1]])
    e /= np.linalg.norm(e)
    n_out = np.array([-e[1], e[0]])  # toward the disc for a body below it
    if above:
        n_out = -n_out
    ac = c[:, [1, 2]]
    level = float(np.percentile(ac @ n_out, 99))
    face = ac[(ac @ n_out) >= level - 3.0]
    proj = face @ e
    depth = float(proj.max() - proj.min())
    centre = float(np.mean(rims, axis=0)[0])
    height = _mean_run(grid, k, frame, (value,), centre, (u_lo + u_hi) / 2, "u", half=60.0)
    if height is None or depth < 10:
        return None
    return Body(depth, height, u_lo, u_hi, centre, e, float(proj.max()), face)


def expected_disc_height(level: str, depths: list[float]) -> float | None:
    table = grading.rules()["disc_narrowing"]["expected_height_to_body_depth"]
    if level not in table or not depths:
        return None
    return float(table[level]) * float(np.mean(depths))


def _disc_height(grid: Grid, level: str, frame: Frame, k: int, bodies: list[Body]) -> float | None:
    mask = grid.labels[k] == L.disc_label(level)
    if mask.sum() < 10:
        return None
    if bodies:
        centre = float(np.mean([b.a_centre for b in bodies]))
    else:
        c = grid.slice_coords(k, mask, frame)
        a0, a1 = np.percentile(c[:, 1], [1, 99])
        centre = float((a0 + a1) / 2)
    return _mean_run(grid, k, frame, (L.disc_label(level),), centre, 0.0, "u", half=15.0)


def _canal_ap(grid: Grid, frame: Frame, k: int) -> float | None:
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


def _erode2d(mask2d: np.ndarray) -> np.ndarray:
    return ndimage.binary_erosion(mask2d, ndimage.generate_binary_structure(2, 1))


def _disc_csf_ratio(t2: Series, grid: Grid, level: str, frame: Frame, k: int) -> float | None:
    """Nucleus over CSF on T2. The nucleus is the disc's central core (its brightest part, so
    the upper quartile); the receive coil's AP shading between the disc and the canal is
    estimated from the vertebral marrow of the same slices and divided out."""
    n = grid.labels.shape[0]
    disc_vals: list[np.ndarray] = []
    csf: list[tuple[np.ndarray, np.ndarray]] = []
    disc_a: list[float] = []
    for kk in range(max(k - 1, 0), min(k + 2, n)):
        dm = _erode2d(grid.labels[kk] == L.disc_label(level))
        if dm.sum() > 10:
            c = grid.slice_coords(kk, dm, frame)
            a0, a1 = np.percentile(c[:, 1], [2, 98])
            u0, u1 = np.percentile(c[:, 2], [2, 98])
            central = (np.abs(c[:, 1] - (a0 + a1) / 2) <= 0.1 * (a1 - a0)) & (
                np.abs(c[:, 2] - (u0 + u1) / 2) <= 0.15 * (u1 - u0) + 0.5
            )
            jj, ii = np.nonzero(dm)
            disc_vals.append(t2.pixels[kk, jj[central], ii[central]])
            disc_a.append(float((a0 + a1) / 2))
        cm = _erode2d(grid.labels[kk] == L.CANAL)
        if cm.any():
            c = grid.slice_coords(kk, cm, frame)
            near = np.abs(c[:, 2]) <= 25.0
            jj, ii = np.nonzero(cm)
            csf.append((t2.pixels[kk, jj[near], ii[near]], c[near, 1]))
    d = np.concatenate(disc_vals) if disc_vals else np.array([])
    s = np.concatenate([v for v, _ in csf]) if csf else np.array([])
    if d.size < 5 or s.size < 5:
        return None
    csf_signal = float(np.median(s))
    if csf_signal <= 0:
        return None
    ratio = float(np.percentile(d, 75)) / csf_signal
    slope = _coil_slope(t2, grid, frame, k)
    if slope is not None and disc_a:
        csf_a = float(np.median(np.concatenate([a for _, a in csf])))
        ratio *= float(np.exp(slope * (csf_a - float(np.mean(disc_a)))))
    return ratio


def _coil_slope(series: Series, grid: Grid, frame: Frame, k: int) -> float | None:
    """d log(signal) / d a (per mm, posterior positive) of vertebral marrow near the level:
    the receive coil's shading, which a homogeneous tissue shows as an AP gradient."""
    slopes = []
    for kk in range(max(k - 1, 0), min(k + 2, grid.labels.shape[0])):
        lab = grid.labels[kk]
        bodies = (lab >= L.VERTEBRA_BASE) & (lab < L.DISC_BASE)
        m = ndimage.binary_erosion(bodies, iterations=3)
        if m.sum() < 50:
            continue
        c = grid.slice_coords(kk, m, frame)
        near = np.abs(c[:, 2]) < 40.0
        if near.sum() < 50:
            continue
        jj, ii = np.nonzero(m)
        vals = series.pixels[kk, jj[near], ii[near]]
        a = c[near, 1]
        ant, post = a < np.percentile(a, 30), a > np.percentile(a, 70)
        if ant.sum() < 10 or post.sum() < 10:
            continue
        sa, sp_ = float(np.median(vals[ant])), float(np.median(vals[post]))
        da = float(np.median(a[post]) - np.median(a[ant]))
        if sa > 0 and sp_ > 0 and da > 5:
            slopes.append(np.log(sp_ / sa) / da)
    return float(np.median(slopes)) if slopes else None


def _modic_ratio(series: Series, grid: Grid, body: str, frame: Frame, side: str) -> float | None:
    """Endplate marrow band over central marrow on the body next to the disc. `side` 'upper':
    the body above the disc (its inferior endplate); 'lower': the body below (superior)."""
    k = _mid_slice(grid, frame)
    n = grid.labels.shape[0]
    sp = grid.series.spacing
    band: list[np.ndarray] = []
    core: list[np.ndarray] = []
    for kk in range(max(k - 1, 0), min(k + 2, n)):
        m = grid.labels[kk] == L.vertebra_label(body)
        if m.sum() < 50:
            continue
        dist = ndimage.distance_transform_edt(m, sampling=(sp[1], sp[2]))
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


def _slip_percent(up: Body, lo: Body) -> float | None:
    """Meyerding slip: the upper body's posterior-inferior corner against the lower body's
    posterior-superior corner, along the lower body's superior endplate, in % of its length."""
    corner_u = float((up.face @ lo.e).max())
    return 100.0 * (lo.post_corner - corner_u) / lo.depth


# --- herniation from the sagittal slices ----------------------------------------------------------
HERNIATION_UNITS: dict[str, Unit] = {
    "posterior_extension_mm": "mm",
    "herniation_base_mm": "mm",
    "herniation_circumference_deg": "deg",
    "herniation_broad_fraction": "ratio",
    "herniation_lateral_mm": "mm",
}


def _herniation(grid: Grid, level: str, frame: Frame, up: str, lo: str) -> dict[str, float]:
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


# --- foramina on the parasagittal slices ----------------------------------------------------------
def _foramen(
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


# --- axial measurements ---------------------------------------------------------------------------
def _axial_for(axials: list[Grid | None], frame: Frame) -> tuple[Grid, int] | None:
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


def _thecal_area(g: Grid, k: int, frame: Frame) -> float | None:
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


def _canal_half_width(g: Grid, k: int, frame: Frame, level: str) -> dict[str, float]:
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


def _recess_depths(
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


def _recess_depths_axial(
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


# --- the study ------------------------------------------------------------------------------------
# Why a measurement is not taken from a label map that cannot support it (the verdict quotes it).
NO_FLAVUM = (
    "not measured: the label map does not delineate the ligamentum flavum, the recess's "
    "posterior wall"
)
RESAMPLED_AXIAL = (
    "not measured: the axial label map is resampled from the sagittal segmentation, so the sac's "
    "width is quantized to the sagittal slice spacing"
)


def measure(study: Study, anatomy: Anatomy) -> dict[str, dict[str, Measurement]]:
    """Measurements at every level the anatomy names (levels outside the FOV are absent).

    Quantities the label map cannot support are kept with no value and the reason as their
    method, so the checker says why a claim is unverifiable: the lateral recess needs the
    ligamentum flavum (the built-in segmenter and SPIDER-style maps do not label it), and the
    dural sac area needs an axial segmentation (the built-in segmenter's axial maps are its
    sagittal map resampled)."""
    ref = _find_series(study, anatomy.reference_series_uid, anatomy.reference_stack_index)
    if ref is None or tuple(anatomy.labels.shape) != ref.shape:
        return {}
    grid = Grid(ref, anatomy.labels)
    has_flavum = bool(np.any(anatomy.labels == L.LIGAMENTUM_FLAVUM))
    native_axial = anatomy.source != "builtin_segmenter"
    t2 = ref if ref.role == "sag_t2" else study.get("sag_t2")
    t1 = study.get("sag_t1")
    grids = {
        "t1": (t1, _grid_for(t1, anatomy, ref)),
        "t2": (t2, grid if t2 is ref else _grid_for(t2, anatomy, ref)),
    }
    axials = [_grid_for(s, anatomy, ref) for s in study.all("ax_t2")]
    out: dict[str, dict[str, Measurement]] = {}
    frames: dict[str, Frame] = {}
    for level in anatomy.levels:
        frame = _frame(grid, level)
        if frame is not None:
            frames[level] = frame
            out[level] = _measure_level(level, frame, grid, grids, axials)
            _set_aside(out[level], has_flavum, native_axial)
    if has_flavum:
        _recess_without_axial(out, grid, frames)
    _add_relative(out)
    _area_from_ap(out)
    _root_ratios(out)
    return out


def _set_aside(m: dict[str, Measurement], has_flavum: bool, native_axial: bool) -> None:
    """Blank the measurements this label map cannot support, keeping the reason."""
    for name, src in list(m.items()):
        why = None
        if not has_flavum and name.startswith("lateral_recess_depth_mm_"):
            why = NO_FLAVUM
        elif not native_axial and name == "dural_sac_area_mm2":
            why = RESAMPLED_AXIAL
        if why is not None:
            m[name] = src.model_copy(update={"value": None, "method": why})
    if not has_flavum:
        for side in ("left", "right"):
            name = f"lateral_recess_depth_mm_{side}"
            m.setdefault(name, Measurement(name=name, value=None, unit="mm", method=NO_FLAVUM))


def _recess_without_axial(
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
        depths = _recess_depths(grid, frame, level, upper, lower, {"left": hw, "right": hw})
        for side, depth in depths.items():
            name = f"lateral_recess_depth_mm_{side}"
            m[name] = _m(name, depth, "mm", level, grid, None, frame.origin,
                         "free AP run behind the disc 2 mm inside the canal wall, sagittal slices "
                         "beside the line (wall width from the study's axial levels)")  # fmt: skip


def _area_from_ap(out: dict[str, dict[str, Measurement]]) -> None:
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


def _measure_level(
    level: str,
    frame: Frame,
    grid: Grid,
    grids: dict[str, tuple[Series | None, Grid | None]],
    axials: list[Grid | None],
) -> dict[str, Measurement]:
    upper, lower = split_level(level)
    k = _mid_slice(grid, frame)
    pos = frame.origin
    res: dict[str, Measurement] = {}

    def add(name: str, value: float | None, unit: Unit, method: str, g: Grid | None = grid,
            kk: int | None = k, read_on: ReadOn | None = None) -> None:  # fmt: skip
        res[name] = _m(name, value, unit, level, g, kk, pos, method, read_on)

    up, lo = _body(grid, upper, frame, k), _body(grid, lower, frame, k)
    bodies = [b for b in (up, lo) if b is not None]
    height = _disc_height(grid, level, frame, k, bodies)
    add("disc_height_mm", height, "mm", "disc height at its AP centre, mid-sagittal")
    expected = expected_disc_height(level, [b.depth for b in bodies])
    if height is not None and expected:
        add("disc_height_index", height / expected, "ratio",
            "disc height / (expected height-to-depth ratio x mean body depth)")  # fmt: skip
    add("canal_ap_mm", _canal_ap(grid, frame, k), "mm", "thecal sac AP at the disc, mid-sagittal")
    t2, g2 = grids["t2"]
    if t2 is not None and g2 is not None:
        k2 = _mid_slice(g2, frame)
        add("disc_csf_t2_ratio", _disc_csf_ratio(t2, g2, level, frame, k2), "ratio",
            "median nucleus / median CSF at the level, T2", g=g2, kk=k2)  # fmt: skip
    for tag, (series, g) in grids.items():
        if series is None or g is None:
            continue
        for side, body in (("upper", upper), ("lower", lower)):
            add(f"modic_{tag}_ratio_{side}", _modic_ratio(series, g, body, frame, side),
                "ratio", f"marrow {MODIC_BAND_MM[0]}-{MODIC_BAND_MM[1]} mm from the endplate / "
                "central marrow", g=g, kk=_mid_slice(g, frame))  # fmt: skip
    if up is not None and lo is not None:
        add("slip_percent", _slip_percent(up, lo), "%",
            "posterior corners along the lower body's AP axis, % of its depth")  # fmt: skip
        for name, value in _herniation(grid, level, frame, upper, lower).items():
            add(name, value, HERNIATION_UNITS[name],
                "sagittal slices: disc edge beyond the bodies' edges", kk=None)  # fmt: skip
    disc_half = 0.5 * (height or 8.0)
    for side in ("left", "right"):
        f = _foramen(grid, frame, side, disc_half, up, lower)
        fk = int(f["slice"]) if "slice" in f else None
        for sector in SECTORS:
            if sector in f:
                add(f"foraminal_fat_{sector}_{side}", f[sector], "ratio",
                    "fat thickness around the exiting root / unnarrowed", kk=fk)  # fmt: skip
        if "root_area_mm2" in f:
            add(f"root_area_mm2_{side}", f["root_area_mm2"], "mm2", "root cross-section", kk=fk)
    ax = _axial_for(axials, frame)
    half_width: dict[str, float] = {}
    if ax is not None:
        g, kk = ax
        add("dural_sac_area_mm2", _thecal_area(g, kk, frame), "mm2",
            "thecal sac area, axial slice nearest the disc centre", g=g, kk=kk)  # fmt: skip
        half_width = _canal_half_width(g, kk, frame, level)
    for side, hw in half_width.items():
        add(f"canal_half_width_mm_{side}", hw, "mm", "bony canal wall from the axial", kk=None)
    if half_width and ax is not None:
        depths = _recess_depths(grid, frame, level, upper, lower, half_width)
        axial = _recess_depths_axial(ax[0], frame, level, upper, lower, half_width)
        for side in ("left", "right"):
            # The axial block sees the line itself (in the disc plane); sagittal slices sit a
            # few mm beside it and are the fallback (on phantoms: mean error 0.6 vs 1.2 mm).
            vals = [d[side] for d in (axial, depths) if side in d]
            if not vals:
                continue
            depth = float(vals[0])
            on_axial = side in axial
            add(f"lateral_recess_depth_mm_{side}", depth, "mm",
                "free AP run behind the disc 2 mm inside the canal wall, "
                + ("axial block" if on_axial else "sagittal slices beside the line"),
                kk=None, read_on="axial" if on_axial else "sagittal")  # fmt: skip
    return res


def _add_relative(out: dict[str, dict[str, Measurement]]) -> None:
    """Canal AP and area relative to the study's own normal levels."""
    for name, rel, grade_fn in (
        ("canal_ap_mm", "canal_ap_relative", grading.canal_grade_from_ap),
        ("dural_sac_area_mm2", "dural_sac_area_relative", grading.canal_grade),
    ):
        vals = {lv: m[name].value for lv, m in out.items() if name in m and m[name].value}
        normal = [v for v in vals.values() if grade_fn(v) == "none"]  # type: ignore[arg-type]
        if not normal:
            continue
        ref = float(np.median(normal))
        for lv, v in vals.items():
            out[lv][rel] = out[lv][name].model_copy(
                update={
                    "name": rel,
                    "value": round(v / ref, 4),
                    "unit": "ratio",  # type: ignore[operator]
                    "method": "over the median of the study's normal levels",
                }
            )


def _root_ratios(out: dict[str, dict[str, Measurement]]) -> None:
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
