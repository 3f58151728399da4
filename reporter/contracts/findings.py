"""The finding schema: what a lumbar spine MRI report may state, per study and per disc level.

Well-formedness lives here; truth lives in `reporter.grounding`. Every field is a `Finding`: a value
with an optional probability, or `not_assessable` with a reason. Strict models: unknown fields,
duplicate or out-of-order levels are rejected with a message that names the field.
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Generic, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = "1.0"

Severity = Literal["none", "mild", "moderate", "severe"]
Lee = Literal[0, 1, 2, 3]
Pfirrmann = Literal[1, 2, 3, 4, 5]
Modic = Literal[0, 1, 2, 3]
Meyerding = Literal[0, 1, 2, 3, 4]
HerniationType = Literal["none", "bulge", "protrusion", "extrusion"]
HerniationZone = Literal[
    "central",
    "paracentral_left",
    "paracentral_right",
    "foraminal_left",
    "foraminal_right",
    "extraforaminal_left",
    "extraforaminal_right",
]
SlipDirection = Literal["antero", "retro"]
Transitional = Literal["none", "L6", "sacralized_L5", "lumbarized_S1"]
Alignment = Literal["normal", "reduced_lordosis", "increased_lordosis", "scoliosis"]

SEVERITIES: tuple[str, ...] = get_args(Severity)

# Vertebrae in cranio-caudal order. L6 exists only with six lumbar-type vertebrae.
VERTEBRAE: tuple[str, ...] = (
    "T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "L6", "S1",
)  # fmt: skip

# Disc levels in cranio-caudal order. The lumbosacral disc is L4-S1, L5-S1 or L6-S1 depending on
# how many lumbar-type vertebrae the study has (4, 5 or 6); T9-T10..T11-T12 exist so that
# datasets grading lower thoracic discs (SPIDER) convert without loss.
LEVELS: tuple[str, ...] = (
    "T9-T10", "T10-T11", "T11-T12", "T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5",
    "L4-S1", "L5-L6", "L5-S1", "L6-S1",
)  # fmt: skip
STANDARD_LEVELS: tuple[str, ...] = ("T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")


def level_name(upper: str, lower: str) -> str:
    return f"{upper}-{lower}"


def split_level(level: str) -> tuple[str, str]:
    upper, lower = level.split("-")
    return upper, lower


def lumbar_levels(n_lumbar: int = 5, include_t12: bool = True) -> list[str]:
    """Disc levels of a spine with `n_lumbar` lumbar-type vertebrae, from T12-L1 down."""
    if n_lumbar not in (4, 5, 6):
        raise ValueError(f"Argument 'n_lumbar' must be 4, 5 or 6, not {n_lumbar!r}.")
    names = ["T12"] + [f"L{i}" for i in range(1, n_lumbar + 1)] + ["S1"]
    levels = [level_name(a, b) for a, b in itertools.pairwise(names)]
    return levels if include_t12 else levels[1:]


T = TypeVar("T")


class Finding(BaseModel, Generic[T]):
    """One statement: a value with its probability, or `not_assessable` with the reason."""

    model_config = ConfigDict(extra="forbid", frozen=False)

    value: T | None = None
    probability: float | None = Field(default=None, ge=0.0, le=1.0)
    not_assessable: str | None = None

    @model_validator(mode="after")
    def _value_xor_reason(self) -> Finding[T]:
        if self.not_assessable is not None:
            if self.value is not None:
                raise ValueError("a finding with 'not_assessable' must not carry a 'value'")
            if not self.not_assessable.strip():
                raise ValueError("'not_assessable' must give a reason")
        elif self.value is None:
            raise ValueError("a finding needs a 'value' or a 'not_assessable' reason")
        return self

    @property
    def assessed(self) -> bool:
        return self.not_assessable is None


class HerniationFinding(Finding[HerniationType]):
    # None with a focal herniation means the source did not record where (e.g. SPIDER).
    zone: HerniationZone | None = None

    @model_validator(mode="after")
    def _zone_only_with_focal_herniation(self) -> HerniationFinding:
        if self.value in ("none", None) and self.zone is not None:
            raise ValueError("'zone' is given but no herniation is stated")
        return self


class SpondylolisthesisFinding(Finding[Meyerding]):
    """Meyerding grade (0 = none) and direction of the upper vertebra relative to the lower."""

    direction: SlipDirection | None = None

    @model_validator(mode="after")
    def _direction_only_with_slip(self) -> SpondylolisthesisFinding:
        if self.value == 0 and self.direction is not None:
            raise ValueError("'direction' is given but grade 0 means no slip")
        return self


class LevelFindings(BaseModel):
    """Findings at one disc level. Upper endplate = inferior endplate of the vertebra above."""

    model_config = ConfigDict(extra="forbid")

    level: str
    pfirrmann: Finding[Pfirrmann]
    disc_narrowing: Finding[Severity]
    disc_bulging: Finding[bool]
    herniation: HerniationFinding
    canal_stenosis: Finding[Severity]
    foraminal_stenosis_left: Finding[Lee]
    foraminal_stenosis_right: Finding[Lee]
    subarticular_stenosis_left: Finding[Severity]
    subarticular_stenosis_right: Finding[Severity]
    modic_upper: Finding[Modic]
    modic_lower: Finding[Modic]
    endplate_defect_upper: Finding[bool]
    endplate_defect_lower: Finding[bool]
    spondylolisthesis: SpondylolisthesisFinding

    @field_validator("level")
    @classmethod
    def _known_level(cls, v: str) -> str:
        if v not in LEVELS:
            raise ValueError(f"unknown level {v!r}; expected one of {', '.join(LEVELS)}")
        return v

    @model_validator(mode="after")
    def _bulge_consistent(self) -> LevelFindings:
        if self.herniation.value == "bulge" and self.disc_bulging.value is False:
            raise ValueError("'herniation' says bulge but 'disc_bulging' says false")
        return self


class StudyLevelFindings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lumbar_vertebrae: int | None = Field(default=None, ge=4, le=6)
    transitional: Finding[Transitional]
    alignment: Finding[Alignment]


class StudyFindings(BaseModel):
    """The whole structured finding set of one study."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    study: StudyLevelFindings
    levels: list[LevelFindings]

    @field_validator("levels")
    @classmethod
    def _levels_ordered_and_unique(cls, levels: list[LevelFindings]) -> list[LevelFindings]:
        seen: set[str] = set()
        last_upper = -1
        for i, lf in enumerate(levels):
            if lf.level in seen:
                raise ValueError(f"levels[{i}].level: duplicate level {lf.level!r}")
            seen.add(lf.level)
            upper, _lower = split_level(lf.level)
            rank = VERTEBRAE.index(upper)
            if rank <= last_upper:
                raise ValueError(
                    f"levels[{i}].level: {lf.level!r} is out of order (levels run cranio-caudal)"
                )
            if i > 0 and split_level(levels[i - 1].level)[1] == "S1":
                raise ValueError(f"levels[{i}].level: {lf.level!r} follows the lumbosacral disc")
            last_upper = rank
        return levels

    def level(self, name: str) -> LevelFindings | None:
        return next((lf for lf in self.levels if lf.level == name), None)

    def to_json(self, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent, exclude_none=True)


