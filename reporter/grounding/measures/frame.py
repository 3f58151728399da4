"""The frame of a disc level, the label-map grids of a study, and the one constructor of a
`Measurement`: what every measurement family shares."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reporter.anatomy.importers import resample_nearest, stack_key
from reporter.contracts import labels as L
from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import split_level
from reporter.contracts.study import Series, Study
from reporter.contracts.verdicts import Measurement, ReadOn
from reporter.masks import voxels

THECAL = (L.CANAL, L.CORD)
# Labels the lateral recess may contain (free space): epidural fat (unlabelled), sac, roots.
FREE = (L.BACKGROUND, L.CANAL, L.CORD, L.ROOT_LEFT, L.ROOT_RIGHT, L.FORAMEN_LEFT, L.FORAMEN_RIGHT)


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
    # Voxel indices per label value and the thecal sac's points, found once per grid: every
    # level asks for them again (the labels are not changed once a grid is made).
    _voxels: dict[int, np.ndarray] = field(default_factory=dict, init=False, repr=False)
    _thecal: np.ndarray | None = field(default=None, init=False, repr=False)

    @property
    def affine(self) -> np.ndarray:
        return self.series.affine

    def voxels(self, value: int) -> np.ndarray:
        """(n, 3) indices of the voxels labelled `value` (np.argwhere order)."""
        idx = self._voxels.get(value)
        if idx is None:
            idx = self._voxels[value] = voxels(self.labels == value)
        return idx

    def thecal_points(self) -> np.ndarray:
        """(n, 3) LPS of the thecal sac's voxels (canal and cord)."""
        if self._thecal is None:
            idx = voxels(np.isin(self.labels, THECAL))
            self._thecal = idx @ self.affine[:3, :3].T + self.affine[:3, 3]
        return self._thecal

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


def find_series(study: Study, uid: str, stack: int) -> Series | None:
    return next((s for s in study.series if s.series_uid == uid and s.stack_index == stack), None)


def grid_for(series: Series | None, anatomy: Anatomy, ref: Series) -> Grid | None:
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


def level_frame(grid: Grid, level: str) -> Frame | None:
    """The level's frame. `u` is the mean height axis of the adjacent lumbar-type bodies (a
    body is lower than it is deep or wide, so height is its least principal axis); a slipped
    or wedged disc is too sheared for its own axes to be trusted. The sacrum does not count."""
    disc = grid.labels == L.disc_label(level)
    if disc.sum() < 20:
        return None
    to_lps = grid.affine[:3, :3].T
    pts = voxels(disc) @ to_lps + grid.affine[:3, 3]
    origin = pts.mean(0)
    upper, lower = split_level(level)
    cu, cl = _centroid(grid, L.vertebra_label(upper)), _centroid(grid, L.vertebra_label(lower))
    normal = grid.series.normal
    axes = []
    for name in (upper, lower):
        if name == "S1":
            continue
        idx = grid.voxels(L.vertebra_label(name))
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
    idx = grid.voxels(value)
    if len(idx) < 10:
        return None
    return idx.mean(0) @ grid.affine[:3, :3].T + grid.affine[:3, 3]


def _slice_at(grid: Grid, lps: np.ndarray) -> int:
    k = round(float(grid.series.lps_to_index(lps)[0]))
    return int(np.clip(k, 0, grid.labels.shape[0] - 1))


def mid_slice(grid: Grid, frame: Frame) -> int:
    """Sagittal slice through the thecal sac's centre near the level (else the disc centre)."""
    pts = grid.thecal_points()
    if len(pts):
        near = np.abs((pts - frame.origin) @ frame.u) < 15.0
        if near.sum() > 10:
            return _slice_at(grid, pts[near].mean(0))
    return _slice_at(grid, frame.origin)


def make_measurement(
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
