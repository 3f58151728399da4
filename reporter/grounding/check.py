"""One verdict per statement: supported, contradicted or unverifiable. Never raises on a
disagreement -- a contradiction is a result, not an error.

A statement is a level field with a value (not `not_assessable`), or a study-level item.
Order of judgement for a level statement:
1. the level must exist for the study's enumeration (an L5-L6 claim in a spine with five
   lumbar vertebrae is contradicted), unless naming is uncertain (then unverifiable);
2. the level must be in view and segmented, else unverifiable;
3. the field's measurements decide, through the grading functions of `rules.json` with their
   tolerances: the claim is supported when its value is among the values the measurements
   allow, contradicted when it is not, unverifiable when a measurement is missing.

On a single 2-D image (a one-slice label map, reporter.ingest.image2d) the level names are always
uncertain (counted up from the lowest disc), but the model's per-level statements and the
measurements sit on the same named discs, so step 1 is skipped and the statement's content is
judged on the disc this anatomy names so (its name stays unverified, and the reason says so).
Step 3 then uses the single-image grade models of image2d_evidence.json instead of the tolerance
bands, which were set for volumes; a field without such a model is unverifiable.

Every unverifiable verdict carries its reason code (Verdict.unverified_because).
"""

from __future__ import annotations

import itertools
from typing import Any

from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import (
    LEVEL_FIELDS,
    LEVELS,
    NORMAL_VALUES,
    VERTEBRAE,
    LevelFindings,
    StudyFindings,
    field_values,
    is_abnormal,
    lumbar_levels,
)
from reporter.contracts.study import Study
from reporter.contracts.verdicts import Evidence, Measurement, UnverifiedReason, Verdict
from reporter.grounding import evidence, grading, image2d_evidence, policy
from reporter.grounding.judges import (
    JUDGES,
    UNMEASURED,
    Context,
    LevelMeasures,
    Outcome,
    format_measurement,
)
from reporter.grounding.measures.sagittal2d import is_single_image
from reporter.grounding.result import GroundingResult

# rules.json "verification": a positive claim is supported only when its measurements exclude
# every normal value of the field (otherwise unverifiable, and so not asserted by the report).
POSITIVE_NEEDS_NORMAL_EXCLUDED: bool = bool(
    grading.verification().get("positive_requires_normal_excluded", True)
)


# --- level existence ------------------------------------------------------------------------------
def existing_levels(anatomy: Anatomy) -> set[str] | None:
    """Every disc level this spine has (in view or not), or None when enumeration is unknown."""
    n = anatomy.lumbar_vertebrae
    if n is None:
        return None
    thoracic = {f"{a}-{b}" for a, b in itertools.pairwise(VERTEBRAE[:4])}
    return thoracic | set(lumbar_levels(n))


def _claim_of(lf: LevelFindings, field: str) -> Any:
    return getattr(lf, field).value


def _describe(field: str, claim: Any, lf: LevelFindings) -> Any:
    if field == "herniation" and lf.herniation.zone:
        return f"{claim} ({lf.herniation.zone})"
    if field == "spondylolisthesis" and lf.spondylolisthesis.direction:
        return f"{claim} ({lf.spondylolisthesis.direction})"
    return claim


def weighing_for(study: Study | None, anatomy: Anatomy) -> evidence.Weighing:
    """Where the measurements of `study` on `anatomy` were read: the label map's source and the
    slice thickness of each series role (selects the error models' bins)."""
    thickness: dict[str, float] = {}
    for s in study.series if study is not None else []:
        if s.role in thickness:
            continue
        t = s.slice_thickness if s.slice_thickness else s.spacing[-1]
        thickness[s.role] = float(t)
    return evidence.Weighing(
        source=anatomy.source, thickness=thickness, single_image=is_single_image(anatomy.labels)
    )


def weigh_statement(
    field: str, claim: Any, lf: LevelFindings, measures: LevelMeasures, where: evidence.Weighing
) -> Evidence | None:
    """The statement's evidence from the level's measurements and their error models (None: no
    usable measurement), with the model's probability as the prior (evidence_policy.json)."""
    t = policy.thresholds()
    p = getattr(lf, field).probability
    prior = t.prior_without_probability if p is None else float(p)
    return evidence.weigh(field, claim, lf, prior, measures, where, t.probability_clip)


