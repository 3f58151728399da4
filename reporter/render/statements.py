"""From findings + verdicts to the statements a report shows: wording, status, clinical weight.

One place decides what every output (text, HTML, JSON, SR) says, so they cannot disagree:
- a statement the grounding checker *contradicted* is withheld (listed apart, with the reason);
- a positive (abnormal) statement the checker found *unverifiable* is *unconfirmed*: not asserted,
  listed apart as a model suggestion the images could not confirm (policy
  `withhold_unverifiable_positive`, on by default; docs/report.md);
- a statement whose calibrated probability is below the model's threshold is *indeterminate*;
- everything else is reported, with its probability and verdict.

Normal statements that are unverifiable stay in the report: they assert no pathology, and the
reader sees their verdict beside them; leaving them out would make "not assessed" and "normal"
indistinguishable in the prose.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from reporter.contracts.findings import (
    LEVEL_FIELDS,
    Finding,
    LevelFindings,
    StudyFindings,
    is_abnormal,
    split_level,
)
from reporter.contracts.verdicts import Evidence, Measurement, Verdict
from reporter.render.clinical_weight import weight

Status = Literal["reported", "withheld", "unconfirmed", "indeterminate", "not_assessable"]
ASSERTED: tuple[Status, ...] = ("reported", "indeterminate")  # what a report body states

UNCONFIRMED_TITLE = "Model suggestions the images could not confirm -- not asserted"

LEE_WORDS = {0: "no", 1: "mild", 2: "moderate", 3: "severe"}
SEVERITY_ORDER = {"none": 0, "mild": 1, "moderate": 2, "severe": 3}

FIELD_TITLES: dict[str, str] = {
    "pfirrmann": "Disc degeneration (Pfirrmann)",
    "disc_narrowing": "Disc height",
    "disc_bulging": "Disc bulge",
    "herniation": "Herniation",
    "canal_stenosis": "Central canal",
    "foraminal_stenosis_left": "Left foramen",
    "foraminal_stenosis_right": "Right foramen",
    "subarticular_stenosis_left": "Left lateral recess",
    "subarticular_stenosis_right": "Right lateral recess",
    "modic_upper": "Upper endplate marrow",
    "modic_lower": "Lower endplate marrow",
    "endplate_defect_upper": "Upper endplate",
    "endplate_defect_lower": "Lower endplate",
    "spondylolisthesis": "Alignment (listhesis)",
    "lumbar_vertebrae": "Lumbar vertebrae",
    "transitional": "Transitional anatomy",
    "alignment": "Alignment",
}


def significance(field_name: str, value: Any) -> float:
    """Clinical weight of a positive statement (templates/clinical_weight.json), to order the
    impression and the key images (higher first)."""
    return weight(field_name, value)


def _zone_words(zone: str | None) -> str:
    """'paracentral_left' -> 'left paracentral ' (side first, as reports write it)."""
    if not zone:
        return ""
    parts = zone.split("_")
    if parts[-1] in ("left", "right"):
        parts = [parts[-1], *parts[:-1]]
    return " ".join(parts) + " "


def _endplate(field_name: str, upper: str, lower: str) -> str:
    """The endplate an `*_upper` / `*_lower` field names: the level's upper endplate is the
    inferior endplate of the vertebra above, its lower one the superior endplate of the one
    below."""
    if field_name.endswith("_upper"):
        return f"inferior endplate of {upper}"
    return f"superior endplate of {lower}"


def phrase(field_name: str, value: Any, level: str | None, extra: dict[str, Any]) -> str:
    """The words a radiologist would write for one field's value at one level."""
    upper, lower = split_level(level) if level else ("", "")
    side = "left" if field_name.endswith("_left") else "right"
    if field_name == "pfirrmann":
        if value in (1, 2):
            return f"normal disc signal (Pfirrmann grade {value})"
        return f"disc degeneration (Pfirrmann grade {value})"
    if field_name == "disc_narrowing":
        return "preserved disc height" if value == "none" else f"{value} disc space narrowing"
    if field_name == "disc_bulging":
        return "diffuse disc bulge" if value else "no disc bulge"
    if field_name == "herniation":
        if value == "none":
            return "no disc herniation"
        if value == "bulge":
            return "broad-based disc bulge"
        return f"{_zone_words(extra.get('zone'))}disc {value}"
    if field_name == "canal_stenosis":
        return "no central canal stenosis" if value == "none" else f"{value} central canal stenosis"
    if field_name.startswith("foraminal_stenosis"):
        if value == 0:
            return f"no {side} neural foraminal stenosis"
        return f"{LEE_WORDS[value]} {side} neural foraminal stenosis (Lee grade {value})"
    if field_name.startswith("subarticular_stenosis"):
        if value == "none":
            return f"no {side} subarticular (lateral recess) stenosis"
        return f"{value} {side} subarticular (lateral recess) stenosis"
    if field_name.startswith("modic"):
        where = _endplate(field_name, upper, lower)
        if value == 0:
            return f"no Modic change at the {where}"
        return f"Modic type {value} endplate change at the {where}"
    if field_name.startswith("endplate_defect"):
        where = _endplate(field_name, upper, lower)
        if value:
            return f"endplate irregularity / Schmorl node at the {where}"
        return f"intact {where}"
    if field_name == "spondylolisthesis":
        if value == 0:
            return "no spondylolisthesis"
        kind = "retrolisthesis" if extra.get("direction") == "retro" else "anterolisthesis"
        return f"grade {value} {kind} of {upper} on {lower}"
    if field_name == "lumbar_vertebrae":
        return f"{value} lumbar-type vertebrae"
    if field_name == "transitional":
        return {
            "none": "no lumbosacral transitional vertebra",
            "L6": "six lumbar-type vertebrae (L6)",
            "sacralized_L5": "sacralized L5",
            "lumbarized_S1": "lumbarized S1",
        }.get(str(value), str(value))
    if field_name == "alignment":
        return {
            "normal": "normal lumbar alignment",
            "reduced_lordosis": "reduced lumbar lordosis",
            "increased_lordosis": "increased lumbar lordosis",
            "scoliosis": "scoliosis",
        }.get(str(value), str(value))
    return f"{field_name.replace('_', ' ')}: {value}"


