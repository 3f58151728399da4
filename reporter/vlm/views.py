"""The images the VLM sees, cut from a `Study` where the `Anatomy` says the structures are.

Cross-site harmonization happens here: every view is resampled to one fixed mm-per-pixel for its
kind (whatever the acquisition matrix and slice thickness) and every series is intensity-normalised
on its own robust percentiles. A view has three channels -- T2, T1, STIR -- sampled at the same
patient coordinates from whichever series carry them; a channel whose series is missing (or does
not cover the spot) is zero and marked absent, and `not_assessable_fields` turns that into
not_assessable reasons for exactly the fields that need it.

Views (all `size` x `size`):
  study:  sag_mid          full-FOV mid-sagittal (T2, T1, STIR)
          para_left_full   full-FOV parasagittal through the left foramina
          para_right_full  the same on the right
  level:  level_sag        mid-sagittal crop at the disc, rotated so the disc lies horizontal
          level_para_left  parasagittal crop through the left foramen of the level
          level_para_right the same on the right
          level_axial      axial crop at the disc (from the axial stack covering it)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import LEVELS
from reporter.contracts.labels import CANAL, DISC_BASE, FORAMEN_LEFT, FORAMEN_RIGHT, disc_label
from reporter.contracts.study import Series, Study
from reporter.errors import InputDataError
from reporter.vlm.config import ViewConfig

CHANNELS = ("T2", "T1", "STIR")
GLOBAL_VIEWS = ("sag_mid", "para_left_full", "para_right_full")
LEVEL_VIEWS = ("level_sag", "level_para_left", "level_para_right", "level_axial")
MIN_COVERAGE = 0.5  # a view sampling less of its grid inside the series counts as absent
# The report covers the disc levels from T12-L1 down (ARCHITECTURE.md); thoracic discs higher up
# that the anatomy may name are not looked at.
REPORTED_LEVELS = LEVELS[
    LEVELS.index("T12-L1") :
]  # a view sampling less of its grid inside the series counts as absent

_SAG_ROLES = {"T2": "sag_t2", "T1": "sag_t1", "STIR": "sag_stir"}
_AX_ROLES = {"T2": "ax_t2", "T1": "ax_t1"}

# Which views/channels each field needs: a list of alternatives, each a list of requirements
# that must all hold. Study-level fields read the global mid-sagittal view.
_ANY_SAG = [[("level_sag", "T2")], [("level_sag", "T1")]]
FIELD_NEEDS: dict[str, list[list[tuple[str, str]]]] = {
    "pfirrmann": [[("level_sag", "T2")]],
    "disc_narrowing": _ANY_SAG,
    "disc_bulging": [[("level_sag", "T2")], [("level_sag", "T1")], [("level_axial", "T2")]],
    "herniation": [[("level_sag", "T2")], [("level_axial", "T2")]],
    "canal_stenosis": [[("level_sag", "T2")], [("level_axial", "T2")]],
    "foraminal_stenosis_left": [[("level_para_left", "T1")], [("level_para_left", "T2")]],
    "foraminal_stenosis_right": [[("level_para_right", "T1")], [("level_para_right", "T2")]],
    "subarticular_stenosis_left": [[("level_axial", "T2")]],
    "subarticular_stenosis_right": [[("level_axial", "T2")]],
    "modic_upper": [[("level_sag", "T1"), ("level_sag", "T2")]],
    "modic_lower": [[("level_sag", "T1"), ("level_sag", "T2")]],
    "endplate_defect_upper": _ANY_SAG,
    "endplate_defect_lower": _ANY_SAG,
    "spondylolisthesis": _ANY_SAG,
    "transitional": [[("sag_mid", "T2")], [("sag_mid", "T1")]],
    "alignment": [[("sag_mid", "T2")], [("sag_mid", "T1")]],
}

_VIEW_WORDS = {
    "level_sag": "sagittal {ch} image of this level",
    "level_para_left": "sagittal {ch} image through the left foramen",
    "level_para_right": "sagittal {ch} image through the right foramen",
    "level_axial": "axial {ch} slice through this level",
    "sag_mid": "mid-sagittal {ch} image",
}


def _reason(alternatives: list[list[tuple[str, str]]]) -> str:
    options = [" and ".join(_VIEW_WORDS[v].format(ch=ch) for v, ch in alt) for alt in alternatives]
    return "no " + " or ".join(options)


@dataclass
class StudyViews:
    """All views of one study; images float32 (.., 3, size, size), presence per channel."""

    global_images: np.ndarray  # (len(GLOBAL_VIEWS), 3, S, S)
    global_present: np.ndarray  # (len(GLOBAL_VIEWS), 3) bool
    levels: list[str]
    level_images: np.ndarray  # (n_levels, len(LEVEL_VIEWS), 3, S, S)
    level_present: np.ndarray  # (n_levels, len(LEVEL_VIEWS), 3) bool
    warnings: list[str]


def _present(present: dict[str, np.ndarray], view: str, channel: str) -> bool:
    return bool(present[view][CHANNELS.index(channel)])


def not_assessable_fields(
    fields: tuple[str, ...], present: dict[str, np.ndarray]
) -> dict[str, str]:
    """field -> reason for every field whose views are missing. `present`: view -> (3,) bool."""
    out: dict[str, str] = {}
    for f in fields:
        alternatives = FIELD_NEEDS[f]
        if not any(all(_present(present, v, ch) for v, ch in alt) for alt in alternatives):
            out[f] = _reason(alternatives)
    return out


def presence_of_level(views: StudyViews, index: int) -> dict[str, np.ndarray]:
    out = {v: views.global_present[i] for i, v in enumerate(GLOBAL_VIEWS)}
    out.update({v: views.level_present[index, i] for i, v in enumerate(LEVEL_VIEWS)})
    return out


def presence_of_study(views: StudyViews) -> dict[str, np.ndarray]:
    return {v: views.global_present[i] for i, v in enumerate(GLOBAL_VIEWS)}


# -- geometry helpers -------------------------------------------------------------------------
def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def _normalize(series: Series) -> np.ndarray:
    """Robust per-series intensity scaling: 1st..99.5th percentile of the body -> 0..1."""
    px = series.pixels.astype(np.float32, copy=False)
    sample = px[:, ::2, ::2].ravel()
    body = sample[sample > np.percentile(sample, 20)]
    if body.size == 0:
        body = sample
    lo, hi = np.percentile(body, [1.0, 99.5])
    scale = float(hi - lo) if hi > lo else 1.0
    return np.clip((px - lo) / scale, -0.2, 1.5) - 0.5


class _Sampler:
    """Samples planes in patient coordinates from one series (normalised once)."""

    def __init__(self, series: Series) -> None:
        self.series = series
        self.volume = _normalize(series)
        self.shape = np.array(series.pixels.shape, dtype=float)

    def sample(
        self, center: np.ndarray, u: np.ndarray, v: np.ndarray, mm: float, size: int
    ) -> tuple[np.ndarray, float]:
        """Plane through `center`, columns along `u`, rows along `v`; returns image, coverage."""
        offs = (np.arange(size) - (size - 1) / 2.0) * mm
        pts = center + offs[None, :, None] * u + offs[:, None, None] * v  # (S, S, 3)
        idx = self.series.lps_to_index(pts.reshape(-1, 3))  # (S*S, 3) fractional (k, j, i)
        inside = np.all((idx >= -0.5) & (idx <= self.shape - 0.5), axis=1)
        coverage = float(inside.mean())
        if coverage == 0.0:
            return np.zeros((size, size), np.float32), 0.0
        img = ndimage.map_coordinates(self.volume, idx.T, order=1, mode="nearest")
        img = np.where(inside, img, 0.0).astype(np.float32)
        return img.reshape(size, size), coverage


@dataclass
class _LevelGeometry:
    center: np.ndarray  # disc centroid, LPS mm
    u: np.ndarray  # in-plane anterior -> posterior, perpendicular to the disc normal
    v: np.ndarray  # disc normal pointing inferior
    normal: np.ndarray
    foramen: dict[str, np.ndarray]  # "left"/"right" -> centre LPS


def _label_points(anatomy: Anatomy, mask: np.ndarray) -> np.ndarray:
    idx = np.argwhere(mask).astype(float)
    return idx @ anatomy.affine[:3, :3].T + anatomy.affine[:3, 3]


def _geometry(anatomy: Anatomy) -> tuple[dict[str, _LevelGeometry], np.ndarray, float]:
    labels = anatomy.labels
    lr = _unit(anatomy.affine[:3, 0])  # slice normal of the (sagittal) reference grid
    if abs(lr[0]) < 0.5:  # not a sagittal reference grid: use the patient's left axis
        lr = np.array([1.0, 0.0, 0.0])
    lr = lr if lr[0] > 0 else -lr
    out: dict[str, _LevelGeometry] = {}
    foramina = {
        "left": _label_points(anatomy, labels == FORAMEN_LEFT),
        "right": _label_points(anatomy, labels == FORAMEN_RIGHT),
    }
    for level in anatomy.levels:
        if level not in LEVELS:
            continue
        pts = _label_points(anatomy, labels == disc_label(level))
        if len(pts) < 5:
            continue
        c = pts.mean(axis=0)
        cov = np.cov((pts - c).T)
        _w, vecs = np.linalg.eigh(cov)
        normal = vecs[:, 0]
        if np.linalg.norm(normal - np.dot(normal, lr) * lr) < 0.5:
            # A disc labelled on one sagittal slice (2-D input) is flat across it, so its
            # thinnest axis is the slice normal; its normal is then the thinnest axis within
            # the sagittal plane. (Taking the slice normal made u = v = 0: every level crop a
            # single repeated pixel.)
            flat = np.eye(3) - np.outer(lr, lr)
            _w, vecs = np.linalg.eigh(flat @ cov @ flat)
            normal = vecs[:, int(np.argmin(np.where(np.abs(vecs.T @ lr) > 0.5, np.inf, _w)))]
        v = _unit(normal - np.dot(normal, lr) * lr)
        if v[2] > 0:  # point inferior (LPS: +z is superior)
            v = -v
        u = _unit(np.cross(lr, v))  # posterior
        spread_lr = float(np.ptp((pts - c) @ lr)) if len(pts) > 1 else 40.0
        spread_ap = float(np.ptp((pts - c) @ u)) if len(pts) > 1 else 35.0
        fc: dict[str, np.ndarray] = {}
        for side, sign in (("left", 1.0), ("right", -1.0)):
            fp = foramina[side]
            if len(fp):
                near = fp[np.abs((fp - c) @ v) < 12.0]
                near = near[np.sign((near - c) @ lr) == sign] if len(near) else near
                if len(near) >= 3:
                    fc[side] = near.mean(axis=0)
                    continue
            # No foramen label: the foramen sits lateral and posterior to the disc.
            fc[side] = c + sign * 0.4 * spread_lr * lr + 0.55 * spread_ap * u
        out[level] = _LevelGeometry(c, u, v, normal, fc)
    if not out:
        raise InputDataError("the anatomy names no disc level with a label: nothing to look at")
    canal = labels == CANAL
    mid_x = (
        float(np.median(_label_points(anatomy, canal) @ lr))
        if canal.any()
        else float(np.median([g.center @ lr for g in out.values()]))
    )
    return out, lr, mid_x


def _sag_samplers(study: Study) -> dict[str, _Sampler]:
    return {ch: _Sampler(s) for ch, role in _SAG_ROLES.items() if (s := study.get(role))}


def build_views(study: Study, anatomy: Anatomy, cfg: ViewConfig) -> StudyViews:
    """All views of a study at the configured resolutions (see the module docstring)."""
    size = cfg.size
    geo, lr, mid_x = _geometry(anatomy)
    sag = _sag_samplers(study)
    axial = {ch: [_Sampler(s) for s in study.all(role)] for ch, role in _AX_ROLES.items()}
    warnings: list[str] = []
    if not sag:
        raise InputDataError("the study has no sagittal series the model can read")

    def sample_channels(
        samplers: dict[str, _Sampler], center: np.ndarray, u: np.ndarray, v: np.ndarray, mm: float
    ) -> tuple[np.ndarray, np.ndarray]:
        img = np.zeros((3, size, size), np.float32)
        present = np.zeros(3, bool)
        for c, ch in enumerate(CHANNELS):
            if ch in samplers:
                plane, coverage = samplers[ch].sample(center, u, v, mm, size)
                if coverage >= MIN_COVERAGE:
                    img[c], present[c] = plane, True
        return img, present

    # Study views: patient axes, centred on the lumbar spine.
    centers = np.array([g.center for g in geo.values()])
    spine_c = centers.mean(axis=0)
    spine_c = spine_c + (mid_x - spine_c @ lr) * lr
    u0 = _unit(np.array([0.0, 1.0, 0.0]) - lr[1] * lr)
    v0 = _unit(np.cross(u0, lr))
    v0 = v0 if v0[2] < 0 else -v0
    para_x = {
        side: float(np.median([g.foramen[side] @ lr for g in geo.values()]))
        for side in ("left", "right")
    }
    g_imgs, g_pres = [], []
    for name in GLOBAL_VIEWS:
        x = {"sag_mid": mid_x, "para_left_full": para_x["left"]}.get(name, para_x["right"])
        c = spine_c + (x - spine_c @ lr) * lr
        img, pres = sample_channels(sag, c, u0, v0, cfg.global_mm_per_px)
        g_imgs.append(img)
        g_pres.append(pres)

    levels = [lv for lv in REPORTED_LEVELS if lv in geo]
    l_imgs = np.zeros((len(levels), len(LEVEL_VIEWS), 3, size, size), np.float32)
    l_pres = np.zeros((len(levels), len(LEVEL_VIEWS), 3), bool)
    for li, level in enumerate(levels):
        g = geo[level]
        c = g.center + (mid_x - g.center @ lr) * lr + cfg.level_posterior_shift_mm * g.u
        l_imgs[li, 0], l_pres[li, 0] = sample_channels(sag, c, g.u, g.v, cfg.level_mm_per_px)
        for vi, side in ((1, "left"), (2, "right")):
            l_imgs[li, vi], l_pres[li, vi] = sample_channels(
                sag, g.foramen[side], g.u, g.v, cfg.foramen_mm_per_px
            )
        l_imgs[li, 3], l_pres[li, 3] = _axial_view(axial, g, cfg, size)
    return StudyViews(
        global_images=np.stack(g_imgs),
        global_present=np.stack(g_pres),
        levels=levels,
        level_images=l_imgs,
        level_present=l_pres,
        warnings=warnings,
    )


def _axial_view(
    axial: dict[str, list[_Sampler]], g: _LevelGeometry, cfg: ViewConfig, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Axial crop through the disc centre from the stack that contains it (in-plane axes of
    that stack); zero and absent when no stack's slab contains the disc centre."""
    img = np.zeros((3, size, size), np.float32)
    present = np.zeros(3, bool)
    for c, ch in enumerate(CHANNELS):
        best: tuple[float, _Sampler] | None = None
        for s in axial.get(ch, []):
            k = float(s.series.lps_to_index(g.center[None])[0, 0])
            if -0.5 <= k <= s.shape[0] - 0.5:
                # Prefer the stack angled most like the disc, then the nearest slice.
                score = abs(float(np.dot(s.series.normal, g.normal))) - 0.01 * abs(k - round(k))
                if best is None or score > best[0]:
                    best = (score, s)
        if best is None:
            continue
        s = best[1]
        u = _unit(s.series.affine[:3, 2])  # along a row: patient left
        v = _unit(s.series.affine[:3, 1])  # down the columns: posterior
        center = g.center + cfg.axial_posterior_shift_mm * v
        plane, coverage = s.sample(center, u, v, cfg.axial_mm_per_px, size)
        if coverage >= MIN_COVERAGE:
            img[c], present[c] = plane, True
    return img, present


def describe(views: StudyViews) -> dict[str, Any]:
    """A small summary for logs and tests (no pixel data)."""
    return {
        "levels": views.levels,
        "global_present": {
            v: [ch for ch, p in zip(CHANNELS, views.global_present[i], strict=True) if p]
            for i, v in enumerate(GLOBAL_VIEWS)
        },
        "disc_base": DISC_BASE,
    }