def check_level(
    lf: LevelFindings,
    measures: dict[str, LevelMeasures],
    anatomy: Anatomy,
    where: evidence.Weighing | None = None,
) -> list[Verdict]:
    """Band verdicts for every statement of `lf`, each with its evidence weight when the level
    was measured (`where`: the study's weighing; by default the source alone, no thicknesses)."""
    single = is_single_image(anatomy.labels)
    where = where or evidence.Weighing(source=anatomy.source, thickness={}, single_image=single)
    verdicts: list[Verdict] = []
    exists = existing_levels(anatomy)
    in_view = set(anatomy.levels)
    ctx = Context(measures, anatomy, grading.rules_for(anatomy.source))
    bias = grading.bias_for(anatomy.source)
    for field in LEVEL_FIELDS:
        finding = getattr(lf, field)
        if not finding.assessed:
            continue  # not a statement: nothing is claimed
        claim = _claim_of(lf, field)
        shown = _describe(field, claim, lf)

        def verdict(
            kind: str,
            reason: str,
            field: str = field,
            shown: Any = shown,
            because: UnverifiedReason | None = None,
            **kw: Any,
        ) -> Verdict:
            return Verdict(
                level=lf.level,
                field=field,
                claimed=shown,
                verdict=kind,
                reason=reason,
                unverified_because=because if kind == "unverifiable" else None,
                **kw,
            )

        if anatomy.naming_uncertain and not single:
            verdicts.append(
                verdict(
                    "unverifiable",
                    "level names are uncertain (the sacrum is not in view), so no level-specific "
                    "claim can be checked",
                    because="level_name_uncertain",
                    rule="level_exists",
                )
            )
            continue
        if exists is not None and lf.level not in exists and not anatomy.naming_uncertain:
            verdicts.append(
                verdict(
                    "contradicted",
                    f"level {lf.level} does not exist in a spine with "
                    f"{anatomy.lumbar_vertebrae} lumbar-type vertebrae",
                    rule="level_exists",
                    supported_values=[],
                )
            )
            continue
        if lf.level not in in_view or lf.level not in measures:
            verdicts.append(
                verdict(
                    "unverifiable",
                    f"level {lf.level} is not in the segmented field of view",
                    because="level_not_in_view",
                    rule="level_exists",
                    weight=_unmeasured_weight(field, claim, lf) if single else None,
                )
            )
            continue
        if single:
            verdicts.append(
                _single_image_verdict(field, claim, shown, lf, measures[lf.level], where)
            )
            continue
        out = JUDGES[field](claim, lf, _debiased(measures[lf.level], bias), ctx)
        # Raw measurements: the error models carry their own bias.
        weight = weigh_statement(field, claim, lf, measures[lf.level], where)
        if out.allowed is None:
            verdicts.append(
                verdict(
                    "unverifiable",
                    out.why_missing,
                    because=out.missing_code,
                    rule=out.rule or None,
                    evidence=out.evidence,
                    weight=weight,
                )
            )
            continue
        ok = claim in out.allowed
        uninformative, code = _uninformative(field, claim, ok, out)
        if uninformative:
            verdicts.append(
                verdict(
                    "unverifiable",
                    uninformative,
                    because=code,
                    rule=out.rule,
                    supported_values=list(out.allowed),
                    evidence=out.evidence,
                    weight=weight,
                )
            )
            continue
        numbers = _numbers(out.evidence)
        reason = (
            f"{numbers} allow {_fmt_values(out.allowed)}"
            if ok
            else f"{numbers} allow only {_fmt_values(out.allowed)}, not {shown}"
        )
        if out.note:
            reason += f" ({out.note})"
        verdicts.append(
            verdict(
                "supported" if ok else "contradicted",
                reason,
                rule=out.rule,
                supported_values=list(out.allowed),
                evidence=out.evidence,
                weight=weight,
            )
        )
    return verdicts


def _uninformative(field: str, claim: Any, ok: bool, out: Outcome) -> tuple[str, UnverifiedReason]:
    """Why numbers that allow the claim still do not verify it ("" when they do), and its
    code."""
    allowed = set(out.allowed or ())
    numbers = _numbers(out.evidence)
    if set(field_values(field)) <= allowed:
        # Every value is allowed: within this label map's measurement noise the numbers
        # carry no information about the claim.
        return (
            f"{numbers} allow every value within this label map's measurement noise",
            "every_value_allowed",
        )
    # An abnormality is verified only when the numbers rule out normal: a grade within
    # tolerance of normal is as consistent with "no finding", and asserting it is how a
    # model's invented finding would slip through.
    if (
        POSITIVE_NEEDS_NORMAL_EXCLUDED
        and ok
        and is_abnormal(field, claim)
        and NORMAL_VALUES[field] & allowed
    ):
        return (
            f"{numbers} allow {_fmt_values(out.allowed)}: they do not rule out normal",
            "normal_not_excluded",
        )
    return "", "normal_not_excluded"


