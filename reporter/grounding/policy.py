"""The report policies and the posterior policy's thresholds (evidence_policy.json, data chosen
on validation phantoms by `python -m reporter.training.evidence_policy`).

Policies (what the report asserts of a positive statement):
- "bands": asserted only when the tolerance bands of rules.json rule out normal; contradicted
  withheld; the rest unconfirmed (the band checker's verdicts);
- "contradicted-only": everything the bands do not contradict is asserted;
- "posterior": the verdict follows the evidence-weighted posterior (reporter.grounding.evidence):
  contradicted when a measured statement's posterior is below its condition's
  `contradict_below` (or its level does not exist), supported when measured and not
  contradicted, unverifiable when nothing was measured; a positive statement is asserted when it
  is not contradicted and its posterior of an abnormal value is at least the `assert_at` of its
  condition and evidence state (measured / unverifiable); "never" keeps every such claim
  unconfirmed. The rest are unconfirmed.

Conditions (`condition(field)`): a field without its side or endplate suffix (the left and right
foramina share one threshold, as do the upper and lower Modic endplates).

A statement weighed with the single-image grade models (Evidence.models "image2d_evidence", a
2-D image) takes its condition's posterior thresholds from image2d_evidence.json, chosen on real
validation patients; every other one those of this file.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reporter.contracts.findings import LEVEL_FIELDS, StudyFindings, is_abnormal
from reporter.contracts.verdicts import Evidence, Verdict
from reporter.errors import ModelFileError, UsageError
from reporter.grounding import image2d_evidence
from reporter.grounding.evidence import prior_only

Policy = Literal["bands", "contradicted-only", "posterior"]
POLICIES: tuple[str, ...] = ("bands", "contradicted-only", "posterior")
_FILE = "evidence_policy.json"


_SUFFIXES = ("_left", "_right", "_upper", "_lower")
STATES: tuple[str, ...] = ("measured", "unverifiable")


def condition(field: str) -> str:
    """The condition a level field's thresholds belong to: the field without its side or
    endplate suffix."""
    for suffix in _SUFFIXES:
        if field.endswith(suffix):
            return field[: -len(suffix)]
    return field


CONDITIONS: tuple[str, ...] = tuple(dict.fromkeys(condition(f) for f in LEVEL_FIELDS))

AssertAt = float | Literal["never"]


class MeasuredThresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    assert_at: AssertAt
    contradict_below: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _in_range(self) -> MeasuredThresholds:
        _check_assert_at(self.assert_at)
        return self


class UnverifiableThresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    assert_at: AssertAt

    @model_validator(mode="after")
    def _in_range(self) -> UnverifiableThresholds:
        _check_assert_at(self.assert_at)
        return self


def _check_assert_at(value: AssertAt) -> None:
    if value != "never" and not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"assert_at must be in [0, 1] or 'never', not {value!r}")


class ConditionThresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    measured: MeasuredThresholds
    unverifiable: UnverifiableThresholds


class ValidationNumbers(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    n_studies: int
    hallucinated_after: float
    true_positive_retention: float
    false_flag_rate: float
    flag_recall: float


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal["2"]
    note: str
    rule: str
    derived_with: str
    seeds: dict[Literal["fitting", "heldout"], str]
    error_models_sha256: str
    probability_clip: float = Field(gt=0.5, lt=1)
    prior_without_probability: float = Field(gt=0, lt=1)
    conditions: dict[str, ConditionThresholds]
    targets_met_on_heldout: bool
    default_policy: Policy
    # policy name -> its pooled numbers, on the fitting and on the held-out studies
    validation: dict[Literal["fitting", "heldout"], dict[Policy, ValidationNumbers]]
    per_condition: dict[str, Any]

    @model_validator(mode="after")
    def _complete(self) -> PolicyFile:
        missing = sorted(set(CONDITIONS) - set(self.conditions))
        unknown = sorted(set(self.conditions) - set(CONDITIONS))
        if missing or unknown:
            raise ValueError(f"conditions: missing {missing}, unknown {unknown}")
        for split in ("fitting", "heldout"):
            if set(self.validation.get(split, {})) != set(POLICIES):  # type: ignore[call-overload]
                raise ValueError(f"validation.{split} must give every policy: {POLICIES}")
        if self.default_policy == "posterior" and not self.targets_met_on_heldout:
            raise ValueError("default_policy 'posterior' needs targets_met_on_heldout")
        return self

    def assert_at(self, field: str, measured: bool) -> float | None:
        """The posterior of an abnormal value from which a positive claim in `field` is asserted
        (None: never)."""
        cell = self.conditions[condition(field)]
        value = cell.measured.assert_at if measured else cell.unverifiable.assert_at
        return None if value == "never" else float(value)

    def contradict_below(self, field: str) -> float:
        """The posterior of the claim below which a measured statement is contradicted."""
        return self.conditions[condition(field)].measured.contradict_below


@cache
def thresholds() -> PolicyFile:
    text = (resources.files("reporter.grounding") / _FILE).read_text(encoding="utf-8")
    try:
        return PolicyFile.model_validate(json.loads(text))
    except ValueError as exc:
        first = " ".join(str(exc).split())[:300]
        raise ModelFileError(f"reporter/grounding/{_FILE} is invalid: {first}") from None


@cache
def sha256() -> str:
    return hashlib.sha256((resources.files("reporter.grounding") / _FILE).read_bytes()).hexdigest()


def default_policy() -> str:
    return thresholds().default_policy


def check_policy(name: str) -> str:
    if name not in POLICIES:
        raise UsageError(f"unknown report policy {name!r}; expected one of {', '.join(POLICIES)}")
    return name


def posterior_kind(
    band: Verdict, weight: Evidence | None, contradict_below: float
) -> Literal["supported", "contradicted", "unverifiable"]:
    """The verdict the posterior gives: a level that does not exist stays contradicted; a
    measured statement is contradicted below the threshold, else supported; an unmeasured one
    is unverifiable."""
    if band.rule == "level_exists" and band.verdict == "contradicted":
        return "contradicted"
    if weight is None or not weight.measured:
        return "unverifiable"
    return "contradicted" if weight.posterior < contradict_below else "supported"


def asserted(
    field: str, claim: Any, kind: str, weight: Evidence | None, assert_at: float | None
) -> bool:
    """Whether the posterior policy asserts the statement (normal statements: unless
    contradicted; positive ones: posterior of an abnormal value >= assert_at; never when
    assert_at is None)."""
    if kind == "contradicted":
        return False
    if not is_abnormal(field, claim):
        return True
    return assert_at is not None and weight is not None and weight.posterior_abnormal >= assert_at


def _single_image_cell(
    field: str, weight: Evidence | None
) -> image2d_evidence.PosteriorCell | None:
    """The single-image posterior thresholds of `field` when `weight` belongs to a single
    image (Evidence.models), else None; a field without a single-image model keeps this file's."""
    if weight is None or weight.models != "image2d_evidence":
        return None
    found = image2d_evidence.model_of(field)
    return found[1].posterior if found is not None else None


