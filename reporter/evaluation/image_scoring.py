"""Scoring against truth drawn on an input image's pixels (reporter.datasets.image_truth).

The 2-D image path (reporter.ingest.image2d) turns each image to the standard display by the
orientation it *detects* (``study.input_notes[series_uid]["orientation"]["code"]``) and the
anatomy lies on that canonical grid (of the reference series, which may be another image of the
study). `labels_on_image` carries the predicted label map back onto the pixels of the image
file: resampled (nearest) into the grid of that image's series through the affines, then turned
by the detected code (apply_orientation undoes undo_orientation). A wrong detection therefore
lands the prediction in the wrong place, as it would for a user. Pixel (row r, column c) of a
map covers [c, c + 1) x [r, r + 1) in box coordinates, so its centre is at (c + 0.5, r + 0.5).

Per truth kind:

- ``ImageMask`` "named" (lumbar3d-2d): the file shows the mask turned by the known
  `orientation`; the prediction is turned back by it too, both get the true pixel spacing, and
  reporter.evaluation.localisation scores every labelled vertebra and disc (naming, Dice,
  localisation within 10 mm).
- ``ImageMask`` "classes" (spider-slices): Dice per class with the predicted vertebrae and discs
  pooled over levels as the masks are (`pooled_dice`); the canal is label CANAL, and a prediction
  without one (the 2-D path's schematic anatomy draws no canal) has canal Dice 0. Detection
  (`mask_disc_detection`): each disc of the mask (a 4-connected component of label 2 of at least
  `MIN_DISC_PX` pixels) is detected when exactly one predicted disc centre (the centroid of a
  predicted disc label) lies inside the component dilated by `DILATE_PX` pixels (disk).
- ``DiscBoxes`` (sudirman): a disc group is detected when its box contains exactly one predicted
  disc centre; level naming over the three most caudal groups, named L5-S1, L4-L5, L3-L4 from the
  bottom up: the one predicted disc centre in the group's box must carry that name (none, or more
  than one, is wrong).

A study without a report (anatomy None) counts every truth structure as not detected, misnamed,
and Dice 0.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from reporter.contracts import labels as L
from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import LEVELS, VERTEBRAE
from reporter.contracts.study import Study
from reporter.datasets.image_truth import CLASS_VALUES, DiscBoxes, ImageMask
from reporter.evaluation.localisation import score_structures
from reporter.evaluation.scoring import StudyRecord
from reporter.ingest.image2d_nets import apply_orientation, undo_orientation

MIN_DISC_PX = 20
DILATE_PX = 2
NAMED_FROM_BOTTOM: tuple[str, ...] = ("L5-S1", "L4-L5", "L3-L4")


def labels_on_image(anatomy: Anatomy, study: Study, series_index: int) -> np.ndarray:
    """The predicted label map on the pixels of the image file series `series_index` was read
    from (rows, cols)."""
    from reporter.anatomy.importers import resample_nearest

    series = study.series[series_index]
    on_series = resample_nearest(
        np.asarray(anatomy.labels), anatomy.affine, series.shape, series.affine
    )[0]
    code = int(study.input_notes[series.series_uid]["orientation"]["code"])
    return apply_orientation(on_series, code)


def disc_centres(labels: np.ndarray) -> dict[int, tuple[float, float]]:
    """(row, col) centroid of each disc label of a 2-D label map."""
    values = [int(v) for v in np.unique(labels) if L.is_disc(int(v))]
    if not values:
        return {}
    com = ndimage.center_of_mass(np.ones(labels.shape, dtype=np.float32), labels, values)
    return {v: (float(c[0]), float(c[1])) for v, c in zip(values, com, strict=True)}


def score_image_truth(
    record: StudyRecord, truth: ImageMask | DiscBoxes, study: Study | None, anatomy: Anatomy | None
) -> None:
    """Fill `record` from one image's truth (`anatomy` None: the study got no report)."""
    pred = None
    if anatomy is not None and study is not None:
        pred = labels_on_image(anatomy, study, truth.series_index)
        if isinstance(truth, ImageMask):
            want = apply_orientation(truth.mask, truth.orientation).shape
            if pred.shape != want:
                raise ValueError(
                    f"the truth mask {truth.source} ({want}) is not the size of its image "
                    f"({pred.shape})"
                )
    if isinstance(truth, DiscBoxes):
        score_disc_boxes(record, truth, pred)
    elif truth.labels == "named":
        score_named_mask(record, truth, pred)
    else:
        score_class_mask(record, truth, pred)


