"""The acquisition of a v2 phantom: field of view, resolution, slice thickness, sequence timing and
which artefacts occur, all drawn from the engine's ranges before any anatomy exists.

Nothing here reads the spine: the cranio-caudal and antero-posterior placement of the field of
view is drawn in the patient frame, whose origin the spine model puts near the middle of the
lumbar spine with its own random offset (reporter.synth.spine). A level's position in the image is
therefore the difference of two independent draws, never a function of where the levels are.
Two placements do follow the body, as a technologist's do, and say nothing about levels: the
slice's left-right position sits on the spinal midline at the field of view's centre height (as
the person who picks the mid-sagittal slice does), and the posterior edge of the field of view
lies a drawn margin behind the skin of the back at that height (the back is always in view).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from reporter.synth.render import Grid
from reporter.synth.spine import SpineModel
from reporter.synth.v2.params import PARAMS, EngineParams


@dataclass(frozen=True)
class Acquisition:
    fov_si_mm: float
    fov_ap_mm: float
    centre_si_mm: float  # patient z of the field of view's centre
    posterior_margin_mm: float  # posterior edge of the field of view behind the skin
    lateral_jitter_mm: float
    tilt_deg: float  # in-plane rotation about the left-right axis
    pixel_mm: float
    thickness_mm: float
    gap_mm: float
    n_slices: int  # 1 for a single mid-sagittal slice
    phase_axis: str  # "ap" | "si": where wrap and ghosts fold
    wrap_fraction: float  # 0: no wrap-around
    t1_tr: float
    t1_te: float
    t2_tr: float
    t2_te: float

    def as_meta(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _u(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(rng.uniform(r[0], r[1]))


def draw_acquisition(
    rng: np.random.Generator, slices: str, params: EngineParams = PARAMS
) -> Acquisition:
    """Every acquisition parameter of one study (both sagittal series share the geometry)."""
    if slices not in ("mid", "stack"):
        raise ValueError(f"Argument 'slices' must be 'mid' or 'stack', not {slices!r}.")
    f, a, sq = params.fov, params.artefacts, params.sequences
    si = _u(rng, f.si_mm)
    ratio = _u(rng, f.ap_over_si)
    ap = si if rng.random() < f.square_p else si * ratio
    centre_si = si * _u(rng, f.centre_si_over_fov)
    margin = _u(rng, f.posterior_margin_mm)
    lateral = float(rng.normal(0.0, f.lateral_sd_mm))
    tilt = _u(rng, f.inplane_tilt_deg)
    px = _u(rng, f.pixel_mm)
    thick = _u(rng, f.thickness_mm)
    gap = _u(rng, f.gap_mm)
    n_stack = int(rng.integers(f.stack_slices[0], f.stack_slices[1] + 1))
    phase = "ap" if rng.random() < 0.7 else "si"
    wrap = _u(rng, a.wrap_fraction) if rng.random() < a.wrap_p else 0.0
    t1 = (_u(rng, sq["t1"].tr), _u(rng, sq["t1"].te))
    t2 = (_u(rng, sq["t2"].tr), _u(rng, sq["t2"].te))
    return Acquisition(
        fov_si_mm=si, fov_ap_mm=ap, centre_si_mm=centre_si, posterior_margin_mm=margin,
        lateral_jitter_mm=lateral, tilt_deg=tilt, pixel_mm=px, thickness_mm=thick, gap_mm=gap,
        n_slices=1 if slices == "mid" else n_stack, phase_axis=phase, wrap_fraction=wrap,
        t1_tr=t1[0], t1_te=t1[1], t2_tr=t2[0], t2_te=t2[1],
    )  # fmt: skip


def matrix(acq: Acquisition) -> tuple[int, int]:
    """(rows, columns): rows run cranio-caudal, columns antero-posterior."""
    return max(round(acq.fov_si_mm / acq.pixel_mm), 32), max(
        round(acq.fov_ap_mm / acq.pixel_mm), 32
    )


def body_cues(m: SpineModel, z: float) -> tuple[float, float]:
    """(x of the spinal midline, y of the skin of the back) at patient height z: what a
    technologist lines the field of view up with."""
    k = int(np.argmin(np.abs(m.c[:, 2] - z)))
    back = m.c[k] + m.skin_posterior * m.nrm[k]
    return float(m.c[k, 0]), float(back[1])


def sagittal_grid(
    acq: Acquisition, cues: tuple[float, float], extend: tuple[int, int] = (0, 0)
) -> Grid:
    """The sagittal stack: rows go caudally, columns posteriorly (anterior on the left, as a
    radiologist reads it), slices step to the patient's left. `extend` adds pixels on both sides
    of the rows / columns (the region that wrap-around folds back in)."""
    rows, cols = matrix(acq)
    rows, cols = rows + 2 * extend[0], cols + 2 * extend[1]
    t = np.radians(acq.tilt_deg)
    row_dir = np.array([0.0, np.cos(t), np.sin(t)])  # direction of increasing column
    col_dir = np.array([0.0, np.sin(t), -np.cos(t)])  # direction of increasing row
    normal = np.cross(row_dir, col_dir)
    spacing = acq.thickness_mm + acq.gap_mm
    px = acq.pixel_mm
    y_centre = cues[1] + acq.posterior_margin_mm - 0.5 * acq.fov_ap_mm
    centre = np.array([cues[0] + acq.lateral_jitter_mm, y_centre, acq.centre_si_mm])
    n = acq.n_slices
    origin = (
        centre
        - 0.5 * (n - 1) * spacing * normal
        - 0.5 * (rows - 1) * px * col_dir
        - 0.5 * (cols - 1) * px * row_dir
    )
    aff = np.eye(4)
    aff[:3, 0] = normal * spacing
    aff[:3, 1] = col_dir * px
    aff[:3, 2] = row_dir * px
    aff[:3, 3] = origin
    return Grid(aff, (n, rows, cols), acq.thickness_mm)


def supersampled(g: Grid, factor: int) -> Grid:
    """The same slices at `factor` x the in-plane resolution; each block of factor x factor
    fine pixels tiles one pixel of `g` (so a block mean is that pixel's partial volume)."""
    aff = g.affine.copy()
    aff[:3, 1] /= factor
    aff[:3, 2] /= factor
    shift = (factor - 1) / 2.0
    aff[:3, 3] = g.affine[:3, 3] - shift * (aff[:3, 1] + aff[:3, 2])
    n, r, c = g.shape
    return Grid(aff, (n, r * factor, c * factor), g.thickness)