@dataclass
class Statement:
    """One rendered statement and everything a reader may want to know about it."""

    level: str | None  # None: study-level
    field: str
    value: Any
    text: str
    probability: float | None
    verdict: str | None  # supported / contradicted / unverifiable; None when not checked
    reason: str  # grounding's sentence, or why it is withheld / indeterminate / not assessable
    status: Status
    abnormal: bool
    significance: float
    rule: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    evidence: list[Measurement] = field(default_factory=list)
    # The evidence weighed with the error models: its plain-language line and posterior (set
    # when the verdict carries a weight, reporter.grounding.evidence).
    evidence_line: str = ""
    posterior: float | None = None
    # Why the checker could not verify it (Verdict.unverified_because), when it could not.
    unverified_because: str | None = None

    @property
    def key(self) -> str:
        return f"{self.level or 'study'}:{self.field}"

    @property
    def title(self) -> str:
        return FIELD_TITLES.get(self.field, self.field)

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "field": self.field,
            "value": self.value,
            **self.extra,
            "text": self.text,
            "probability": self.probability,
            "verdict": self.verdict,
            "status": self.status,
            "reason": self.reason,
            "rule": self.rule,
            "abnormal": self.abnormal,
            "significance": self.significance,
            **({"evidence_line": self.evidence_line} if self.evidence_line else {}),
            **({"posterior": self.posterior} if self.posterior is not None else {}),
            **({"unverified_because": self.unverified_because} if self.unverified_because else {}),
        }


def _limit(
    assert_at: float | Callable[[str, Evidence | None], float | None],
    field: str,
    weight: Evidence | None,
) -> float | None:
    return assert_at(field, weight) if callable(assert_at) else float(assert_at)


def _verdict_index(verdicts: list[Verdict]) -> dict[tuple[str | None, str], Verdict]:
    return {(v.level, v.field): v for v in verdicts}