def _pixel_anatomy(labels: np.ndarray, spacing_mm: float, source: str) -> Anatomy:
    """A one-slice Anatomy in the standard display with square pixels of `spacing_mm`."""
    affine = np.array(
        [
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, spacing_mm, 0.0],
            [0.0, -spacing_mm, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    return Anatomy(
        reference_series_uid="image",
        labels=np.asarray(labels, dtype=np.int16)[None],
        affine=affine,
        source=source,  # type: ignore[arg-type]
    )


def score_named_mask(record: StudyRecord, truth: ImageMask, pred: np.ndarray | None) -> None:
    """Every named structure of the mask, compared on the mask's own frame (the file turned back
    by the known orientation) with its true spacing."""
    if truth.spacing_mm is None:
        raise ValueError("a named mask needs its true pixel spacing to measure distances")
    gt = _pixel_anatomy(truth.mask, truth.spacing_mm, "ground_truth")
    predicted = None
    if pred is not None:
        back = undo_orientation(pred, truth.orientation)
        predicted = _pixel_anatomy(back, truth.spacing_mm, "builtin_segmenter")
    score_structures(record, gt, predicted)


def pooled_dice(truth_mask: np.ndarray, pred: np.ndarray | None) -> dict[str, list[float]]:
    """Dice per class of a "classes" mask against the prediction with vertebrae and discs pooled
    over levels (a class the truth does not hold is not scored)."""
    if pred is None:
        pred = np.zeros_like(truth_mask)
    pred_class = {
        # SPIDER's "vertebra" is bone of any part (body and posterior elements), so the
        # prediction's posterior elements count as vertebra too.
        "vertebra": ((pred >= L.VERTEBRA_BASE) & (pred < L.VERTEBRA_BASE + len(VERTEBRAE)))
        | (pred == L.POSTERIOR_ELEMENTS),
        "disc": (pred >= L.DISC_BASE) & (pred < L.DISC_BASE + len(LEVELS)),
        "canal": pred == L.CANAL,
    }
    out: dict[str, list[float]] = {}
    for cls, value in CLASS_VALUES.items():
        a = truth_mask == value
        if not a.any():
            continue
        b = pred_class[cls]
        out[cls] = [2.0 * float((a & b).sum()) / float(a.sum() + b.sum())]
    return out


def mask_disc_detection(truth_mask: np.ndarray, pred: np.ndarray | None) -> list[bool]:
    """Per disc of the mask (4-connected component of the disc class, >= MIN_DISC_PX pixels):
    exactly one predicted disc centre inside it, dilated by DILATE_PX pixels?"""
    comps, _ = ndimage.label(truth_mask == CLASS_VALUES["disc"])
    centres = list(disc_centres(pred).values()) if pred is not None else []
    pix = [(round(r), round(c)) for r, c in centres]
    yy, xx = np.mgrid[-DILATE_PX : DILATE_PX + 1, -DILATE_PX : DILATE_PX + 1]
    disk = yy**2 + xx**2 <= DILATE_PX**2
    out = []
    for i, size in enumerate(np.bincount(comps.ravel())[1:], start=1):
        if size < MIN_DISC_PX:
            continue
        region = ndimage.binary_dilation(comps == i, structure=disk)
        inside = sum(
            1
            for r, c in pix
            if 0 <= r < region.shape[0] and 0 <= c < region.shape[1] and region[r, c]
        )
        out.append(inside == 1)
    return out


def score_class_mask(record: StudyRecord, truth: ImageMask, pred: np.ndarray | None) -> None:
    record.dice = pooled_dice(truth.mask, pred)
    record.detected.extend(mask_disc_detection(truth.mask, pred))


def _in_box(point: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    y, x = point[0] + 0.5, point[1] + 0.5  # pixel index -> box coordinates (pixel centre)
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


def score_disc_boxes(record: StudyRecord, truth: DiscBoxes, pred: np.ndarray | None) -> None:
    centres = disc_centres(pred) if pred is not None else {}
    inside = [[v for v, rc in centres.items() if _in_box(rc, box)] for box in truth.groups]
    record.detected.extend(len(vs) == 1 for vs in inside)
    # groups are cranio-caudal: the last one is the most caudal disc, taken as L5-S1.
    named = list(zip(reversed(inside), NAMED_FROM_BOTTOM, strict=False))
    correct = sum(1 for vs, name in named if vs == [L.disc_label(name)])
    record.naming = [correct, len(named)]
