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


class WeighedValue(BaseModel):
    """One measurement as the evidence weighs it: its value and the spread of its error model."""

    name: str
    value: float
    unit: Unit = ""
    half_width_90: float  # the truth lies within value - bias +- this, 90 % of the time
    error_model: str  # id in reporter/grounding/error_models.json


class Evidence(BaseModel):
    """How strongly the measurements support a statement (reporter/grounding/evidence.py): the
    likelihood of each value of the field given the measurements and their error models, the
    likelihood ratio of the claimed value against the alternatives, and the posterior after
    combining it with the model's calibrated probability (the prior)."""

    measured: list[WeighedValue] = Field(default_factory=list)
    error_models_sha256: str = ""
    likelihood: dict[str, float] = Field(default_factory=dict)  # value -> P(measurements | value)
    prior: float  # the model's probability of the claimed value
    likelihood_ratio: float  # claimed value against the prior-weighted alternatives
    posterior: float  # P(claimed value | model, measurements)
    posterior_abnormal: float  # P(any abnormal value | model, measurements)


class Verdict(BaseModel):
    level: str | None  # None for study-level statements
    field: str
    claimed: Any
    verdict: VerdictKind
    reason: str  # one sentence a radiologist can read
    rule: str | None = None  # id in reporter/grounding/rules.json
    supported_values: list[Any] | None = None  # the values the measurements allow
    evidence: list[Measurement] = Field(default_factory=list)
    # The measurements weighed with their error models (None: no usable measurement or a field
    # the checker does not measure).
    weight: Evidence | None = None
    # Under the posterior policy the verdict follows the posterior; the verdict of the tolerance
    # bands of rules.json is kept here for comparison (None under the band policy).
    band_verdict: VerdictKind | None = None
