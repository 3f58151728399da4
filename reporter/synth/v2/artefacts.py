"""Image formation after the noise-free picture: coil bias, limited k-space (resolution and Gibbs
ringing), blur, wrap-around, motion ghosts and Rician noise. Ranges: params.json `artefacts`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from reporter.synth.v2.params import PARAMS, EngineParams

F32 = np.float32


@dataclass(frozen=True)
class Artefacts:
    kspace_keep: tuple[float, float]  # central fraction kept along rows, columns
    blur_sigma_px: float
    snr: float
    bias: np.ndarray  # (5, 5) log-field control points
    coil_depth_mm: float  # 0: no posterior coil fall-off
    coil_power: float
    ghosts: tuple[tuple[float, float], ...]  # (amplitude, shift as a fraction of the phase FOV)
    window_pct: tuple[float, float] | None  # export window (low, high percentile) or None

    def as_meta(self) -> dict[str, object]:
        return {
            "kspace_keep": [round(x, 3) for x in self.kspace_keep],
            "blur_sigma_px": round(self.blur_sigma_px, 3),
            "snr": round(self.snr, 2),
            "bias_log_sd": round(float(self.bias.std()), 3),
            "coil_depth_mm": round(self.coil_depth_mm, 1),
            "coil_power": round(self.coil_power, 2),
            "ghosts": [[round(a, 3), round(s, 3)] for a, s in self.ghosts],
            "export_window_pct": None
            if self.window_pct is None
            else [round(x, 2) for x in self.window_pct],
        }


def draw_artefacts(rng: np.random.Generator, params: EngineParams = PARAMS) -> Artefacts:
    a = params.artefacts
    keep = float(rng.uniform(*a.kspace_keep))
    keep2 = float(np.clip(keep * rng.uniform(0.85, 1.15), a.kspace_keep[0], 1.0))
    ghosts: tuple[tuple[float, float], ...] = ()
    if rng.random() < a.ghost_p:
        n = int(rng.integers(a.ghost_count[0], a.ghost_count[1] + 1))
        base = float(rng.uniform(0.08, 0.35))
        amp = float(rng.uniform(*a.ghost_amplitude))
        ghosts = tuple((amp / (k + 1), base * (k + 1) * float(rng.choice([-1, 1])))
                       for k in range(n))  # fmt: skip
    coil = float(rng.uniform(*a.coil_depth_mm)) if rng.random() < a.coil_p else 0.0
    power = float(rng.uniform(*a.coil_power))
    window = None
    if rng.random() < a.export_p:
        window = (
            float(rng.uniform(*a.export_floor_pct)),
            float(rng.uniform(*a.export_ceiling_pct)),
        )
    return Artefacts(
        kspace_keep=(keep, keep2),
        blur_sigma_px=float(rng.uniform(*a.blur_sigma_px)),
        snr=float(rng.uniform(*a.snr)),
        bias=rng.normal(0.0, float(rng.uniform(*a.bias_log_sd)), (5, 5)),
        coil_depth_mm=coil,
        ghosts=ghosts,
        window_pct=window,
        coil_power=power,
    )


def bias_field(art: Artefacts, shape: tuple[int, int], depth_mm: np.ndarray | None) -> np.ndarray:
    """Smooth multiplicative field: a random low-order log-field times, when the study has one,
    the fall-off of a posterior spine coil with depth from the skin of the back."""
    zoom = (shape[0] / 5.0, shape[1] / 5.0)
    logb = ndimage.zoom(art.bias, zoom, order=3, mode="nearest", grid_mode=True)
    b = np.exp(logb[: shape[0], : shape[1]]).astype(F32)
    if art.coil_depth_mm > 0 and depth_mm is not None:
        # Receive sensitivity of a posterior array: flat near the coil, then falling steeply
        # (half at coil_depth_mm), which darkens the abdomen of real lumbar images.
        d = np.clip(depth_mm, 0.0, None) / art.coil_depth_mm
        b *= (1.0 / (1.0 + d**art.coil_power)).astype(F32)
    return b


def limit_kspace(img: np.ndarray, keep: tuple[float, float]) -> np.ndarray:
    """Acquire at a coarser resolution than displayed: keep the central k-space fraction along
    each axis (blur plus ringing at sharp edges, as zero-filled reconstruction gives)."""
    if keep[0] >= 0.999 and keep[1] >= 0.999:
        return img
    k = np.fft.fftshift(np.fft.fft2(img))
    for axis, frac in enumerate(keep):
        n = img.shape[axis]
        lo, hi = round(n * (1 - frac) / 2), round(n * (1 + frac) / 2)
        mask = np.zeros(n, F32)
        mask[lo:hi] = 1.0
        k *= mask.reshape((-1, 1) if axis == 0 else (1, -1))
    return np.abs(np.fft.ifft2(np.fft.ifftshift(k))).astype(F32)


def fold(img: np.ndarray, extra: int, axis: int) -> np.ndarray:
    """Wrap-around: what lies beyond one edge of the phase field of view (the `extra` pixels
    rendered past each side) appears at the opposite edge."""
    if extra <= 0:
        return img
    a = np.moveaxis(img, axis, 0)
    n = a.shape[0] - 2 * extra
    core = a[extra : extra + n].copy()
    core[:extra] += a[extra + n :]
    core[n - extra :] += a[:extra]
    return np.moveaxis(core, 0, axis)


def ghost(img: np.ndarray, ghosts: tuple[tuple[float, float], ...], axis: int) -> np.ndarray:
    """Periodic motion (breathing, bowel) along the phase axis: shifted faint copies."""
    out = img.copy()
    n = img.shape[axis]
    for amp, frac in ghosts:
        out += F32(amp) * np.roll(img, round(frac * n), axis=axis)
    return out


def rician(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    re = img + F32(sigma) * rng.standard_normal(img.shape, dtype=F32)
    im = F32(sigma) * rng.standard_normal(img.shape, dtype=F32)
    return np.sqrt(re * re + im * im).astype(F32)


def form_image(
    clean: np.ndarray,
    art: Artefacts,
    rng: np.random.Generator,
    bias: np.ndarray,
    wrap_px: int,
    phase_axis: int,
) -> np.ndarray:
    """Noise-free slice (wrap margin included) -> the slice as the scanner shows it."""
    img = clean * bias
    img = limit_kspace(img, art.kspace_keep)
    if art.blur_sigma_px > 0.05:
        img = ndimage.gaussian_filter(img, art.blur_sigma_px, mode="nearest")
    img = fold(img, wrap_px, phase_axis)
    if art.ghosts:
        img = ghost(img, art.ghosts, phase_axis)
    body = img[img > 0.15 * float(np.percentile(img, 99.5))]
    ref = float(body.mean()) if body.size else 1.0
    img = rician(img, ref / art.snr, rng)
    if art.window_pct is not None:
        lo, hi = np.percentile(img[:: max(1, img.shape[0] // 128)], art.window_pct)
        img = np.clip(img - F32(lo), 0.0, max(float(hi - lo), 1e-6))
    return img
