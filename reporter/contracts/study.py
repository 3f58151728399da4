"""`Study` and `Series`: what ingest builds once; nothing downstream reads DICOM files again.

Geometry convention (used everywhere in the package): `Series.pixels` has shape
(n_slices, rows, cols) and `Series.affine` maps array indices (k, j, i, 1) -- slice, row, column --
to patient LPS coordinates in mm. So column 0 of the affine is the slice step (normal x spacing),
column 1 the row step (IOP column cosine x row spacing), column 2 the column step (IOP row cosine x
column spacing) and column 3 the position of voxel (0, 0, 0) (IPP of the first slice).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

Plane = Literal["sagittal", "axial", "coronal", "oblique"]
Weighting = Literal["T1", "T2", "STIR", "other"]
Role = Literal["sag_t1", "sag_t2", "sag_stir", "ax_t2", "ax_t1", "localizer", "other"]


class Series(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    series_uid: str
    study_uid: str
    frame_of_reference_uid: str | None = None
    series_number: int | None = None
    description: str = ""
    plane: Plane
    weighting: Weighting
    role: Role
    # One geometric stack; an angled axial block of a multi-block series is its own Series with
    # `stack_index` > 0 and the same series_uid.
    stack_index: int = 0
    vendor: str = ""
    model_name: str = ""
    field_strength: float | None = None
    repetition_time: float | None = None
    echo_time: float | None = None
    inversion_time: float | None = None
    slice_thickness: float | None = None
    pixels: np.ndarray = Field(repr=False)
    affine: np.ndarray = Field(repr=False)
    sop_class_uid: str = ""
    sop_instance_uids: list[str] = Field(default_factory=list)
    # Frame numbers (1-based) for enhanced multi-frame objects; empty for single-frame series.
    frame_numbers: list[int] = Field(default_factory=list)
    # Pixel-free copies of the source headers, one per slice, for SR/SEG references (highdicom).
    headers: list[Any] = Field(default_factory=list, repr=False)
    transfer_syntax_uid: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.pixels.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Step in mm along (slice, row, column)."""
        return tuple(float(np.linalg.norm(self.affine[:3, c])) for c in range(3))  # type: ignore[return-value]

    @property
    def normal(self) -> np.ndarray:
        return self.affine[:3, 0] / np.linalg.norm(self.affine[:3, 0])

    def index_to_lps(self, idx: np.ndarray) -> np.ndarray:
        """(..., 3) array of (k, j, i) indices -> (..., 3) LPS mm."""
        idx = np.asarray(idx, dtype=float)
        return idx @ self.affine[:3, :3].T + self.affine[:3, 3]

    def lps_to_index(self, lps: np.ndarray) -> np.ndarray:
        """(..., 3) LPS mm -> (..., 3) fractional (k, j, i) indices."""
        lps = np.asarray(lps, dtype=float)
        inv = np.linalg.inv(self.affine)
        return lps @ inv[:3, :3].T + inv[:3, 3]


class SetAside(BaseModel):
    """A series that was found but not used, and why (never silently dropped)."""

    series_uid: str
    description: str = ""
    reason: str
    usable: bool = False
    plane: Plane | None = None
    weighting: Weighting | None = None


class Study(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    study_uid: str
    source: str = ""  # folder or file the study was read from
    accession_hash: str | None = None  # sha256 prefix; never the accession itself
    patient_sex: str | None = None
    patient_age: float | None = None  # years
    study_date: str | None = None
    series: list[Series]
    set_aside: list[SetAside] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    # What the reader must see before any finding: a key series that could not be used or was
    # used only in part, text that could not be decoded. Shown at the top of every report.
    limitations: list[str] = Field(default_factory=list)
    n_files_skipped: int = 0  # non-DICOM files found in the folder
    # How inputs without full DICOM geometry were interpreted, keyed by series_uid (2-D images:
    # detected orientation, pixel-spacing estimate and method; see reporter.ingest.image2d).
    input_notes: dict[str, Any] = Field(default_factory=dict)

    def get(self, role: Role) -> Series | None:
        """The series serving `role` (the first stack for multi-block axials)."""
        return next((s for s in self.series if s.role == role), None)

    def all(self, role: Role) -> list[Series]:
        return [s for s in self.series if s.role == role]