# Field names of LevelFindings that are statements, in the order reports and the decoder use.
LEVEL_FIELDS: tuple[str, ...] = tuple(f for f in LevelFindings.model_fields if f != "level")


# What each field may say, for decoders and converters (driven by the pydantic annotations).
def field_values(field: str) -> tuple[Any, ...]:
    ann = LevelFindings.model_fields[field].annotation
    value_ann = ann.model_fields["value"].annotation  # type: ignore[union-attr]
    inner = next(a for a in get_args(value_ann) if a is not type(None))
    if inner is bool:
        return (False, True)
    return get_args(inner)


NORMAL_VALUES: dict[str, set[Any]] = {
    "pfirrmann": {1, 2},
    "disc_narrowing": {"none"},
    "disc_bulging": {False},
    "herniation": {"none"},
    "canal_stenosis": {"none"},
    "foraminal_stenosis_left": {0},
    "foraminal_stenosis_right": {0},
    "subarticular_stenosis_left": {"none"},
    "subarticular_stenosis_right": {"none"},
    "modic_upper": {0},
    "modic_lower": {0},
    "endplate_defect_upper": {False},
    "endplate_defect_lower": {False},
    "spondylolisthesis": {0},
}


# One typical value of a normal adult disc level per field (Pfirrmann 2 is the usual adult
# grade); for building normal findings in tests, examples and phantoms' defaults.
TYPICAL_NORMAL: dict[str, Any] = {
    "pfirrmann": 2,
    "disc_narrowing": "none",
    "disc_bulging": False,
    "herniation": "none",
    "canal_stenosis": "none",
    "foraminal_stenosis_left": 0,
    "foraminal_stenosis_right": 0,
    "subarticular_stenosis_left": "none",
    "subarticular_stenosis_right": "none",
    "modic_upper": 0,
    "modic_lower": 0,
    "endplate_defect_upper": False,
    "endplate_defect_lower": False,
    "spondylolisthesis": 0,
}


# Study-level statements (StudyLevelFindings) and their normal values.
STUDY_FIELDS: tuple[str, ...] = tuple(StudyLevelFindings.model_fields)
STUDY_NORMAL_VALUES: dict[str, set[Any]] = {
    "lumbar_vertebrae": {5},
    "transitional": {"none"},
    "alignment": {"normal"},
}


def study_field_values(field: str) -> tuple[Any, ...]:
    """What a study-level field may say: a Finding's literal values, or the integer range of
    `lumbar_vertebrae` (its ge / le bounds)."""
    info = StudyLevelFindings.model_fields[field]
    if field == "lumbar_vertebrae":
        bounds = {type(m).__name__: m for m in info.metadata}
        return tuple(range(bounds["Ge"].ge, bounds["Le"].le + 1))
    value_ann = info.annotation.model_fields["value"].annotation  # type: ignore[union-attr]
    return get_args(next(a for a in get_args(value_ann) if a is not type(None)))


def is_abnormal(field: str, value: Any) -> bool:
    """A positive statement: a field with an abnormal value (ARCHITECTURE.md, hallucination);
    level fields and study-level fields alike."""
    normal = NORMAL_VALUES[field] if field in NORMAL_VALUES else STUDY_NORMAL_VALUES[field]
    return value is not None and value not in normal


def json_schema() -> dict[str, Any]:
    schema = StudyFindings.model_json_schema()
    schema["$id"] = f"https://spine-reporter.local/schema/study-findings/{SCHEMA_VERSION}"
    schema["title"] = "StudyFindings"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True)


def not_assessable_level(level: str, reason: str) -> LevelFindings:
    """A level of which nothing can be said (outside the field of view, series missing)."""
    return LevelFindings.model_validate(
        {"level": level, **{f: {"not_assessable": reason} for f in LEVEL_FIELDS}}
    )