def build_statements(
    findings: StudyFindings,
    verdicts: list[Verdict],
    indeterminate_below: Mapping[str, float] | float | None,
    withhold_unverifiable_positive: bool = True,
    assert_at: float | Callable[[str, Evidence | None], float | None] | None = None,
) -> list[Statement]:
    """Every statement of `findings` (study-level first, then level by level, in schema order).

    `assert_at` (the posterior policy, reporter.grounding.policy): a positive statement not
    contradicted is asserted only when its verdict's posterior of an abnormal value is at least
    this; otherwise it is `unconfirmed`. One number for every field, or a function of the field
    and the verdict's evidence giving the threshold, None for "never asserted"
    (reporter.grounding.policy.assert_threshold).

    `indeterminate_below`: the calibrated abstention threshold, per field (the VLM's calibration)
    or one number for all fields; None marks nothing indeterminate.
    `withhold_unverifiable_positive`: a positive statement whose verdict is `unverifiable` is
    `unconfirmed` (not asserted) rather than reported; a statement without any verdict (never
    checked) is not touched by it."""
    index = _verdict_index(verdicts)

    def threshold(name: str) -> float | None:
        if indeterminate_below is None or isinstance(indeterminate_below, int | float):
            return indeterminate_below
        return indeterminate_below.get(name)

    out: list[Statement] = []

    def make(level: str | None, name: str, finding: Any) -> Statement:
        extra: dict[str, Any] = {}
        for attr in ("zone", "direction"):
            if getattr(finding, attr, None) is not None:
                extra[attr] = getattr(finding, attr)
        verdict = index.get((level, name))
        if finding.not_assessable is not None:
            return Statement(
                level=level,
                field=name,
                value=None,
                text="not assessable",
                probability=None,
                verdict=verdict.verdict if verdict else None,
                reason=finding.not_assessable,
                status="not_assessable",
                abnormal=False,
                significance=0.0,
            )
        value = finding.value
        abnormal = is_abnormal(name, value)
        status: Status = "reported"
        reason = verdict.reason if verdict else "not checked against the images"
        weight = verdict.weight if verdict is not None else None
        limit: float | None = None
        if verdict is not None and verdict.verdict == "contradicted":
            status = "withheld"
        elif (
            assert_at is not None
            and abnormal
            and (
                weight is None
                or (limit := _limit(assert_at, name, weight)) is None
                or weight.posterior_abnormal < limit
            )
        ):
            # The posterior policy: the evidence and the model together are not sure enough.
            status = "unconfirmed"
            if weight is not None and limit is None:
                state = "measured" if weight.measured else "unmeasured"
                reason = (
                    f"{state} claims of this kind are never asserted (on validation their "
                    f"posterior did not separate true from false findings); {reason}"
                )
            elif weight is not None:
                reason = (
                    f"posterior of a finding {weight.posterior_abnormal:.2f} is below "
                    f"{limit:g}; {reason}"
                )
        elif (
            withhold_unverifiable_positive
            and abnormal
            and verdict is not None
            and verdict.verdict == "unverifiable"
        ):
            # The images could not check a claimed pathology: suggested, never asserted.
            status = "unconfirmed"
        elif (
            (t := threshold(name)) is not None
            and finding.probability is not None
            and finding.probability < t
        ):
            status = "indeterminate"
            reason = (
                f"model probability {finding.probability:.2f} is below the calibrated "
                f"threshold {t:.2f}; {reason}"
            )
            extra["threshold"] = t
        return Statement(
            level=level,
            field=name,
            value=value,
            text=phrase(name, value, level, extra),
            probability=finding.probability,
            verdict=verdict.verdict if verdict else None,
            reason=reason,
            status=status,
            abnormal=abnormal,
            significance=significance(name, value) if abnormal else 0.0,
            rule=verdict.rule if verdict else None,
            extra=extra,
            evidence=list(verdict.evidence) if verdict else [],
            evidence_line=_evidence_line(name, value, level, extra, verdict),
            posterior=weight.posterior if weight is not None else None,
            unverified_because=verdict.unverified_because if verdict else None,
        )

    if findings.study.lumbar_vertebrae is not None:
        count = Finding[int](value=findings.study.lumbar_vertebrae)
        out.append(make(None, "lumbar_vertebrae", count))
    for name in ("transitional", "alignment"):
        out.append(make(None, name, getattr(findings.study, name)))
    for lf in findings.levels:
        for name in LEVEL_FIELDS:
            out.append(make(lf.level, name, getattr(lf, name)))
    return out


def _evidence_line(
    name: str, value: Any, level: str | None, extra: dict[str, Any], verdict: Verdict | None
) -> str:
    """'canal AP 9.1 mm (+-1.2): supports moderate central canal stenosis (likelihood ratio
    4.2), posterior 0.91' for a statement whose verdict weighed measurements, else ''."""
    if verdict is None or verdict.weight is None or not verdict.weight.measured:
        return ""
    w = verdict.weight
    parts = []
    for m in w.measured:
        unit = f" {m.unit}" if m.unit and m.unit != "ratio" else ""
        parts.append(f"{m.name.replace('_', ' ')} {m.value:.3g}{unit} (+-{m.half_width_90:.2g})")
    verb = "supports" if w.likelihood_ratio >= 1 else "argues against"
    if verdict.verdict == "contradicted":
        verb = "contradicts"
    return (
        f"{', '.join(parts)}: {verb} {phrase(name, value, level, extra)} (likelihood ratio "
        f"{w.likelihood_ratio:.3g}), posterior {w.posterior:.2f}"
    )


