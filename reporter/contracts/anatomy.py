"""The `Anatomy` contract: a label map in the geometry of a reference series, with named levels."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from reporter.contracts.findings import Transitional

AnatomySource = Literal["ground_truth", "builtin_segmenter", "nifti", "dicom_seg"]


class Anatomy(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    # The series whose grid `labels` shares (shape and affine, see reporter.contracts.study).
    reference_series_uid: str
    reference_stack_index: int = 0
    labels: np.ndarray = Field(
        repr=False
    )  # int16 (n_slices, rows, cols), reporter.contracts.labels
    affine: np.ndarray = Field(repr=False)
    source: AnatomySource
    source_detail: str = ""  # e.g. segmenter weights sha256 or the imported file's name
    # Vertebrae and disc levels present, cranio-caudal, by name (e.g. "L4", "L4-L5").
    vertebrae: list[str] = Field(default_factory=list)
    levels: list[str] = Field(default_factory=list)
    lumbar_vertebrae: int | None = None
    transitional: Transitional = "none"
    enumeration_confidence: float = 1.0
    # True when the sacrum is outside the FOV (or not found): names are counted from somewhere
    # else and level-specific claims become unverifiable rather than guessed.
    naming_uncertain: bool = False
    naming_convention: str = "counted from the sacrum upward"
    missing: list[str] = Field(default_factory=list)  # structures expected but outside the FOV
    # Optional label maps on other stacks (axial blocks), keyed by "series_uid#stack_index".
    extra_labels: dict[str, np.ndarray] = Field(default_factory=dict, repr=False)
