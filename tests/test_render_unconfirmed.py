"""Unverifiable positive statements are suggestions, not assertions (docs/report.md policy).

A report that promises "nothing asserted is contradicted by the images, every statement is
checked" must not assert an abnormal finding the images could not verify: it is listed apart,
kept in findings.json with its verdict, and left out of the SR's findings.
"""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import pydicom
import pytest

from reporter.pipeline import assemble_report
from reporter.render import outputs
from reporter.render.provenance import now_iso
from reporter.render.statements import UNCONFIRMED_TITLE
from tests.report_factory import make_findings, make_study, make_verdicts, unverifiable

MODEL_INFO = {"model_name": "test-vlm", "model_sha256": "ab" * 32}

OVERRIDES = {
    "L2-L3": {"canal_stenosis": "severe"},  # contradicted
    "L3-L4": {"foraminal_stenosis_left": 2},  # positive, unverifiable
    "L4-L5": {"canal_stenosis": "moderate"},  # positive, supported
}
UNVERIFIABLE = {("L3-L4", "foraminal_stenosis_left"), ("L5-S1", "canal_stenosis")}  # + a normal
SUGGESTION = "moderate left neural foraminal stenosis (Lee grade 2)"


def _make(withhold: bool = True):
    study, anatomy = make_study()
    findings = make_findings(OVERRIDES)
    verdicts = make_verdicts(findings, study, anatomy, {("L2-L3", "canal_stenosis")})
    verdicts = [
        unverifiable(v, "no left foraminal fat / root measurement at this level")
        if (v.level, v.field) in UNVERIFIABLE
        else v
        for v in verdicts
    ]
    measurements = [m for v in verdicts for m in v.evidence]
    report, statements = assemble_report(
        study,
        anatomy,
        findings,
        verdicts,
        measurements,
        MODEL_INFO,
        None,
        now_iso(),
        withhold_unverifiable_positive=withhold,
    )
    return study, anatomy, report, statements


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("unconfirmed")
    study, anatomy, report, statements = _make()
    outputs.write_outputs(report, study, anatomy, statements, out)
    return out, report, statements


def _status(statements, level: str, field: str) -> str:
    return next(s.status for s in statements if s.level == level and s.field == field)


def test_default_policy_does_not_assert_unverifiable_positive(written) -> None:
    # Fails if the policy is removed: the statement would be "reported".
    _, report, statements = written
    assert _status(statements, "L3-L4", "foraminal_stenosis_left") == "unconfirmed"
    assert _status(statements, "L2-L3", "canal_stenosis") == "withheld"
    assert _status(statements, "L4-L5", "canal_stenosis") == "reported"
    # A normal statement that is unverifiable asserts no pathology: it stays.
    assert _status(statements, "L5-S1", "canal_stenosis") == "reported"
    final = report.findings.level("L3-L4").foraminal_stenosis_left
    assert final.value is None and final.not_assessable.startswith("not asserted")
    assert report.raw_findings.level("L3-L4").foraminal_stenosis_left.value == 2


def test_text_lists_it_apart_and_never_in_findings_or_impression(written) -> None:
    out, *_ = written
    text = (out / "report.txt").read_text()
    body, rest = text.split("WITHHELD STATEMENTS")
    assert SUGGESTION not in body
    assert "moderate central canal stenosis" in body  # the supported positive is asserted
    withheld, unconfirmed = rest.split(UNCONFIRMED_TITLE.upper())
    assert "severe central canal stenosis" in withheld and SUGGESTION not in withheld
    assert SUGGESTION in unconfirmed and "unverifiable" in unconfirmed
    assert "no left foraminal fat / root measurement" in unconfirmed


def test_html_lists_it_in_the_labelled_section_only(written) -> None:
    out, *_ = written
    html = (out / "report.html").read_text()
    before, section = html.split(f"<h2>{UNCONFIRMED_TITLE}</h2>")
    impression = before.split("<h2>Findings</h2>")[0]
    assert SUGGESTION not in impression
    assert SUGGESTION in section.split("<h2>Provenance</h2>")[0]


def test_json_keeps_it_with_its_verdict(written) -> None:
    out, *_ = written
    doc = json.loads((out / "findings.json").read_text())
    [item] = doc["unconfirmed"]
    assert (item["level"], item["field"], item["value"]) == ("L3-L4", "foraminal_stenosis_left", 2)
    assert item["verdict"] == "unverifiable" and item["status"] == "unconfirmed"
    [l34] = [lv for lv in doc["findings"]["levels"] if lv["level"] == "L3-L4"]
    assert "not_assessable" in l34["foraminal_stenosis_left"]


def test_sr_does_not_carry_it_as_a_finding(written) -> None:
    out, *_ = written
    ds = pydicom.dcmread(out / "report.sr.dcm")
    content = hd.sr.MeasurementReport.from_sequence([hd.sr.Comprehensive3DSR.from_dataset(ds)])
    groups = {
        g.tracking_identifier: [e.name.meaning for e in g.get_qualitative_evaluations()]
        for g in content.get_volumetric_roi_measurement_groups()
    }
    l34 = groups.get("L3-L4 disc level", [])
    assert not any("foramin" in name.lower() and "left" in name.lower() for name in l34), l34
    assert "Central canal stenosis" in groups["L4-L5 disc level"]


def test_contradicted_only_policy_asserts_it(tmp_path: Path) -> None:
    study, anatomy, report, statements = _make(withhold=False)
    assert _status(statements, "L3-L4", "foraminal_stenosis_left") == "reported"
    assert _status(statements, "L2-L3", "canal_stenosis") == "withheld"
    assert report.findings.level("L3-L4").foraminal_stenosis_left.value == 2
    outputs.write_outputs(report, study, anatomy, statements, tmp_path)
    body = (tmp_path / "report.txt").read_text().split("WITHHELD STATEMENTS")[0]
    assert SUGGESTION in body
