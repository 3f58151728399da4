"""A tiny hand-built sagittal study with a known label map, for the segmenter's tests.

It stands in for a phantom (same attributes: .study, .anatomy, .meta) so the data pipeline and
the training loop can be tested without the phantom engine and in a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reporter.contracts import labels as lab
from reporter.contracts.anatomy import Anatomy
from reporter.contracts.study import Series, Study

# (name, first row, last row) of each structure along a 96-row sagittal slice, 2 mm pixels.
_BODIES = [("L2", 4, 16), ("L3", 22, 34), ("L4", 40, 52), ("L5", 58, 70), ("S1", 76, 95)]
_DISCS = [("L2-L3", 17, 21), ("L3-L4", 35, 39), ("L4-L5", 53, 57), ("L5-S1", 71, 75)]


def sagittal_affine(spacing: float = 2.0, thickness: float = 4.0) -> np.ndarray:
    """Slices along patient x (right -> left), rows superior -> inferior, columns A -> P."""
    aff = np.eye(4)
    aff[:3, 0] = (thickness, 0.0, 0.0)
    aff[:3, 1] = (0.0, 0.0, -spacing)
    aff[:3, 2] = (0.0, spacing, 0.0)
    aff[:3, 3] = (-10.0, -60.0, 100.0)
    return aff


def label_volume(n_slices: int = 5, rows: int = 96, cols: int = 64) -> np.ndarray:
    labels = np.zeros((n_slices, rows, cols), dtype=np.int16)
    for name, r0, r1 in _BODIES:
        labels[1:-1, r0 : r1 + 1, 10:34] = lab.vertebra_label(name)
    for level, r0, r1 in _DISCS:
        labels[1:-1, r0 : r1 + 1, 11:33] = lab.disc_label(level)
    labels[1:-1, :, 38:46] = lab.CANAL
    labels[0, 30:40, 36:44] = lab.FORAMEN_RIGHT
    labels[-1, 30:40, 36:44] = lab.FORAMEN_LEFT
    return labels


def image_from_labels(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    signal = np.full(int(labels.max()) + 1, 80.0, dtype=np.float32)
    signal[lab.CANAL] = 400.0
    for v in np.unique(labels):
        if lab.is_vertebra(int(v)):
            signal[v] = 150.0
        elif lab.is_disc(int(v)):
            signal[v] = 300.0
    img = signal[labels] + rng.normal(0, 5, labels.shape)
    return np.clip(img, 0, None).astype(np.float32)


@dataclass
class FakePhantom:
    study: Study
    anatomy: Anatomy
    meta: dict = field(default_factory=dict)


def fake_phantom(seed: int = 0, site: str = "site-a") -> FakePhantom:
    labels = label_volume()
    affine = sagittal_affine()
    series = Series(
        series_uid=f"1.2.826.0.1.3680043.8.498.{seed + 1}",
        study_uid="1.2.826.0.1.3680043.8.498.999",
        plane="sagittal",
        weighting="T2",
        role="sag_t2",
        pixels=image_from_labels(labels, seed),
        affine=affine,
    )
    study = Study(study_uid=series.study_uid, series=[series])
    anatomy = Anatomy(
        reference_series_uid=series.series_uid,
        labels=labels,
        affine=affine,
        source="ground_truth",
    )
    return FakePhantom(study, anatomy, {"seed": seed, "site": site})
