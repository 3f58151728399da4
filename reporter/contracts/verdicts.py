"""`Measurement` and `Verdict`: what grounding returns for every statement (it never raises)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

VerdictKind = Literal["supported", "contradicted", "unverifiable"]
Unit = Literal["mm", "mm2", "ratio", "%", "deg", ""]
# The slices a measurement was read on: rules that depend on it (a recess read beside the line on
# sagittal slices is looser than one read on an axial block) dispatch on this, not on prose.
ReadOn = Literal["sagittal", "axial", "coronal", "oblique"]


class Measurement(BaseModel):
    """One number and where it was taken, so a reader can find it on the images."""

    name: str  # e.g. "canal_ap_mm", "modic_t1_ratio_upper"
    value: float | None
    unit: Unit = ""
    level: str | None = None
    series_uid: str | None = None
    stack_index: int = 0
    slice_index: int | None = None
    position_lps: list[float] | None = None  # mm
    read_on: ReadOn | None = None
    method: str = ""  # how, in words, for the reader


class Verdict(BaseModel):
    level: str | None  # None for study-level statements
    field: str
    claimed: Any
    verdict: VerdictKind
    reason: str  # one sentence a radiologist can read
    rule: str | None = None  # id in reporter/grounding/rules.json
    supported_values: list[Any] | None = None  # the values the measurements allow
    evidence: list[Measurement] = Field(default_factory=list)
