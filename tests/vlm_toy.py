"""A small hand-built Study + Anatomy for the VLM tests (no phantom engine needed).

Sagittal grid: 13 slices of 4 mm (x, patient left), 96 x 96 pixels of 2.5 mm; rows run
inferior, columns posterior. Six discs T12-L1..L5-S1 stacked 30 mm apart, a canal behind them,
foramina lateral; one axial T2 stack of 5 slices through L4-L5 only.
"""

from __future__ import annotations

import numpy as np

from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import lumbar_levels
from reporter.contracts.labels import (
    CANAL,
    FORAMEN_LEFT,
    FORAMEN_RIGHT,
    disc_label,
    vertebra_label,
)
from reporter.contracts.study import Series, Study

LEVELS = lumbar_levels(5)


def _sag_affine() -> np.ndarray:
    a = np.eye(4)
    a[:3, 0] = (4.0, 0.0, 0.0)  # slice step: patient left
    a[:3, 1] = (0.0, 0.0, -2.5)  # row step: inferior
    a[:3, 2] = (0.0, 2.5, 0.0)  # column step: posterior
    a[:3, 3] = (-24.0, -120.0, 120.0)
    return a


def toy_labels() -> np.ndarray:
    lab = np.zeros((13, 96, 96), np.int16)
    names = ["T12", "L1", "L2", "L3", "L4", "L5", "S1"]
    for i, name in enumerate(names):
        top = 4 + i * 12
        lab[1:12, top : top + 9, 30:46] = vertebra_label(name)
        if i < len(LEVELS):
            lab[1:12, top + 9 : top + 12, 30:46] = disc_label(LEVELS[i])
            lab[0:3, top + 6 : top + 12, 50:54] = FORAMEN_RIGHT
            lab[10:13, top + 6 : top + 12, 50:54] = FORAMEN_LEFT
    lab[4:9, :, 48:54] = np.where(lab[4:9, :, 48:54] == 0, CANAL, lab[4:9, :, 48:54])
    return lab


def _image(labels: np.ndarray, rng: np.random.Generator, t1: bool) -> np.ndarray:
    lut = np.full(64, 200.0)
    lut[0] = 20.0
    lut[CANAL] = 300.0 if t1 else 900.0
    for v in range(20, 31):
        lut[v] = 500.0 if t1 else 350.0
    for v in range(40, 52):
        lut[v] = 300.0 if t1 else 700.0
    img = lut[labels] + rng.normal(0, 10, labels.shape)
    return img.astype(np.float32)


def toy_study(axial: bool = True, t1: bool = True, seed: int = 0) -> tuple[Study, Anatomy]:
    rng = np.random.default_rng(seed)
    labels = toy_labels()
    aff = _sag_affine()
    series = [
        Series(series_uid="1.2.3.1", study_uid="1.2.3", plane="sagittal", weighting="T2",
               role="sag_t2", pixels=_image(labels, rng, False), affine=aff),
    ]  # fmt: skip
    if t1:
        series.append(
            Series(series_uid="1.2.3.2", study_uid="1.2.3", plane="sagittal", weighting="T1",
                   role="sag_t1", pixels=_image(labels, rng, True), affine=aff)
        )  # fmt: skip
    if axial:
        # Through the L4-L5 disc (rows 4 + 4*12 + 9 .. +12 of the sagittal grid).
        z = 120.0 - 2.5 * (4 + 4 * 12 + 10.5)
        ax = np.eye(4)
        ax[:3, 0] = (0.0, 0.0, -4.0)
        ax[:3, 1] = (0.0, 1.0, 0.0)
        ax[:3, 2] = (1.0, 0.0, 0.0)
        ax[:3, 3] = (-64.0, -100.0, z + 8.0)
        pix = rng.normal(300, 20, (5, 128, 128)).astype(np.float32)
        series.append(
            Series(series_uid="1.2.3.3", study_uid="1.2.3", plane="axial", weighting="T2",
                   role="ax_t2", pixels=pix, affine=ax)
        )  # fmt: skip
    study = Study(study_uid="1.2.3", series=series)
    anatomy = Anatomy(
        reference_series_uid="1.2.3.1",
        labels=labels,
        affine=aff,
        source="ground_truth",
        vertebrae=["T12", "L1", "L2", "L3", "L4", "L5", "S1"],
        levels=list(LEVELS),
        lumbar_vertebrae=5,
    )
    return study, anatomy