def assert_threshold(field: str, weight: Evidence | None) -> float | None:
    """The shipped assertion threshold of a positive claim in `field` with this evidence
    (measured or not); None: the posterior policy never asserts it."""
    measured = weight is not None and bool(weight.measured)
    cell = _single_image_cell(field, weight)
    if cell is not None:
        value = cell.assert_at if measured else cell.assert_at_unmeasured
        return None if value == "never" else float(value)
    return thresholds().assert_at(field, measured)


def contradict_threshold(field: str, weight: Evidence | None) -> float:
    """The posterior of the claim below which a measured statement is contradicted."""
    cell = _single_image_cell(field, weight)
    return cell.contradict_below if cell is not None else thresholds().contradict_below(field)


def _probability(findings: StudyFindings, v: Verdict, default: float) -> float:
    if v.level is None:
        return default
    lf = findings.level(v.level)
    finding = getattr(lf, v.field, None) if lf is not None else None
    p = getattr(finding, "probability", None)
    return default if p is None else float(p)


def _claim(findings: StudyFindings, v: Verdict) -> Any:
    lf = findings.level(v.level) if v.level is not None else None
    finding = getattr(lf, v.field, None) if lf is not None else None
    return getattr(finding, "value", v.claimed)


def apply_posterior(findings: StudyFindings, verdicts: list[Verdict]) -> list[Verdict]:
    """The verdicts under the posterior policy: kind from the posterior, the band verdict kept in
    `band_verdict`, every level statement with a weight (prior only when nothing was measured),
    the reason saying what the evidence says."""
    t = thresholds()
    out = []
    for v in verdicts:
        if v.level is None:  # study-level items: no posterior; as the bands judge them
            out.append(v.model_copy(update={"band_verdict": v.verdict}))
            continue
        claim = _claim(findings, v)
        weight = v.weight
        if weight is None:
            p = _probability(findings, v, t.prior_without_probability)
            post, abn = prior_only(v.field, claim, p, t.probability_clip)
            if v.rule == "level_exists" and v.verdict == "contradicted":
                post, abn = 0.0, 0.0
            weight = Evidence(
                prior=round(p, 6),
                likelihood_ratio=1.0,
                posterior=round(post, 6),
                posterior_abnormal=round(abn, 6),
            )
        below = contradict_threshold(v.field, weight)
        kind = posterior_kind(v, weight, below)
        reason = v.reason
        if weight.measured:
            reason = (
                f"posterior {weight.posterior:.2f} from the measurements' error models and the "
                f"model's probability {weight.prior:.2f} (contradicted below {below:g}); "
                f"tolerance bands: {v.verdict}, {v.reason}"
            )
        out.append(
            v.model_copy(
                update={
                    "verdict": kind,
                    "band_verdict": v.verdict,
                    "weight": weight,
                    "reason": reason,
                    "unverified_because": v.unverified_because if kind == "unverifiable" else None,
                }
            )
        )
    return out
