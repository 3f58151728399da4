"""The report reads like one a radiologist would sign (issue 18, item 6): limits of the input said
once in the technique, per level only what is specific to it, and the statements listed apart
(withheld, unconfirmed) once at the end, the clinically weightiest first."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from reporter.contracts.findings import lumbar_levels
from reporter.pipeline import assemble_report
from reporter.render import outputs
from reporter.render.clinical_weight import FILE, WeightFile, weight
from reporter.render.provenance import now_iso
from reporter.render.statements import UNCONFIRMED_TITLE, significance
from reporter.resources import resource_dir
from tests.report_factory import make_findings, make_study, make_verdicts
from tests.report_factory import unverifiable as as_unverifiable

NO_AXIAL = "needs an axial series (the foramina lie outside a mid-sagittal slice)"
MOTION = "motion artefact through this disc"
LEVELS = lumbar_levels(5, include_t12=False)

# Contradicted claims, listed below in cranio-caudal (old) order; by clinical weight the
# severe stenosis comes first and the Pfirrmann grade last.
CONTRADICTED = {
    "L1-L2": {"pfirrmann": 4},
    "L2-L3": {"disc_narrowing": "mild"},
    "L3-L4": {"spondylolisthesis": {"value": 4, "direction": "antero"}},
    "L4-L5": {"canal_stenosis": "severe"},
    "L5-S1": {"herniation": {"value": "extrusion", "zone": "central"}},
}
BY_WEIGHT = [
    "severe central canal stenosis",
    "central disc extrusion",
    "grade 4 anterolisthesis of L3 on L4",
    "mild disc space narrowing",
    "Pfirrmann grade 4",
]


def _single_sagittal_overrides() -> dict[str, dict[str, Any]]:
    """Foramina not assessable at every level for one reason (what a single sagittal image
    gives); the canal at L3-L4 not assessable for a reason of its own."""
    out: dict[str, dict[str, Any]] = {
        lv: {f"foraminal_stenosis_{s}": {"not_assessable": NO_AXIAL} for s in ("left", "right")}
        for lv in LEVELS
    }
    out["L3-L4"]["canal_stenosis"] = {"not_assessable": MOTION}
    return out


def _render(
    tmp: Path, overrides: dict[str, dict[str, Any]], contradicted=(), unverifiable=None
) -> tuple[str, str]:
    study, anatomy = make_study()
    findings = make_findings(overrides)
    verdicts = make_verdicts(findings, study, anatomy, set(contradicted))
    if unverifiable is not None:
        verdicts = [as_unverifiable(v, unverifiable) for v in verdicts]
    measurements = [m for v in verdicts for m in v.evidence]
    report, statements = assemble_report(
        study, anatomy, findings, verdicts, measurements, {"model_name": "t"}, None, now_iso()
    )
    outputs.write_outputs(report, study, anatomy, statements, tmp)
    return (tmp / "report.txt").read_text(), (tmp / "report.html").read_text()


def _level_block(text: str, level: str) -> str:
    return text.split(f"\n{level}:\n")[1].split("\n\n")[0]


def _positions(section: str, phrases: list[str]) -> list[int]:
    return [section.index(p) for p in phrases]


def test_input_wide_limit_is_said_once_in_the_technique_not_per_level(tmp_path: Path) -> None:
    text, _ = _render(tmp_path, _single_sagittal_overrides())
    # Old behaviour: the reason was repeated under each of the five levels.
    assert text.count(NO_AXIAL) == 1
    technique = text.split("TECHNIQUE:")[1].split("FINDINGS:")[0]
    assert f"left and right neural foramina: {NO_AXIAL}" in technique
    for level in LEVELS:
        assert "foram" not in _level_block(text, level).lower(), level


def test_level_specific_limit_stays_at_its_level_only(tmp_path: Path) -> None:
    text, _ = _render(tmp_path, _single_sagittal_overrides())
    assert f"Not assessable: central canal ({MOTION})." in _level_block(text, "L3-L4")
    assert text.count(MOTION) == 1
    assert "central canal" not in text.split("TECHNIQUE:")[1].split("FINDINGS:")[0]
    # A level with nothing assessable (outside the field of view) still says so itself.
    assert "T12-L1:\n  not assessable (outside the field of view)" in text


def test_level_prose_is_sentences(tmp_path: Path) -> None:
    text, _ = _render(tmp_path, {"L4-L5": {"canal_stenosis": "moderate"}})
    block = _level_block(text, "L4-L5")
    assert block.startswith("  Moderate central canal stenosis. [p 0.90; supported]")
    assert "Normal disc signal and height." in block


def test_withheld_statements_are_ordered_by_clinical_weight(tmp_path: Path) -> None:
    pairs = {(lv, f) for lv, fields in CONTRADICTED.items() for f in fields}
    text, html = _render(tmp_path, CONTRADICTED, contradicted=pairs)
    section = text.split("WITHHELD STATEMENTS")[1].split(UNCONFIRMED_TITLE.upper())[0]
    pos = _positions(section, BY_WEIGHT)
    assert pos == sorted(pos), section  # old behaviour: cranio-caudal (Pfirrmann first)
    # One reason shared by all is said once, not on every line.
    assert section.count("the measurement allows none of the claimed grade") == 1
    table = html.split("<h2>Withheld statements</h2>")[1].split("<h2>")[0]
    pos = _positions(table, BY_WEIGHT)
    assert pos == sorted(pos)


def test_withheld_claims_are_not_interleaved_per_level(tmp_path: Path) -> None:
    pairs = {(lv, f) for lv, fields in CONTRADICTED.items() for f in fields}
    text, html = _render(tmp_path, CONTRADICTED, contradicted=pairs)
    body = text.split("WITHHELD STATEMENTS")[0]
    for claim in BY_WEIGHT:
        assert claim.lower() not in body.lower(), claim
    # The level says which structure it leaves out, without repeating the claim.
    assert "Not stated here, listed at the end: central canal (contradicted)." in _level_block(
        text, "L4-L5"
    )
    findings = html.split("<h2>Findings</h2>")[1].split("<h2>Withheld statements</h2>")[0]
    prose = re.sub(r"<figure>.*?</figure>", "", findings, flags=re.S)  # key images: evidence
    assert "severe central canal stenosis" not in prose


def test_unconfirmed_list_is_ordered_capped_in_text_and_complete_in_html(tmp_path: Path) -> None:
    overrides = {
        lv: {"pfirrmann": 4, "canal_stenosis": sev, "spondylolisthesis": 1}
        for lv, sev in zip(LEVELS, ("mild", "mild", "moderate", "severe", "mild"), strict=True)
    }
    reason = "level names are uncertain (the sacrum is not in view)"
    text, html = _render(tmp_path, overrides, unverifiable=reason)
    section = text.split(UNCONFIRMED_TITLE.upper())[1].split("PROVENANCE:")[0]
    items = [line for line in section.splitlines() if line.startswith("  - ")]
    assert len(items) == 10  # templates/clinical_weight.json apart_list.text_max_items
    assert items[0] == "  - L4-L5: severe central canal stenosis [p 0.90; unverifiable]"
    assert "and 5 more of lower clinical weight" in section
    assert section.count(reason) == 1
    weights = [re.search(r": (.+) \[p", line).group(1) for line in items]  # type: ignore[union-attr]
    assert weights.index("moderate central canal stenosis") < weights.index(
        "grade 1 anterolisthesis of L1 on L2"
    )
    table = html.split(f"<h2>{UNCONFIRMED_TITLE}</h2>")[1].split("<h2>")[0]
    assert table.count("<tr><td>") == 15


def test_clinical_weights_are_read_from_the_file() -> None:
    doc = json.loads((resource_dir("templates") / FILE).read_text())
    assert doc["weights"]["canal_stenosis"]["severe"] == significance("canal_stenosis", "severe")
    assert weight("spondylolisthesis", 4) == doc["weights"]["spondylolisthesis"]["4"]
    assert weight("disc_bulging", True) == doc["weights"]["disc_bulging"]["true"]
    assert weight("canal_stenosis", "none") == 0.0


@pytest.mark.parametrize(
    ("field", "key", "message"),
    [
        ("canal_stenoses", "severe", "not a field"),
        ("canal_stenosis", "critical", "not a value"),
        ("foraminal_stenosis_left", "0", "normal value"),
        ("pfirrmann", "4", "negative"),
    ],
)
def test_weight_file_rejects_what_the_schema_does_not_allow(field, key, message) -> None:
    doc = json.loads((resource_dir("templates") / FILE).read_text())
    doc["weights"][field] = {key: -1 if message == "negative" else 10}
    with pytest.raises(ValidationError, match=message):
        WeightFile.model_validate(doc)
