"""Vertebral bodies and discs on the mid-sagittal slice: body outlines, disc height and its
expected value, disc / CSF T2 signal (with the receive-coil slope taken out)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from reporter.contracts import labels as L
from reporter.contracts.study import Series
from reporter.grounding import grading
from reporter.grounding.measures.frame import Frame, Grid


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


def body_outline(grid: Grid, name: str, frame: Frame, k: int) -> Body | None:
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


def disc_height(grid: Grid, level: str, frame: Frame, k: int, bodies: list[Body]) -> float | None:
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


def _erode2d(mask2d: np.ndarray) -> np.ndarray:
    return ndimage.binary_erosion(mask2d, ndimage.generate_binary_structure(2, 1))


def disc_csf_ratio(t2: Series, grid: Grid, level: str, frame: Frame, k: int) -> float | None:
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
