"""A phantom series as complete DICOM datasets (headers + pixel data), for every writer of
phantoms (our folders, the RSNA 2024 layout)."""

from __future__ import annotations

import copy

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from reporter.contracts.study import Series
from reporter.synth.headers import file_meta


def stored_values(series: Series) -> np.ndarray:
    """The stored integers behind `series.pixels` (pixels = stored x RescaleSlope)."""
    slope = float(series.headers[0].RescaleSlope) if series.headers else 1.0
    return np.rint(series.pixels / slope).astype(np.uint16)


def dicom_datasets(series: Series, transfer_syntax: str = ExplicitVRLittleEndian) -> list[Dataset]:
    """Complete datasets (headers + pixel data) for one series stack."""
    stored = stored_values(series)
    out = []
    for k, head in enumerate(series.headers):
        ds = copy.deepcopy(head)
        ds.file_meta = file_meta(ds, transfer_syntax)
        ds.PixelData = stored[k].tobytes()
        out.append(ds)
    return out
