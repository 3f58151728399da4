"""What `inspect` shows: every series found, how it was classified, and what it is used for."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from reporter.contracts.study import Study


class SeriesRow(BaseModel):
    """One geometric stack of a usable series, or one set-aside series."""

    model_config = ConfigDict(extra="forbid")

    series_uid: str
    stack_index: int = 0
    series_number: int | None = None
    description: str = ""
    plane: str | None = None
    weighting: str | None = None
    n_slices: int = 0
    spacing: list[float] | None = None  # mm along (slice, row, col)
    matrix: list[int] | None = None  # rows, cols
    vendor: str = ""
    field_strength: float | None = None
    role: str | None = None
    usable: bool
    problem: str | None = None


class Inventory(BaseModel):
    """A scanned study folder: the Study built from it (None when refused) and why not."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    source: str
    study: Study | None = None
    rows: list[SeriesRow] = Field(default_factory=list)
    n_files: int = 0
    n_files_skipped: int = 0  # not DICOM
    warnings: list[str] = Field(default_factory=list)
    refusal: str | None = None  # the one-line reason the study cannot be used

    @property
    def usable(self) -> bool:
        return self.refusal is None and self.study is not None
