"""Evidence on a single sagittal image: what a measurement says about a statement when the
measurement has no exact truth to be compared with, only radiologists' grades.

On a real 2-D image there is no ground-truth geometry, so the volume error models (residuals
against exact phantom truth, error_model.py) do not apply. Instead image2d_evidence.json holds,
per condition, the distribution of each measurement among the discs of each grade class, fitted
on real images of training patients against their radiologists' gradings (SPIDER): a Student-t
per measurement and class (`Density`). For a statement in `field` with claimed value c:

    L(v) = prod_m p_m(y_m | class(v))      (measurements taken as independent given the class)

over the measurements y_m the level has (a missing one is left out). A value whose class has no
model (too few graded discs: Modic 1 and 3) takes the pooled density of every class, so its
measurements neither favour nor disfavour it. The likelihood of each value is normalised over the
field's values (only ratios matter).

Band verdicts (the `bands` of each condition, chosen on validation patients): the claim is
contradicted when L(c) < contradict_ratio x max_v L(v); an abnormal claim is supported when every
normal value has L(v) < exclude_ratio x max_v L(v) (normal is ruled out), a normal claim when
every abnormal value does; otherwise it is unverifiable. The posterior policy combines L with the
model's probability as for volumes (evidence.combine) and uses this file's `posterior` thresholds,
also for the condition's statements a single image could not measure (`assert_at_unmeasured`).

The file is data, re-derived by `python -m reporter.training.image2d_evidence`; it is validated
when first read (a missing or unknown key is an error naming it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import stats

from reporter.contracts.findings import LEVEL_FIELDS, NORMAL_VALUES, field_values
from reporter.contracts.verdicts import Measurement, WeighedValue
from reporter.errors import ModelFileError

_FILE = "image2d_evidence.json"
_SUFFIXES = ("_upper", "_lower", "_left", "_right")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Density(_Strict):
    """measurement | class ~ loc + scale * t(df), fitted on `n` graded discs."""

    loc: float
    scale: float = Field(gt=0)
    df: float = Field(gt=0)
    n: int = Field(ge=0)

    def logpdf(self, x: float) -> float:
        return float(stats.t.logpdf(x, self.df, self.loc, self.scale))

    def half_width(self, level: float = 0.9) -> float:
        return float(stats.t.ppf(0.5 + level / 2, self.df)) * self.scale


class GradeClass(_Strict):
    """Values of a field graded alike (e.g. mild, moderate and severe narrowing: 'narrowed'),
    with the density of each measurement among discs of that grade."""

    name: str
    values: list[Any] = Field(min_length=1)
    densities: dict[str, Density]


class Bands(_Strict):
    contradict_ratio: float = Field(ge=0, le=1)
    exclude_ratio: float = Field(ge=0, le=1)


class PosteriorCell(_Strict):
    assert_at: float | Literal["never"]
    contradict_below: float = Field(ge=0, le=1)
    # A statement on a single image without its measurement (the structures not found): asserted
    # on the model's probability alone from this posterior of an abnormal value.
    assert_at_unmeasured: float | Literal["never"]


class ConditionModel(_Strict):
    fields: list[str] = Field(min_length=1)
    # Measurement names; "{side}" stands for the field's endplate or side ('upper', 'left').
    measurements: list[str] = Field(min_length=1)
    # Measurements read as their absolute value (a slip either way).
    absolute: list[str] = Field(default_factory=list)
    # Measurement -> level -> the median among normal discs of that level on the fitting
    # patients: the measurement is divided by it (discs are thinner higher up the spine).
    level_reference: dict[str, dict[str, float]] = Field(default_factory=dict)
    classes: list[GradeClass] = Field(min_length=1)
    pooled: dict[str, Density]
    bands: Bands
    posterior: PosteriorCell

    @model_validator(mode="after")
    def _complete(self) -> ConditionModel:
        unknown = sorted(set(self.fields) - set(LEVEL_FIELDS))
        if unknown:
            raise ValueError(f"fields: unknown {unknown}")
        for c in [*self.classes, None]:
            dens = self.pooled if c is None else c.densities
            if set(dens) != set(self.measurements):
                raise ValueError(f"densities of {c.name if c else 'pooled'} must cover exactly "
                                 f"{self.measurements}")  # fmt: skip
        return self


class Image2dEvidenceFile(_Strict):
    version: str
    note: str
    derived_with: str
    fitted_on: str
    chosen_on: str
    rule: str
    conditions: dict[str, ConditionModel]
    validation: dict[str, Any] = Field(default_factory=dict)

    def condition_of(self, field: str) -> tuple[str, ConditionModel] | None:
        for name, c in self.conditions.items():
            if field in c.fields:
                return name, c
        return None


@cache
def _document() -> Image2dEvidenceFile:
    text = (resources.files("reporter.grounding") / _FILE).read_text(encoding="utf-8")
    try:
        return Image2dEvidenceFile.model_validate(json.loads(text))
    except ValueError as exc:
        first = " ".join(str(exc).split())[:300]
        raise ModelFileError(f"reporter/grounding/{_FILE} is invalid: {first}") from None


def document() -> Image2dEvidenceFile:
    return _document()


@cache
def sha256() -> str:
    return hashlib.sha256((resources.files("reporter.grounding") / _FILE).read_bytes()).hexdigest()


def model_of(field: str) -> tuple[str, ConditionModel] | None:
    """(condition, its model) for `field`, None when single images have no model for it."""
    return _document().condition_of(field)


def _side(field: str) -> str:
    return next((s[1:] for s in _SUFFIXES if field.endswith(s)), "")


def feature(
    cond: ConditionModel, template: str, field: str, measures: Mapping[str, Measurement]
) -> tuple[str, float] | None:
    """(measurement name, the value the densities are on) for one of the condition's
    measurements at a level, or None when the level lacks it."""
    name = template.format(side=_side(field))
    m = measures.get(name)
    if m is None or m.value is None or not np.isfinite(m.value):
        return None
    x = abs(float(m.value)) if template in cond.absolute else float(m.value)
    ref = cond.level_reference.get(template)
    if ref is not None:
        level_ref = ref.get(m.level or "", ref.get("default"))
        if not level_ref:
            return None
        x /= level_ref
    return name, x


def class_likelihoods(
    cond: ConditionModel, field: str, measures: Mapping[str, Measurement]
) -> tuple[dict[str, float], list[tuple[str, float, str]]] | None:
    """log L(class) per class name ('*' for the pooled density) and the features used
    [(measurement, value as weighed, template)]; None without any usable measurement."""
    used = [(f[0], f[1], t) for t in cond.measurements if (f := feature(cond, t, field, measures))]
    if not used:
        return None
    logs = {c.name: sum(c.densities[t].logpdf(x) for _, x, t in used) for c in cond.classes}
    logs["*"] = sum(cond.pooled[t].logpdf(x) for _, x, t in used)
    return logs, used


def likelihood(
    field: str, measures: Mapping[str, Measurement]
) -> tuple[dict[Any, float], list[WeighedValue]] | None:
    """L(value) for every value of `field`, normalised to sum 1, and the measurements weighed;
    None when single images have no model for `field` or the level has none of its
    measurements."""
    found = model_of(field)
    if found is None:
        return None
    cname, cond = found
    got = class_likelihoods(cond, field, measures)
    if got is None:
        return None
    logs, used = got
    values = list(field_values(field))
    by_value: dict[Any, float] = {}
    for v in values:
        cls = next((c.name for c in cond.classes if v in c.values), "*")
        by_value[v] = logs[cls]
    top = max(by_value.values())
    raw = {v: float(np.exp(lg - top)) for v, lg in by_value.items()}
    total = sum(raw.values())
    doc = _document()
    weighed = [
        WeighedValue(
            name=name,
            value=round(x, 4),
            unit=measures[name].unit if name in measures else "",
            # The spread of the measurement among normal discs: how far it may wander without
            # any finding.
            half_width_90=round(cond.classes[0].densities[t].half_width(0.9), 4),
            error_model=f"image2d_evidence v{doc.version} {cname}/{t} [grade classes, real 2-D]",
        )
        for name, x, t in used
    ]
    return {v: r / total for v, r in raw.items()}, weighed


Judgement = tuple[
    Literal["supported", "contradicted", "unverifiable"], list[Any], str
]  # kind, allowed values, why (when unverifiable: normal_not_excluded / abnormal_not_excluded)


def judge(field: str, claim: Any, lik: Mapping[Any, float]) -> Judgement:
    """The band verdict of a claim from the likelihoods of its field's values (module doc)."""
    found = model_of(field)
    if found is None:
        raise ValueError(f"Argument 'field' has no single-image model: {field!r}.")
    bands = found[1].bands
    top = max(lik.values())
    ratio = {v: lik[v] / top for v in lik}
    allowed = [v for v in lik if ratio[v] >= bands.contradict_ratio]
    if claim not in allowed:
        return "contradicted", allowed, ""
    normal = NORMAL_VALUES[field]
    others = [v for v in lik if (v in normal) != (claim in normal)]
    if all(ratio[v] < bands.exclude_ratio for v in others):
        return "supported", allowed, ""
    return (
        "unverifiable",
        allowed,
        ("abnormal_not_excluded" if claim in normal else "normal_not_excluded"),
    )
