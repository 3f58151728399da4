"""The shape of rules.json, validated when it is first read: a missing or unknown key is an error
naming it, never a threshold silently taken from code or ignored.

Each rule keeps its published `source` beside its numbers. `measurement_noise.<anatomy source>`
holds overrides of rule keys for label maps noisier than ground truth; an override of a key the
base rule does not have is an error too.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

Interval = tuple[float | None, float | None]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IntervalGrades(_Strict):
    measurement: str
    unit: str
    grades: dict[str, Interval]
    tolerance: float


class CanalFallback(IntervalGrades):
    pass


class CanalRule(IntervalGrades):
    fallback: CanalFallback
    source: str


class SubarticularRule(IntervalGrades):
    tolerance_note: str
    # Read on sagittal slices beside the recess line rather than on an axial block through it.
    sagittal_tolerance: float
    sagittal_tolerance_note: str
    source: str


class ForaminalRule(_Strict):
    measurement: str
    unit: str
    definition: str
    root_collapse_ratio: float
    sector_fat_fraction_lost: float
    margin: float
    margin_note: str
    source: str


class PfirrmannRule(IntervalGrades):
    collapse_height_index: float
    # A collapsed disc (height index under `collapse_height_index`) this dark may be grade 5.
    collapse_max_ratio: float
    source: str


class NarrowingRule(IntervalGrades):
    plausible: tuple[float, float]
    plausible_note: str
    expected_height_to_body_depth: dict[str, float]
    expected_height_note: str
    source: str


class ModicRule(_Strict):
    measurement: list[str]
    unit: str
    low: float
    high: float
    plausible_min_ratio: float
    plausible_note: str
    patterns: dict[str, Any]
    source: str


class ListhesisRule(IntervalGrades):
    plausible_max_percent: float
    plausible_note: str
    source: str


class HerniationRule(_Strict):
    measurement: list[str]
    definition: str
    min_extension_mm: float
    bulge_min_circumference_deg: float
    tolerance_mm: float
    circumference_tolerance_deg: float
    # Share of sagittal slices across the posterior wall that must reach out for a bulge to be
    # possible whatever the focal angle.
    broad_fraction_min: float
    # Disc material this far from the midline (mm) has a side the claim's zone must agree with.
    side_min_lateral_mm: float
    side_note: str
    source: str


class LevelExistsRule(_Strict):
    source: str


class Rules(_Strict):
    canal_stenosis: CanalRule
    subarticular_stenosis: SubarticularRule
    foraminal_stenosis: ForaminalRule
    pfirrmann: PfirrmannRule
    disc_narrowing: NarrowingRule
    modic: ModicRule
    spondylolisthesis: ListhesisRule
    herniation: HerniationRule
    level_exists: LevelExistsRule


class Verification(_Strict):
    positive_requires_normal_excluded: bool
    note: str


class NoiseProfile(_Strict):
    bias: dict[str, float]
    bias_note: str
    rules: dict[str, dict[str, Any]]
    error_on_validation: str


class RulesFile(_Strict):
    version: str
    note: str
    rules: Rules
    verification: Verification
    measurement_noise: dict[str, Any]

    @model_validator(mode="after")
    def _noise_overrides_known_keys(self) -> RulesFile:
        base = self.rules.model_dump()
        for source, profile in self.measurement_noise.items():
            if source == "note":
                continue
            NoiseProfile.model_validate(profile)
            for rule, over in profile.get("rules", {}).items():
                if rule not in base:
                    raise ValueError(f"measurement_noise.{source}.rules: unknown rule {rule!r}")
                unknown = sorted(set(over) - set(base[rule]))
                if unknown:
                    raise ValueError(
                        f"measurement_noise.{source}.rules.{rule}: unknown key(s) {unknown}"
                    )
        return self
