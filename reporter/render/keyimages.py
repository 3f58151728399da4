"""Key images: the slice a statement rests on, with the segmentation outline and the measurement.

A reader checks a statement by looking: the image shows where the checker measured (a red mark,
with a line as long as the measured distance) on the slice it measured, and the outlines of the
structures it measured (the level's disc in yellow, canal in cyan, foramina in magenta, vertebrae
in green).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from reporter.contracts import labels as L
from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import LEVELS, VERTEBRAE
from reporter.contracts.study import Series, Study
from reporter.contracts.verdicts import Measurement
from reporter.render.statements import Statement

OUT_PX = 320  # edge of the square key image
CROP_MM = 90.0  # field of view of the crop around the level

COLORS: dict[str, tuple[int, int, int]] = {
    "disc": (255, 221, 0),
    "other_disc": (150, 130, 0),
    "vertebra": (0, 200, 90),
    "canal": (0, 200, 255),
    "foramen": (255, 0, 255),
    "root": (255, 140, 0),
    "measurement": (255, 40, 40),
}


@dataclass
class KeyImage:
    png: bytes
    caption: str
    series_uid: str
    slice_index: int

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def _series(study: Study, uid: str, stack: int) -> Series | None:
    return next((s for s in study.series if s.series_uid == uid and s.stack_index == stack), None)


def _labels_for(anatomy: Anatomy, series: Series) -> np.ndarray | None:
    if (
        series.series_uid == anatomy.reference_series_uid
        and series.stack_index == anatomy.reference_stack_index
    ):
        return anatomy.labels
    lab = anatomy.extra_labels.get(f"{series.series_uid}#{series.stack_index}")
    if lab is not None and tuple(lab.shape) == series.shape:
        return lab
    return None


def _pick_measurement(study: Study, statement: Statement) -> Measurement | None:
    """The measurement to draw: one on a series of the study, a slice-exact one first."""
    placed = [
        m
        for m in statement.evidence
        if m.series_uid and _series(study, m.series_uid, m.stack_index) is not None
    ]
    placed.sort(key=lambda m: (m.slice_index is None, m.unit != "mm", m.value is None))
    return placed[0] if placed else None


def _anchor(statement: Statement, meas: Measurement | None) -> list[int]:
    """The structure a statement (or its measurement) is about: where to look and to draw."""
    name = (meas.name if meas is not None else "") + " " + statement.field
    side = "left" if "left" in name else "right" if "right" in name else None
    if "foram" in name or "root" in name:
        if side == "left":
            return [L.FORAMEN_LEFT, L.ROOT_LEFT]
        if side == "right":
            return [L.FORAMEN_RIGHT, L.ROOT_RIGHT]
        return [L.FORAMEN_LEFT, L.FORAMEN_RIGHT]
    if "canal" in name or "dural" in name or "recess" in name or "subarticular" in name:
        return [L.CANAL]
    if statement.level:
        return [L.disc_label(statement.level)]
    return [L.CANAL]


def _resampled_labels(anatomy: Anatomy, series: Series, k: int) -> np.ndarray:
    """The anatomy's label map sampled (nearest) on slice k of another series' grid."""
    rows, cols = series.shape[1], series.shape[2]
    jj, ii = np.mgrid[0:rows, 0:cols]
    idx = np.stack([np.full_like(jj, k), jj, ii], axis=-1).reshape(-1, 3)
    lps = series.index_to_lps(idx)
    inv = np.linalg.inv(anatomy.affine)
    ref = np.rint(lps @ inv[:3, :3].T + inv[:3, 3]).astype(int)
    shape = np.array(anatomy.labels.shape)
    ok = np.all((ref >= 0) & (ref < shape), axis=1)
    out = np.zeros(rows * cols, dtype=anatomy.labels.dtype)
    out[ok] = anatomy.labels[ref[ok, 0], ref[ok, 1], ref[ok, 2]]
    return out.reshape(rows, cols)


def _level_band(lab3d: np.ndarray, level: str | None, margin: int) -> slice:
    """Rows (of a sagittal-like grid) covering the level's disc, with a margin."""
    if level is None:
        return slice(None)
    rows = np.nonzero((lab3d == L.disc_label(level)).any(axis=(0, 2)))[0]
    if rows.size == 0:
        return slice(None)
    return slice(max(int(rows.min()) - margin, 0), int(rows.max()) + margin + 1)


