"""`Measurement` and `Verdict`: what grounding returns for every statement (it never raises)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

VerdictKind = Literal["supported", "contradicted", "unverifiable"]
Unit = Literal["mm", "mm2", "ratio", "%", "deg", ""]
# The slices a measurement was read on: rules that depend on it (a recess read beside the line on
# sagittal slices is looser than one read on an axial block) dispatch on this, not on prose.
ReadOn = Literal["sagittal", "axial", "coronal", "oblique"]
# Why a statement could not be verified (Verdict.unverified_because; the sentence is its reason):
# - level_name_uncertain: the level's name cannot be trusted (volume without the sacrum);
# - level_not_in_view: the level is outside the segmented field of view;
# - not_measured: the checker takes no measurement for this kind of statement;
# - no_image_model: no measurement model validated for this input (a single 2-D image);
# - structure_not_found: the structures the measurement needs were not segmented at the level;
# - label_map_lacks_structure: the label map does not delineate what the measurement needs;
# - implausible_measurement: the measurement is outside what anatomy allows (segmentation failed);
# - every_value_allowed: within the measurement's error every value of the field is possible;
# - normal_not_excluded: the numbers allow the claimed abnormality and normal alike;
# - abnormal_not_excluded: the numbers allow the claimed normal and an abnormality alike;
# - count_unknown: the number of lumbar-type vertebrae could not be established.
UnverifiedReason = Literal[
    "level_name_uncertain",
    "level_not_in_view",
    "not_measured",
    "no_image_model",
    "structure_not_found",
    "label_map_lacks_structure",
    "implausible_measurement",
    "every_value_allowed",
    "normal_not_excluded",
    "abnormal_not_excluded",
    "count_unknown",
]
# The measurement models an Evidence was weighed with: the volume error models (residuals against
# exact phantom truth, error_models.json) or the single-image models (measurements given the
# radiologists' grade on real 2-D images, image2d_evidence.json).
ModelSet = Literal["error_models", "image2d_evidence"]


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
    models: ModelSet = "error_models"


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
    # Set on every unverifiable verdict: why it could not be verified (the reason says it in words).
    unverified_because: UnverifiedReason | None = None
