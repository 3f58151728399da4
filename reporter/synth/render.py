"""Series grids and image formation: sampling tissues at voxel centres (with through-plane
supersampling for partial volume), spin-echo signal, coil bias, Rician noise and artefacts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reporter.synth import tissues as tx
from reporter.synth.rasterize import F32, project, sample
from reporter.synth.spine import SpineModel

CHUNK = 350_000  # points per rasterization call (bounds memory)


@dataclass
class Grid:
    affine: np.ndarray  # (4, 4): (k, j, i, 1) -> LPS mm
    shape: tuple[int, int, int]
    thickness: float

    def centres(self, dk: float = 0.0, step: int = 1) -> np.ndarray:
        """(nk, nj', ni', 3) voxel centres in LPS; `step` > 1 takes every step-th row/column
        (plus the last) for coarse evaluation of smooth fields."""
        nk, nj, ni = self.shape
        a = self.affine.astype(F32)
        k = np.arange(nk, dtype=F32) + F32(dk)
        j = _coarse(nj, step).astype(F32)
        i = _coarse(ni, step).astype(F32)
        return (
            a[:3, 3]
            + k[:, None, None, None] * a[:3, 0]
            + j[None, :, None, None] * a[:3, 1]
            + i[None, None, :, None] * a[:3, 2]
        )


def _coarse(n: int, step: int) -> np.ndarray:
    idx = np.arange(0, n, step)
    return idx if idx[-1] == n - 1 else np.append(idx, n - 1)


def _weights(n: int, step: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos = _coarse(n, step)
    hi = np.clip(np.searchsorted(pos, x, side="right"), 1, len(pos) - 1)
    lo = hi - 1
    return lo, hi, ((x - pos[lo]) / (pos[hi] - pos[lo])).astype(F32)


def _bilinear_at(coarse: np.ndarray, nj: int, ni: int, step: int, flat: np.ndarray) -> np.ndarray:
    """Fields (c, nk, nj', ni') on the coarse grid, interpolated at flat voxel indices only."""
    k, rem = np.divmod(flat, nj * ni)
    j, i = np.divmod(rem, ni)
    j0, j1, wj = _weights(nj, step, j)
    i0, i1, wi = _weights(ni, step, i)
    a = coarse[:, k, j0, i0] * (1 - wi) + coarse[:, k, j0, i1] * wi
    b = coarse[:, k, j1, i0] * (1 - wi) + coarse[:, k, j1, i1] * wi
    return a * (1 - wj) + b * wj


def _upsample(
    coarse: np.ndarray, n: int, step: int, axis: int, x: np.ndarray | None = None
) -> np.ndarray:
    """Linear interpolation of a field sampled at _coarse(n, step) back to positions `x`
    (default: all n)."""
    pos = _coarse(n, step)
    x = np.arange(n) if x is None else x
    hi = np.clip(np.searchsorted(pos, x, side="right"), 1, len(pos) - 1)
    lo = hi - 1
    w = ((x - pos[lo]) / (pos[hi] - pos[lo])).astype(F32)
    shp = [1] * coarse.ndim
    shp[axis] = len(x)
    w = w.reshape(shp)
    a = np.take(coarse, lo, axis=axis)
    b = np.take(coarse, hi, axis=axis)
    b -= a
    b *= w
    a += b
    return a


def grid_from_frame(
    centre: np.ndarray,
    row_dir: np.ndarray,
    col_dir: np.ndarray,
    n_slices: int,
    spacing: float,
    matrix: int,
    fov: float,
    thickness: float,
) -> Grid:
    """A stack centred on `centre`; `row_dir` is the IOP row cosine (direction of increasing
    column index), `col_dir` the IOP column cosine; slices step along row x col."""
    row_dir = row_dir / np.linalg.norm(row_dir)
    col_dir = col_dir / np.linalg.norm(col_dir)
    normal = np.cross(row_dir, col_dir)
    px = fov / matrix
    origin = (
        centre
        - 0.5 * (n_slices - 1) * spacing * normal
        - 0.5 * (matrix - 1) * px * (row_dir + col_dir)
    )
    aff = np.eye(4)
    aff[:3, 0] = normal * spacing
    aff[:3, 1] = col_dir * px
    aff[:3, 2] = row_dir * px
    aff[:3, 3] = origin
    return Grid(aff, (n_slices, matrix, matrix), thickness)


@dataclass
class Sampling:
    label: np.ndarray  # (shape) int16 at the slice centre
    tissues: list[np.ndarray]  # per sub-slice, (N,) uint8
    nucleus: list[np.ndarray]  # per sub-slice, (N,) float32
    texture: np.ndarray | None = None  # (N,) float32 in about [-1, 1], smooth


# Texture amplitude per tissue (multiplicative): marrow heterogeneity, muscle fibre / fat
# marbling, bowel content; calm fluid and cortex.
TEXTURE_AMPLITUDE = {
    tx.MARROW: 0.08, tx.MUSCLE: 0.07, tx.VISCERA: 0.15, tx.SUBCUT_FAT: 0.04, tx.FAT: 0.05,
    tx.POST_BONE: 0.08, tx.ANNULUS: 0.05,
}  # fmt: skip


def _sample_all(m: SpineModel, s: np.ndarray, u: np.ndarray, v: np.ndarray, want_label: bool):
    n = s.size
    tis = np.empty(n, np.uint8)
    nuc = np.empty(n, F32)
    lab = np.empty(n, np.int16) if want_label else None
    for a in range(0, n, CHUNK):
        sm = sample(m, s[a : a + CHUNK], u[a : a + CHUNK], v[a : a + CHUNK])
        tis[a : a + CHUNK] = sm.tissue
        nuc[a : a + CHUNK] = sm.nucleus
        if lab is not None:
            lab[a : a + CHUNK] = sm.label
    return tis, nuc, lab


def _coarse_coords(m: SpineModel, g: Grid, dk: float, step: int) -> np.ndarray:
    """(3, nk, nj', ni'): s, u, v projected on the coarse lattice of the sub-slice at dk."""
    pts = g.centres(float(dk), step)
    cshape = pts.shape[:3]
    return np.stack([f.reshape(cshape) for f in project(m, pts.reshape(-1, 3))])


def _spine_coords(m: SpineModel, g: Grid, dk: float, step: int) -> tuple[np.ndarray, ...]:
    """(s, u, v) of every voxel of the sub-slice at offset dk, each (nk, nj, ni)."""
    _, nj, ni = g.shape
    suv = _upsample(_upsample(_coarse_coords(m, g, dk, step), nj, step, 2), ni, step, 3)
    return suv[0], suv[1], suv[2]


def _grow(mask: np.ndarray) -> np.ndarray:
    """Dilate by one pixel in-plane (4-neighbourhood)."""
    out = mask.copy()
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    out[:, :, 1:] |= mask[:, :, :-1]
    out[:, :, :-1] |= mask[:, :, 1:]
    return out


def rasterize_grid(m: SpineModel, g: Grid, n_sub: int = 3, step: int = 4) -> Sampling:
    """Tissues at `n_sub` positions across the slice thickness (partial volume) and the label map
    at the slice centre.

    Spine coordinates are smooth, so they are projected on every `step`-th row and column and
    interpolated linearly in between. The off-centre sub-slices are first sampled on every other
    row and column; wherever that coarse answer differs from the slice centre, or from its
    neighbours, or falls in a disc (graded nucleus), the voxel is sampled exactly. Elsewhere the
    sub-slice holds the same tissue across the 2 x 2 block, so nothing is lost."""
    if n_sub % 2 == 0:
        raise ValueError("Argument 'n_sub' must be odd so that a sample lies at the slice centre.")
    spacing = float(np.linalg.norm(g.affine[:3, 0]))
    offs = (np.arange(n_sub) - (n_sub - 1) / 2) * (g.thickness / n_sub) / spacing
    _nk, nj, ni = g.shape
    s, u, v = _spine_coords(m, g, 0.0, step)
    tis0, nuc0, lab = _sample_all(m, s.ravel(), u.ravel(), v.ravel(), True)
    assert lab is not None
    tex = None
    if len(m.waves):
        pts = g.centres(0.0, step)
        ph = pts.reshape(-1, 3) @ m.waves.T.astype(F32) + m.phases.astype(F32)
        tex = (np.sin(ph).sum(axis=1) / np.sqrt(len(m.phases))).reshape(pts.shape[:3])
        tex = _upsample(_upsample(tex, nj, step, 1), ni, step, 2).ravel()
    t0 = tis0.reshape(g.shape)
    graded = (nuc0 < 1.0).reshape(g.shape)
    tis_l, nuc_l = [], []
    for dk in offs:
        if abs(dk) < 1e-6:
            tis_l.append(tis0)
            nuc_l.append(nuc0)
            continue
        co = _coarse_coords(m, g, float(dk), step)
        half = _upsample(co, nj, step, 2, np.arange(0, nj, 2))
        cs, cu, cv = _upsample(half, ni, step, 3, np.arange(0, ni, 2))
        ct, _, _ = _sample_all(m, cs.ravel(), cu.ravel(), cv.ravel(), False)
        ct = ct.reshape(cs.shape)
        edge = np.zeros(ct.shape, bool)
        edge[:, 1:] |= ct[:, 1:] != ct[:, :-1]
        edge[:, :-1] |= ct[:, 1:] != ct[:, :-1]
        edge[:, :, 1:] |= ct[:, :, 1:] != ct[:, :, :-1]
        edge[:, :, :-1] |= ct[:, :, 1:] != ct[:, :, :-1]
        up = np.repeat(np.repeat(ct, 2, axis=1), 2, axis=2)[:, :nj, :ni]
        edge_up = np.repeat(np.repeat(edge, 2, axis=1), 2, axis=2)[:, :nj, :ni]
        exact = _grow(up != t0) | edge_up | graded
        tis = up.ravel().copy()
        nuc = np.ones(tis.size, F32)
        idx = np.nonzero(exact.ravel())[0]
        if idx.size:
            es, eu, ev = _bilinear_at(co, nj, ni, step, idx)
            et, en, _ = _sample_all(m, es, eu, ev, False)
            tis[idx] = et
            nuc[idx] = en
        tis_l.append(tis)
        nuc_l.append(nuc)
    return Sampling(lab.reshape(g.shape), tis_l, nuc_l, tex)


def noise_free(sig: np.ndarray, smp: Sampling, shape: tuple[int, int, int]) -> np.ndarray:
    """Mean over sub-slices of the tissue signal; disc voxels mix nucleus and annulus."""
    ann = sig[tx.ANNULUS]
    acc = np.zeros(smp.tissues[0].shape, F32)
    for tis, nuc in zip(smp.tissues, smp.nucleus, strict=True):
        acc += sig[tis] * nuc + ann * (1.0 - nuc)
    acc /= len(smp.tissues)
    if smp.texture is not None:
        amp = np.zeros(256, F32)
        for t, a in TEXTURE_AMPLITUDE.items():
            amp[t] = a
        acc *= 1.0 + amp[smp.tissues[len(smp.tissues) // 2]] * np.clip(smp.texture, -2.0, 2.0)
    return acc.reshape(shape)


def bias_field(
    g: Grid, rng: np.random.Generator, posterior_y: float, strength: float
) -> np.ndarray:
    """Smooth receive-coil sensitivity: stronger near the posterior spine coil, with a random
    low-order spatial drift."""
    _, nj, ni = g.shape
    pts = g.centres(0.0, 8)
    centre = g.affine[:3, :3] @ (np.array(g.shape) / 2) + g.affine[:3, 3]
    d = (pts - centre) / 150.0
    grad = rng.normal(0.0, 0.12 * strength, 3)
    quad = rng.normal(0.0, 0.06 * strength, 3)
    logb = d @ grad + (d * d) @ quad
    depth = np.clip(posterior_y - pts[..., 1], 0.0, None)
    coil = 0.55 + 0.45 * np.exp(-depth / (90.0 + 60.0 * (1.0 - strength)))
    b = (np.exp(logb) * coil).astype(F32)
    return _upsample(_upsample(b, nj, 8, 1), ni, 8, 2)


def add_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Rician magnitude noise: |S + n_re + i n_im| with Gaussian n of std sigma."""
    re = img + F32(sigma) * rng.standard_normal(img.shape, dtype=F32)
    im = F32(sigma) * rng.standard_normal(img.shape, dtype=F32)
    return np.sqrt(re * re + im * im).astype(F32)


