"""A smooth random deformation of the drawn anatomy (SynthSeg deforms its label maps too).

v1's shapes are analytic: rectangles for bodies, ellipses for loops, straight boundaries. Each v2
phantom displaces the points it samples by a sum of random plane waves in the patient frame, a
coarse component (wavelengths 60-150 mm) that bends the outlines and a fine one (6-15 mm) that
roughens edges. The field is a function of position only, so every series, slice and the label
map see the same deformed anatomy. Findings are still measured on the undeformed geometry, so the
amplitudes are kept small (params.json: about 1 mm rms coarse, a quarter millimetre fine, i.e.
a local strain of a few per cent); a grade at the very edge of its range may read differently
on the deformed image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

F32 = np.float32


@dataclass(frozen=True)
class Warp:
    k: np.ndarray  # (n, 3) wave vectors (rad / mm)
    phase: np.ndarray  # (n,)
    amp: np.ndarray  # (n, 3) displacement amplitude per wave and axis (mm)

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        """Displacement (mm) at (N, 3) patient points."""
        if not len(self.k):
            return np.zeros_like(pts)
        w = np.sin(pts.astype(F32) @ self.k.T + self.phase)
        return (w @ self.amp).astype(F32)


def draw_warp(rng: np.random.Generator, coarse_mm: float, fine_mm: float, n: int = 6) -> Warp:
    """`coarse_mm` / `fine_mm`: rms displacement of each component."""
    ks, amps = [], []
    for rms, (lo, hi) in ((coarse_mm, (60.0, 150.0)), (fine_mm, (6.0, 15.0))):
        d = rng.normal(size=(n, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        lam = rng.uniform(lo, hi, (n, 1))
        ks.append(d * 2 * np.pi / lam)
        # Each axis sums n unit sines (rms 1/sqrt(2) each): scale to the wanted rms.
        amps.append(rng.normal(size=(n, 3)) * rms * np.sqrt(2.0 / n))
    return Warp(
        np.concatenate(ks).astype(F32),
        rng.uniform(0, 2 * np.pi, 2 * n).astype(F32),
        np.concatenate(amps).astype(F32),
    )