def _single_image_verdict(
    field: str,
    claim: Any,
    shown: Any,
    lf: LevelFindings,
    measures: LevelMeasures,
    where: evidence.Weighing,
) -> Verdict:
    """The verdict of a statement on a single 2-D image, from the grade models of
    image2d_evidence.json (reporter.grounding.image2d_evidence)."""
    found = image2d_evidence.model_of(field)
    name_note = f"judged on the disc this image's levels name {lf.level}; the name is not verified"
    unmeasured = _unmeasured_weight(field, claim, lf)

    def verdict(
        kind: str, reason: str, because: UnverifiedReason | None = None, **kw: Any
    ) -> Verdict:
        return Verdict(
            level=lf.level,
            field=field,
            claimed=shown,
            verdict=kind,  # type: ignore[arg-type]
            reason=reason,
            unverified_because=because if kind == "unverifiable" else None,
            **kw,
        )

    if found is None:
        if field in UNMEASURED:
            return verdict(
                "unverifiable",
                f"{UNMEASURED[field]} is not measured by the checker",
                "not_measured",
                weight=unmeasured,
            )
        return verdict(
            "unverifiable",
            "no measurement model of this finding is validated on single 2-D images",
            "no_image_model",
            weight=unmeasured,
        )
    cname, cond = found
    got = image2d_evidence.likelihood(field, measures)
    if got is None:
        wanted = ", ".join(t.format(side="...") for t in cond.measurements)
        return verdict(
            "unverifiable",
            f"no {wanted} at this level (the structures it needs were not segmented)",
            "structure_not_found",
            rule=f"image2d:{cname}",
            weight=unmeasured,
        )
    lik, weighed = got
    used = [measures[w.name] for w in weighed]
    weight = weigh_statement(field, claim, lf, measures, where)
    kind, allowed, code = image2d_evidence.judge(field, claim, lik)
    said = f"{_numbers(used)}: {_likelihood_words(claim, lik)}"
    if kind == "contradicted":
        reason = f"{said}; the grade models allow only {_fmt_values(allowed)}, not {shown}"
    elif kind == "supported":
        reason = f"{said}; the grade models allow {_fmt_values(allowed)}"
    else:
        other = "normal" if code == "normal_not_excluded" else "an abnormality"
        how = (
            "not ruled out"
            if cond.bands.exclude_ratio > 0
            else "never ruled out on a single image (no threshold met the validation budget)"
        )
        reason = f"{said}; the grade models allow {_fmt_values(allowed)}: {other} {how}"
    return verdict(
        kind,
        f"{reason} ({name_note})",
        code or None,  # type: ignore[arg-type]
        rule=f"image2d:{cname}",
        supported_values=allowed,
        evidence=used,
        weight=weight,
    )


def _debiased(m: LevelMeasures, bias: dict[str, float]) -> LevelMeasures:
    """The level's measurements less the label-map source's known median error, the correction
    named in each corrected measurement's method."""
    if not bias:
        return m
    out = dict(m)
    for name, b in bias.items():
        x = m.get(name)
        if x is not None and x.value is not None:
            out[name] = x.model_copy(
                update={
                    "value": round(x.value - b, 4),
                    "method": f"{x.method}; corrected by {-b:+g} {x.unit}".rstrip()
                    + " (median error of this label-map source, rules.json measurement_noise)",
                }
            )
    return out


def _unmeasured_weight(field: str, claim: Any, lf: LevelFindings) -> Evidence:
    """The model's probability alone, marked as a single image's (Evidence.models): the
    posterior policy then asserts it by the single-image thresholds (reporter.grounding.policy)."""
    t = policy.thresholds()
    p = getattr(lf, field).probability
    prior = t.prior_without_probability if p is None else float(p)
    post, abn = evidence.prior_only(field, claim, prior, t.probability_clip)
    return Evidence(
        prior=round(prior, 6),
        likelihood_ratio=1.0,
        posterior=round(post, 6),
        posterior_abnormal=round(abn, 6),
        models="image2d_evidence",
    )