def final_findings(raw: StudyFindings, statements: list[Statement]) -> StudyFindings:
    """The findings as rendered: withheld and unconfirmed statements (those the report does not
    assert) become `not_assessable` with the reason."""
    withheld = {
        (s.level, s.field): s for s in statements if s.status in ("withheld", "unconfirmed")
    }
    if not withheld:
        return raw.model_copy(deep=True)
    data = raw.model_dump(mode="json", exclude_none=True)
    if (None, "lumbar_vertebrae") in withheld:
        data["study"].pop("lumbar_vertebrae", None)
    for name in ("transitional", "alignment"):
        if (None, name) in withheld:
            data["study"][name] = {"not_assessable": _withheld_reason(withheld[(None, name)])}
    for lvl in data["levels"]:
        for name in LEVEL_FIELDS:
            s = withheld.get((lvl["level"], name))
            if s is not None:
                lvl[name] = {"not_assessable": _withheld_reason(s)}
    return StudyFindings.model_validate(data)


def _withheld_reason(s: Statement) -> str:
    if s.status == "unconfirmed":
        return f"not asserted: the images could not confirm it ({s.reason})"
    return f"withheld: contradicted by the images ({s.reason})"


def redundant(statements: list[Statement], statuses: tuple[Status, ...] = ASSERTED) -> set[str]:
    """Keys of statements another one already says: 'disc bulge' (disc_bulging) next to a
    herniation graded 'bulge' at the same level, both with one of `statuses`. They stay in
    tables, not in the prose."""
    shown = {(s.level, s.field): s for s in statements if s.status in statuses}
    out = set()
    for (level, fld), s in shown.items():
        hern = shown.get((level, "herniation"))
        if fld == "disc_bulging" and s.value is True and hern is not None and hern.value == "bulge":
            out.add(s.key)
    return out


def impression(statements: list[Statement], max_items: int = 8) -> list[dict[str, Any]]:
    """Level-grouped positive statements, the most significant level first.

    Withheld and unconfirmed statements are left out (they are listed apart); indeterminate
    ones stay, marked."""
    by_level: dict[str | None, list[Statement]] = {}
    skip = redundant(statements)
    for s in statements:
        if s.abnormal and s.status in ASSERTED and s.key not in skip:
            by_level.setdefault(s.level, []).append(s)
    groups = []
    for level, items in by_level.items():
        items.sort(key=lambda s: (-s.significance, s.field))
        groups.append(
            {
                "level": level,
                "statements": items,
                "significance": max(s.significance for s in items),
                "confident": any(s.status == "reported" for s in items),
            }
        )
    # Levels with a confident statement first, then by significance; ties keep cranio-caudal
    # order (the sort is stable and dicts keep insertion order).
    groups.sort(key=lambda g: (not g["confident"], -g["significance"]))
    return groups[:max_items]


def level_statements(statements: list[Statement], lf: LevelFindings) -> list[Statement]:
    return [s for s in statements if s.level == lf.level]


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def normal_summary(normal: list[Statement]) -> str:
    """Normal statements of one level in the compact sentences reports use."""
    fields = {s.field for s in normal}
    out: list[str] = []
    disc = [w for f, w in (("pfirrmann", "signal"), ("disc_narrowing", "height")) if f in fields]
    if disc:
        out.append("Normal disc " + " and ".join(disc))
    hern = [w for f, w in (("disc_bulging", "bulge"), ("herniation", "herniation")) if f in fields]
    if hern:
        out.append("No disc " + " or ".join(hern))
    sten: list[str] = []
    if "canal_stenosis" in fields:
        sten.append("central canal")
    for stem, word in (
        ("foraminal_stenosis", "foraminal"),
        ("subarticular_stenosis", "subarticular"),
    ):
        sides = [side for side in ("left", "right") if f"{stem}_{side}" in fields]
        if len(sides) == 2:
            sten.append(word)
        elif sides:
            sten.append(f"{sides[0]} {word}")
    if sten:
        out.append("No " + _join(sten) + " stenosis")
    ends: list[str] = []
    partial: list[str] = []
    for pair, word in (
        (("modic_upper", "modic_lower"), "Modic change"),
        (("endplate_defect_upper", "endplate_defect_lower"), "endplate defect"),
    ):
        present = [s for s in normal if s.field in pair]
        if len(present) == 2:
            ends.append(word)
        elif present:  # the other endplate is abnormal: name the normal one exactly
            partial.append(present[0].text[0].upper() + present[0].text[1:])
    if ends:
        out.append("No " + " or ".join(ends))
    out.extend(partial)
    if "spondylolisthesis" in fields:
        out.append("No spondylolisthesis")
    return ". ".join(out) + ("." if out else "")
