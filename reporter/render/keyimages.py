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

from reporter.anatomy import labels as L
from reporter.anatomy.anatomy import Anatomy
from reporter.grounding.verdicts import Measurement
from reporter.render.statements import Statement
from reporter.schema import LEVELS, VERTEBRAE
from reporter.study import Series, Study

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


def _pick_measurement(statement: Statement) -> Measurement | None:
    placed = [m for m in statement.evidence if m.slice_index is not None or m.position_lps]
    return placed[0] if placed else None


def _best_slice(labels: np.ndarray, values: list[int]) -> int | None:
    counts = np.isin(labels, values).sum(axis=(1, 2))
    return int(np.argmax(counts)) if counts.max() > 0 else None


def _structures(statement: Statement) -> list[int]:
    """The labels whose slice best shows this statement when no measurement says where."""
    f = statement.field
    if f.startswith("foraminal_stenosis"):
        return [L.FORAMEN_LEFT if f.endswith("left") else L.FORAMEN_RIGHT]
    if statement.level:
        return [L.disc_label(statement.level)]
    return [L.CANAL]


def _norm(img: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(img, [1, 99.5]) if img.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return (np.clip((img - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def _outline(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, iterations=1, border_value=0)


def render_key_image(study: Study, anatomy: Anatomy, statement: Statement) -> KeyImage | None:
    """The key image of one statement, or None when there is nothing to show it on."""
    meas = _pick_measurement(statement)
    # Show the measured series when its labels are known; else the reference series, with the
    # measurement's position projected onto it.
    series: Series | None = None
    if meas is not None and meas.series_uid:
        series = _series(study, meas.series_uid, meas.stack_index)
    if series is None or _labels_for(anatomy, series) is None:
        series = _series(study, anatomy.reference_series_uid, anatomy.reference_stack_index)
    if series is None:
        return None
    labels = _labels_for(anatomy, series)
    same_series = (
        meas is not None
        and meas.series_uid == series.series_uid
        and meas.stack_index == series.stack_index
    )

    point: np.ndarray | None = None  # (k, j, i) on `series`
    if meas is not None and meas.position_lps:
        point = series.lps_to_index(np.asarray(meas.position_lps, dtype=float))
    k: int | None = None
    if same_series and meas is not None and meas.slice_index is not None:
        k = int(meas.slice_index)
    elif point is not None:
        k = round(float(point[0]))
    if (k is None or not 0 <= k < series.shape[0]) and labels is not None:
        k = _best_slice(labels, _structures(statement))
    if k is None or not 0 <= k < series.shape[0]:
        k = series.shape[0] // 2

    img = series.pixels[k].astype(np.float32)
    lab = labels[k] if labels is not None else np.zeros(img.shape, dtype=np.int16)

    # Centre the crop on the measurement, else on the level's disc, else on the slice.
    if point is not None:
        cj, ci = float(point[1]), float(point[2])
    else:
        target = lab == L.disc_label(statement.level) if statement.level else lab == L.CANAL
        if target.any():
            cj, ci = (float(c) for c in ndimage.center_of_mass(target))
        else:
            cj, ci = img.shape[0] / 2, img.shape[1] / 2
    _, row_mm, col_mm = series.spacing
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
            edge = ndimage.binary_dilation(_outline(mask))  # 2 px wide, visible when scaled
            rgb[edge] = COLORS[color]

    pil = Image.fromarray(rgb)
    draw = ImageDraw.Draw(pil)
    sy, sx = OUT_PX / crop.shape[0], OUT_PX / crop.shape[1]  # px per voxel
    caption = f"{statement.level or 'study'}: {statement.text}"
    if meas is not None:
        caption += f" | {meas.name} = {_fmt(meas)}"
    if point is not None:
        py, px = (point[1] - r0) * sy, (point[2] - c0) * sx
        col = COLORS["measurement"]
        if meas is not None and meas.unit == "mm" and meas.value is not None:
            # Draw the distance itself: along the row axis for heights, else across columns.
            vertical = "height" in meas.name
            half = meas.value / 2 / (row_mm if vertical else col_mm) * (sy if vertical else sx)
            if vertical:
                draw.line([(px, py - half), (px, py + half)], fill=col, width=3)
                draw.line([(px - 6, py - half), (px + 6, py - half)], fill=col, width=2)
                draw.line([(px - 6, py + half), (px + 6, py + half)], fill=col, width=2)
            else:
                draw.line([(px - half, py), (px + half, py)], fill=col, width=3)
                draw.line([(px - half, py - 6), (px - half, py + 6)], fill=col, width=2)
                draw.line([(px + half, py - 6), (px + half, py + 6)], fill=col, width=2)
        else:
            draw.ellipse([(px - 6, py - 6), (px + 6, py + 6)], outline=col, width=3)
        if meas is not None:
            draw.text((4, OUT_PX - 16), f"{meas.name} = {_fmt(meas)}", fill=col)
    # 10 mm scale bar, so a reader can judge any distance on the image.
    bar = 10.0 / col_mm * sx
    draw.line([(OUT_PX - 12 - bar, 12), (OUT_PX - 12, 12)], fill=(255, 255, 255), width=2)
    draw.text((OUT_PX - 12 - bar, 16), "10 mm", fill=(255, 255, 255))
    draw.text((4, 4), f"{series.description or series.role} #{k + 1}", fill=(255, 255, 255))

    buf = io.BytesIO()
    pil.save(buf, format="PNG", compress_level=6)
    return KeyImage(
        png=buf.getvalue(), caption=caption, series_uid=series.series_uid, slice_index=k
    )


def _fmt(m: Measurement) -> str:
    if m.value is None:
        return "n/a"
    unit = "" if m.unit in ("", "ratio", "1") else f" {m.unit}"
    return f"{m.value:.3g}{unit}"
