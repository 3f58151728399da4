"""What the templates see: one dictionary built from the report, shared by text and HTML."""

from __future__ import annotations

from typing import Any

from reporter.contracts.findings import LEVEL_FIELDS
from reporter.contracts.report import Report
from reporter.contracts.study import Study
from reporter.render.apart import apart_section
from reporter.render.limits import field_words, input_limits, input_wide, level_limits
from reporter.render.statements import (
    ASSERTED,
    UNCONFIRMED_TITLE,
    Statement,
    impression,
    normal_summary,
    redundant,
)

DISCLAIMER = "PRELIMINARY AI DRAFT -- NOT FOR CLINICAL USE"
DISCLAIMER_DETAIL = (
    "Generated automatically by spine-reporter; not reviewed by a radiologist. Every statement "
    "was checked against segmentation of the same images; statements the images contradict are "
    "withheld, and abnormal findings the images could not confirm are not asserted; both are "
    "listed separately. A radiologist must read the images and sign the report."
)


def input_notes(study: Study) -> list[str]:
    """What was detected or assumed about a 2-D image input (orientation, pixel spacing), so the
    reader knows which geometry the statements rest on."""
    out = []
    for info in (getattr(study, "input_notes", None) or {}).values():
        if not isinstance(info, dict):
            continue
        o = info.get("orientation") or {}
        if o:
            out.append(
                f"{info.get('input', 'image')}: stored orientation '{o.get('as_found', '?')}', "
                f"{o.get('method', '')}; displayed in standard orientation"
            )
        spacing = info.get("pixel_spacing_mm")
        if spacing:
            out.append(
                f"pixel spacing {float(spacing[0]):.3g} mm: {info.get('pixel_spacing_method', '')}"
            )
    return out


def technique(study: Study) -> dict[str, Any]:
    """Acquisition facts from the DICOM headers, one line per series used."""
    series = []
    # Angled axial blocks are stacks of one series: one line per series, blocks counted.
    by_uid: dict[str, list[Any]] = {}
    for s in study.series:
        by_uid.setdefault(s.series_uid, []).append(s)
    for stacks in by_uid.values():
        s = stacks[0]
        parts = [f"{s.plane} {s.weighting}"]
        if s.slice_thickness:
            parts.append(f"{s.slice_thickness:g} mm slices")
        n_images = sum(x.shape[0] for x in stacks)
        if len(stacks) > 1:
            parts.append(f"{len(stacks)} blocks, {n_images} images")
        else:
            parts.append(f"{n_images} images")
        if s.repetition_time and s.echo_time:
            parts.append(f"TR/TE {s.repetition_time:g}/{s.echo_time:g} ms")
        series.append(
            {
                "description": s.description or s.role,
                "role": s.role,
                "stacks": len(stacks),
                "summary": ", ".join(parts),
                "series_number": s.series_number,
            }
        )
    first = study.series[0] if study.series else None
    scanner = ""
    if first is not None:
        vendor = " ".join(x for x in (first.vendor, first.model_name) if x)
        strength = f"{first.field_strength:g} T" if first.field_strength else ""
        scanner = ", ".join(x for x in (vendor, strength) if x)
    return {
        "scanner": scanner,
        "series": series,
        "notes": input_notes(study),
        "set_aside": [{"description": a.description, "reason": a.reason} for a in study.set_aside],
        "contrast": "without intravenous contrast",
    }


def _levels(report: Report, statements: list[Statement]) -> list[dict[str, Any]]:
    out = []
    skip = redundant(statements)
    wide = input_wide(statements)  # said once in the technique, not under every level
    for lf in report.raw_findings.levels:
        here = [s for s in statements if s.level == lf.level]
        shown = [s for s in here if s.status in ASSERTED]
        positive = sorted(
            (s for s in shown if s.abnormal and s.key not in skip),
            key=lambda s: LEVEL_FIELDS.index(s.field),
        )
        # The details table lists every shown statement that is not a positive line.
        normal = [s for s in shown if not s.abnormal or s.key in skip]
        na = [s for s in here if s.status == "not_assessable"]
        out.append(
            {
                "level": lf.level,
                "positive": positive,
                "normal": normal,
                "normal_summary": normal_summary(
                    [s for s in normal if s.status == "reported" and not s.abnormal]
                ),
                "normal_indeterminate": [
                    s for s in normal if s.status == "indeterminate" and not s.abnormal
                ],
                # Only what is specific to this level; input-wide limits are in `input_limits`.
                "not_assessable": [s for s in na if s.field not in wide],
                "not_assessable_groups": level_limits(here, wide),
                "not_assessable_reasons": sorted({s.reason for s in na}),
                "withheld": [s for s in here if s.status == "withheld"],
                "unconfirmed": [s for s in here if s.status == "unconfirmed"],
                "not_stated": _not_stated(here),
                "all_not_assessable": len(na) == len(here),
            }
        )
    return out


def _not_stated(here: list[Statement]) -> list[dict[str, str]]:
    """The fields a level leaves out because their statement is listed apart, named without the
    claim: in a report an unmentioned structure reads as normal, so the gap is said where it is
    (the claims themselves are listed once, at the end)."""
    out = []
    for status, why in (("withheld", "contradicted"), ("unconfirmed", "not confirmed")):
        fields = [s.field for s in here if s.status == status]
        if fields:
            out.append({"what": field_words(fields), "why": why})
    return out


def build_context(
    report: Report,
    study: Study,
    statements: list[Statement],
    key_images: dict[str, Any] | None = None,
    indication: str | None = None,
) -> dict[str, Any]:
    prov = report.provenance
    anatomy = report.technique.get("anatomy", {})
    study_statements = [s for s in statements if s.level is None]
    withheld = apart_section(statements, "withheld")
    unconfirmed = apart_section(statements, "unconfirmed")
    return {
        "disclaimer": DISCLAIMER,
        "disclaimer_detail": DISCLAIMER_DETAIL,
        "limitations": list(report.limitations),
        "exam": {
            "title": "MRI LUMBAR SPINE",
            "date": _date(study.study_date),
            "study_uid": study.study_uid,
            "accession_hash": study.accession_hash,
            "sex": study.patient_sex,
            "age": None if study.patient_age is None else int(study.patient_age),
            "indication": indication,
        },
        "technique": technique(study),
        "input_limits": input_limits(statements),
        "notes": list(report.technique.get("notes", [])),
        "anatomy": anatomy,
        "study_statements": study_statements,
        "levels": _levels(report, statements),
        "impression": impression(statements),
        # Listed apart, once, at the end: weightiest first (templates/clinical_weight.json).
        "withheld": withheld["all"],
        "withheld_section": withheld,
        "withheld_levels": withheld["levels"],
        "unconfirmed": unconfirmed["all"],
        "unconfirmed_section": unconfirmed,
        "unconfirmed_title": UNCONFIRMED_TITLE,
        "indeterminate": [s for s in statements if s.status == "indeterminate"],
        "key_images": key_images or {},
        "provenance": prov,
        "n_statements": sum(1 for s in statements if s.status != "not_assessable"),
    }


def _date(d: str | None) -> str:
    if d and len(d) == 8 and d.isdigit():
        return f"{d[:4]}-{d[4:6]}-{d[6:]}"
    return d or "unknown"