def _likelihood_words(claim: Any, lik: dict[Any, float]) -> str:
    """The claim's likelihood against the most likely other value, in words."""
    others = {v: x for v, x in lik.items() if v != claim}
    if not others:
        return f"{claim} is the only value"
    rival = max(others, key=lambda v: others[v])
    if lik[claim] >= others[rival]:
        return (
            f"{claim} the most likely value ({rival} {others[rival] / lik[claim]:.2g} x as likely)"
        )
    return f"{claim} {lik[claim] / others[rival]:.2g} x as likely as {rival}"


def _numbers(evidence: list[Measurement]) -> str:
    return ", ".join(format_measurement(e) for e in evidence) or "no numbers"


def _fmt_values(values: list[Any]) -> str:
    return "{" + ", ".join(str(v) for v in values) + "}" if values else "no value"


def check_study_items(findings: StudyFindings, anatomy: Anatomy) -> list[Verdict]:
    """Enumeration and transitional anatomy against the segmentation's count."""
    out: list[Verdict] = []
    s = findings.study
    known = anatomy.lumbar_vertebrae is not None and not anatomy.naming_uncertain
    if s.lumbar_vertebrae is not None:
        if not known:
            out.append(
                Verdict(
                    level=None,
                    field="lumbar_vertebrae",
                    claimed=s.lumbar_vertebrae,
                    verdict="unverifiable",
                    reason="the number of lumbar-type vertebrae could not be established",
                    rule="level_exists",
                    unverified_because="count_unknown",
                )
            )
        else:
            ok = s.lumbar_vertebrae == anatomy.lumbar_vertebrae
            out.append(
                Verdict(
                    level=None,
                    field="lumbar_vertebrae",
                    claimed=s.lumbar_vertebrae,
                    verdict="supported" if ok else "contradicted",
                    reason=f"the segmentation counts {anatomy.lumbar_vertebrae} lumbar-type "
                    f"vertebrae ({anatomy.naming_convention})",
                    rule="level_exists",
                    supported_values=[anatomy.lumbar_vertebrae],
                )
            )
    if s.transitional.assessed:
        claim = s.transitional.value
        if not known:
            kind, allowed = "unverifiable", None
        else:
            # 'L6' and 'lumbarized_S1' both describe six lumbar-type vertebrae; names differ by
            # convention, not by anatomy.
            allowed = {
                "none": ["none"],
                "L6": ["L6", "lumbarized_S1"],
                "sacralized_L5": ["sacralized_L5"],
                "lumbarized_S1": ["L6", "lumbarized_S1"],
            }[anatomy.transitional]
            kind = "supported" if claim in allowed else "contradicted"
        out.append(
            Verdict(
                level=None,
                field="transitional",
                claimed=claim,
                verdict=kind,  # type: ignore[arg-type]
                reason=(
                    f"segmentation: {anatomy.transitional} ({anatomy.naming_convention})"
                    if known
                    else "the number of lumbar-type vertebrae could not be established"
                ),
                rule="level_exists",
                supported_values=allowed,
                unverified_because=None if known else "count_unknown",
            )
        )
    if s.alignment.assessed:
        out.append(
            Verdict(
                level=None,
                field="alignment",
                claimed=s.alignment.value,
                verdict="unverifiable",
                reason="global alignment is not measured by the checker",
                unverified_because="not_measured",
            )
        )
    return out


def check(
    findings: StudyFindings,
    study: Study,
    anatomy: Anatomy,
    measurements: dict[str, LevelMeasures] | None = None,
) -> GroundingResult:
    """A verdict for every statement of `findings`, judged on `study` segmented as `anatomy`.

    `measurements` (from `measure(study, anatomy)`) may be passed to judge several finding sets
    on one study without measuring twice.
    """
    from reporter.grounding.measure import measure

    measures = measurements if measurements is not None else measure(study, anatomy)
    verdicts = check_study_items(findings, anatomy)
    where = weighing_for(study, anatomy)
    for lf in findings.levels:
        if lf.level not in LEVELS:  # the schema forbids it; kept for hand-built objects
            continue
        verdicts.extend(check_level(lf, measures, anatomy, where))
    return GroundingResult(
        verdicts=verdicts,
        measurements=[m for per in measures.values() for m in per.values()],
        rules_sha256=grading.rules_sha256(),
        anatomy_source=anatomy.source,
        naming_uncertain=anatomy.naming_uncertain,
    )