def gibbs(img: np.ndarray, keep: float, axis: int) -> np.ndarray:
    """Truncate k-space along `axis` (keep the central fraction): ringing at sharp edges."""
    k = np.fft.fftshift(np.fft.fft(img, axis=axis), axes=axis)
    n = img.shape[axis]
    lo, hi = int(n * (1 - keep) / 2), int(n * (1 + keep) / 2)
    mask = np.zeros(n, F32)
    mask[lo:hi] = 1.0
    shp = [1] * img.ndim
    shp[axis] = n
    k = k * mask.reshape(shp)
    return np.abs(np.fft.ifft(np.fft.ifftshift(k, axes=axis), axis=axis)).astype(F32)


def ghost(img: np.ndarray, amp: float, shift: int, axis: int) -> np.ndarray:
    """Motion ghosts: faint copies displaced along the phase-encoding axis."""
    return (
        img + amp * np.roll(img, shift, axis=axis) + 0.5 * amp * np.roll(img, -shift, axis=axis)
    ).astype(F32)


def wrap(img: np.ndarray, frac: float, axis: int) -> np.ndarray:
    """Aliasing: the signal of the outer `frac` of the phase FOV folds onto the opposite side."""
    n = img.shape[axis]
    w = max(1, int(n * frac))
    out = img.copy()
    sl = [slice(None)] * img.ndim
    src = [slice(None)] * img.ndim
    sl[axis], src[axis] = slice(0, w), slice(n - w, n)
    out[tuple(sl)] += 0.6 * img[tuple(src)]
    sl[axis], src[axis] = slice(n - w, n), slice(0, w)
    out[tuple(sl)] += 0.6 * img[tuple(src)]
    return out