def _norm(img: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(img, [1, 99.5]) if img.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return (np.clip((img - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def _outline(mask: np.ndarray) -> np.ndarray:
    """The mask's pixels with a 4-neighbour outside it (or on the image border): what
    `mask & ~ndimage.binary_erosion(mask, border_value=0)` gives, by array slicing, which is
    ~35x faster on a key image (tests/test_speed_equivalence.py checks they agree)."""
    inner = np.zeros_like(mask)
    inner[1:-1, 1:-1] = (
        mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    )
    return mask & ~inner


def _thicken(edge: np.ndarray) -> np.ndarray:
    """`ndimage.binary_dilation(edge)` (cross-shaped, one step) by slicing: 2 px wide lines."""
    out = edge.copy()
    out[1:] |= edge[:-1]
    out[:-1] |= edge[1:]
    out[:, 1:] |= edge[:, :-1]
    out[:, :-1] |= edge[:, 1:]
    return out


def _direction(series: Series, name: str) -> np.ndarray:
    """Pixel step (rows, cols) per mm along the patient axis a distance is measured on:
    cranio-caudal for heights, antero-posterior for everything else (AP width, depth)."""
    axis = np.array([0.0, 0.0, 1.0]) if "height" in name else np.array([0.0, 1.0, 0.0])
    row_vec, col_vec = series.affine[:3, 1], series.affine[:3, 2]
    d = np.array([axis @ row_vec / (row_vec @ row_vec), axis @ col_vec / (col_vec @ col_vec)])
    norm = np.linalg.norm(d * np.array(series.spacing[1:]))
    return d / norm if norm > 0 else np.array([0.0, 1.0 / series.spacing[2]])


def render_key_image(study: Study, anatomy: Anatomy, statement: Statement) -> KeyImage | None:
    """The key image of one statement, or None when there is nothing to show it on.

    The measured series and slice when the measurement names them (labels resampled onto it
    when the anatomy has none there); else the reference series, on the slice that shows the
    statement's structure best at its level."""
    meas = _pick_measurement(study, statement)
    series = _series(study, meas.series_uid, meas.stack_index) if meas and meas.series_uid else None
    if series is None:
        series = _series(study, anatomy.reference_series_uid, anatomy.reference_stack_index)
        if meas is not None:
            meas = meas.model_copy(update={"slice_index": None})  # it belongs to another grid
    if series is None:
        return None
    own = _labels_for(anatomy, series)
    anchor = _anchor(statement, meas)
    _, row_mm, col_mm = series.spacing

    k: int | None = meas.slice_index if meas is not None else None
    if k is None and own is not None:
        band = _level_band(own, statement.level, margin=round(10 / row_mm))
        counts = np.isin(own[:, band, :], anchor).sum(axis=(1, 2))
        k = int(np.argmax(counts)) if counts.max() > 0 else None
    if k is None and meas is not None and meas.position_lps:
        k = round(float(series.lps_to_index(np.asarray(meas.position_lps))[0]))
    if k is None or not 0 <= k < series.shape[0]:
        k = series.shape[0] // 2

    img = series.pixels[k].astype(np.float32)
    lab = own[k] if own is not None else _resampled_labels(anatomy, series, k)

    # Where to centre and draw: the anchor structure at this level, else the disc, else the
    # measurement's position, else the middle.
    disc = lab == L.disc_label(statement.level) if statement.level else np.zeros_like(lab, bool)
    target = np.isin(lab, anchor)
    if statement.level and disc.any() and target.any() and not np.array_equal(target, disc):
        rows = np.nonzero(disc.any(axis=1))[0]
        margin = round(12 / row_mm)
        near = np.zeros_like(target)
        near[max(rows.min() - margin, 0) : rows.max() + margin + 1] = True
        # On a sagittal slice keep the part of the canal / foramen beside this disc.
        if (target & near).any() and series.plane != "axial":
            target &= near
    point: tuple[float, float] | None = None
    if target.any():
        point = tuple(float(c) for c in ndimage.center_of_mass(target))  # type: ignore[assignment]
    elif disc.any():
        point = tuple(float(c) for c in ndimage.center_of_mass(disc))  # type: ignore[assignment]
    elif meas is not None and meas.position_lps:
        kji = series.lps_to_index(np.asarray(meas.position_lps))
        point = (float(kji[1]), float(kji[2]))
    cj, ci = point if point is not None else (img.shape[0] / 2, img.shape[1] / 2)

    half_r = round(CROP_MM / 2 / row_mm)
    half_c = round(CROP_MM / 2 / col_mm)
    r0, c0 = round(cj) - half_r, round(ci) - half_c
    pad = max(half_r, half_c) + 2
    img_p = np.pad(img, pad, mode="constant", constant_values=float(img.min()))
    lab_p = np.pad(lab, pad, mode="constant")
    sl = (slice(r0 + pad, r0 + pad + 2 * half_r), slice(c0 + pad, c0 + pad + 2 * half_c))
    crop, crop_lab = img_p[sl], lab_p[sl]

    size = (OUT_PX, OUT_PX)
    gray = Image.fromarray(_norm(crop)).resize(size, Image.Resampling.BILINEAR)
    lab_up = np.asarray(Image.fromarray(crop_lab.astype(np.int32)).resize(size, Image.NEAREST))
    rgb = np.stack([np.asarray(gray)] * 3, axis=-1).copy()

    disc_here = L.disc_label(statement.level) if statement.level else -1
    layers: list[tuple[np.ndarray, str]] = [
        ((lab_up >= L.VERTEBRA_BASE) & (lab_up < L.VERTEBRA_BASE + len(VERTEBRAE)), "vertebra"),
        (
            (lab_up >= L.DISC_BASE) & (lab_up < L.DISC_BASE + len(LEVELS)) & (lab_up != disc_here),
            "other_disc",
        ),
        (lab_up == L.CANAL, "canal"),
        ((lab_up == L.FORAMEN_LEFT) | (lab_up == L.FORAMEN_RIGHT), "foramen"),
        ((lab_up == L.ROOT_LEFT) | (lab_up == L.ROOT_RIGHT), "root"),
        (lab_up == disc_here, "disc"),
    ]
    for mask, color in layers:
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            edge = _thicken(_outline(mask))  # 2 px wide, visible when scaled
            rgb[edge] = COLORS[color]

    pil = Image.fromarray(rgb)
    draw = ImageDraw.Draw(pil)
    sy, sx = OUT_PX / crop.shape[0], OUT_PX / crop.shape[1]  # px per voxel
    caption = f"{statement.level or 'study'}: {statement.text}"
    col = COLORS["measurement"]
    if meas is not None:
        caption += f" | {meas.name} = {_fmt(meas)}"
        py, px = (cj - r0) * sy, (ci - c0) * sx
        if meas.unit == "mm" and meas.value is not None and meas.value > 0:
            # The distance itself, to scale, along the axis it is measured on.
            dj, di = _direction(series, meas.name) * meas.value / 2
            a = (px - di * sx, py - dj * sy)
            b = (px + di * sx, py + dj * sy)
            draw.line([a, b], fill=col, width=3)
            # End ticks perpendicular to the line (x, y) = (di*sx, dj*sy).
            tx, ty = -dj * sy, di * sx
            norm = float(np.hypot(tx, ty)) or 1.0
            tx, ty = tx / norm * 6, ty / norm * 6
            for ex, ey in (a, b):
                draw.line([(ex - tx, ey - ty), (ex + tx, ey + ty)], fill=col, width=2)
        else:
            draw.ellipse([(px - 6, py - 6), (px + 6, py + 6)], outline=col, width=3)
        draw.text((4, OUT_PX - 16), f"{meas.name} = {_fmt(meas)}", fill=col)
    # 10 mm scale bar, so a reader can judge any distance on the image.
    bar = 10.0 / col_mm * sx
    draw.line([(OUT_PX - 12 - bar, 12), (OUT_PX - 12, 12)], fill=(255, 255, 255), width=2)
    draw.text((OUT_PX - 12 - bar, 16), "10 mm", fill=(255, 255, 255))
    draw.text((4, 4), f"{series.description or series.role} #{k + 1}", fill=(255, 255, 255))

    buf = io.BytesIO()
    # zlib level 1: the same pixels as level 6 in a quarter of the time, ~17% more bytes
    # (26 key images of the demo study: 0.15 s and 2.1 MB against 0.67 s and 1.8 MB).
    pil.save(buf, format="PNG", compress_level=1)
    return KeyImage(
        png=buf.getvalue(), caption=caption, series_uid=series.series_uid, slice_index=k
    )


def _fmt(m: Measurement) -> str:
    if m.value is None:
        return "n/a"
    unit = "" if m.unit in ("", "ratio", "1") else f" {m.unit}"
    return f"{m.value:.3g}{unit}"
