"""Affine conventions. Our arrays are (slice, row, col) with an affine to patient LPS (mm);
NIfTI stores an affine to RAS. Converting between the two flips the first two world axes."""

from __future__ import annotations

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def lps_to_nifti_affine(affine_lps: np.ndarray) -> np.ndarray:
    """Affine of an array stored as-is (axes slice,row,col) in a NIfTI file."""
    return LPS_TO_RAS @ np.asarray(affine_lps, dtype=float)


def nifti_to_lps_affine(affine_ras: np.ndarray) -> np.ndarray:
    return LPS_TO_RAS @ np.asarray(affine_ras, dtype=float)
