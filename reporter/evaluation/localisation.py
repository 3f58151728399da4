"""Named structures of a truth label map against the prediction's: naming, Dice and localisation.

For formats whose masks name every structure (lumbar3d volumes and their mid-sagittal slices),
every labelled vertebra and disc of the truth is scored:

- level naming (reporter.evaluation.scoring.level_naming with vertebrae): the prediction carries
  the structure's label at most of its voxels;
- Dice against the predicted structure of the same name (scoring.dice_scores);
- localisation: the truth structure's centroid against the centroid of the predicted structure
  with the same name, in mm through each map's affine (patient coordinates, so the two maps may
  lie on different grids). The structure is **detected** when the prediction has a structure of
  that name and the two centroids lie within `DETECT_TOLERANCE_MM` (10 mm). Why 10 mm: it is a
  quarter of the lumbar disc-to-disc step (about 37 mm, reporter.ingest.image2d.DISC_STEP_MM), so a
  structure named one level off (about one step away) is never counted as detected, and it is
  about the height of a lumbar disc and a little under half that of a lumbar vertebral body (the
  centroid must fall in the middle part of the right structure, not merely touch it). The
  distance of every structure found by name enters `localisation.median_error_mm`, detected or
  not; a structure the prediction lacks is not detected and has no distance.

A study without a report (`predicted` None) keeps its truth structures: all misnamed, Dice 0,
not detected.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from reporter.contracts import labels as L
from reporter.contracts.anatomy import Anatomy
from reporter.evaluation.scoring import StudyRecord, dice_scores, level_naming

DETECT_TOLERANCE_MM = 10.0


def named_values(labels: np.ndarray) -> list[int]:
    """The vertebra and disc labels (reporter.contracts.labels) a label map holds."""
    return [int(v) for v in np.unique(labels) if L.is_vertebra(int(v)) or L.is_disc(int(v))]


def centroids_mm(
    labels: np.ndarray, affine: np.ndarray, values: list[int]
) -> dict[int, np.ndarray]:
    """Centroid (patient mm, through `affine`: voxel (k, j, i, 1) -> mm) of each label in
    `values` that the map holds."""
    labels = np.asarray(labels)
    present = [v for v in values if (labels == v).any()]
    if not present:
        return {}
    idx = ndimage.center_of_mass(np.ones(labels.shape, dtype=np.float32), labels, present)
    aff = np.asarray(affine, dtype=float)
    return {
        v: aff[:3, :3] @ np.asarray(c, dtype=float) + aff[:3, 3]
        for v, c in zip(present, idx, strict=True)
    }


def structure_errors(truth: Anatomy, predicted: Anatomy | None) -> list[tuple[int, float | None]]:
    """(label, centroid distance in mm or None where the prediction lacks that structure) for
    every labelled vertebra and disc of the truth."""
    values = named_values(np.asarray(truth.labels))
    gt = centroids_mm(truth.labels, truth.affine, values)
    pred = {} if predicted is None else centroids_mm(predicted.labels, predicted.affine, values)
    return [(v, float(np.linalg.norm(gt[v] - pred[v])) if v in pred else None) for v in values]


def score_structures(record: StudyRecord, truth: Anatomy, predicted: Anatomy | None) -> None:
    """Naming, Dice and localisation of every labelled vertebra and disc of `truth` into
    `record` (`predicted` None: the study got no report)."""
    record.naming = level_naming(truth, predicted, vertebrae=True)
    record.dice = dice_scores(truth, predicted)
    for _, err in structure_errors(truth, predicted):
        record.detected.append(err is not None and err <= DETECT_TOLERANCE_MM)
        if err is not None:
            record.localisation_mm.append(round(err, 3))
