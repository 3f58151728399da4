"""Renderers on known findings and verdicts: reported, withheld, indeterminate; atomic writes."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reporter.errors import OutputError
from reporter.pipeline import assemble_report
from reporter.render import atomic, outputs
from reporter.render.keyimages import COLORS
from reporter.render.provenance import now_iso
from reporter.render.statements import build_statements, impression
from tests.report_factory import make_findings, make_study, make_verdicts

MODEL_INFO = {"model_name": "test-vlm", "model_sha256": "ab" * 32, "adapter_sha256": "cd" * 32}

OVERRIDES = {
    # L2-L3 is claimed severe, but the canal measures wide: grounding contradicts it.
    "L2-L3": {"canal_stenosis": "severe"},
    "L4-L5": {
        "canal_stenosis": "moderate",
        "herniation": {"value": "protrusion", "zone": "paracentral_left"},
        "disc_bulging": True,
        "foraminal_stenosis_left": 2,
    },
    # A bulge at the top level, a severe stenosis lower down: the impression must put L4-L5 first.
    "L1-L2": {"disc_bulging": True, "herniation": "bulge"},
    # Low-probability Modic change: indeterminate under a 0.5 threshold.
    "L5-S1": {"modic_upper": {"value": 1, "probability": 0.3}},
}


def _report(threshold: object = 0.5):
    study, anatomy = make_study()
    findings = make_findings(OVERRIDES)
    verdicts = make_verdicts(findings, study, anatomy, {("L2-L3", "canal_stenosis")})
    measurements = [m for v in verdicts for m in v.evidence]
    report, statements = assemble_report(
        study, anatomy, findings, verdicts, measurements, MODEL_INFO, threshold, now_iso()
    )
    return study, anatomy, report, statements


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("report")
    study, anatomy, report, statements = _report()
    outputs.write_outputs(
        report, study, anatomy, statements, out, indication="Back pain <script>alert(1)</script>"
    )
    return out, report


def test_every_output_is_written_and_recorded(rendered) -> None:
    out, report = rendered
    names = {p.name for p in out.iterdir()}
    assert names == set(outputs.FILES.values())
    assert set(report.outputs) == set(outputs.FILES)


def test_contradicted_statement_is_withheld_and_listed_apart_with_reason(rendered) -> None:
    out, report = rendered
    text = (out / "report.txt").read_text()
    findings_part, withheld_part = text.split("WITHHELD STATEMENTS")
    assert "severe central canal stenosis" not in findings_part
    assert "severe central canal stenosis" in withheld_part
    assert "the measurement allows none of the claimed grade" in withheld_part
    final = report.findings.level("L2-L3").canal_stenosis
    assert final.value is None and final.not_assessable.startswith("withheld")
    assert report.raw_findings.level("L2-L3").canal_stenosis.value == "severe"
    assert [(v.level, v.field) for v in report.withheld] == [("L2-L3", "canal_stenosis")]


def test_low_probability_statement_is_marked_indeterminate(rendered) -> None:
    out, report = rendered
    assert [(d["level"], d["field"]) for d in report.indeterminate] == [("L5-S1", "modic_upper")]
    text = (out / "report.txt").read_text()
    line = next(x for x in text.splitlines() if "Modic type 1" in x and "[" in x)
    assert "INDETERMINATE" in line


def test_per_field_thresholds_from_calibration_apply_only_to_their_field() -> None:
    *_, statements = _report(threshold={"canal_stenosis": 0.95})
    marked = {(s.level, s.field) for s in statements if s.status == "indeterminate"}
    assert marked and all(f == "canal_stenosis" for _, f in marked)
    assert ("L5-S1", "modic_upper") not in marked


def test_impression_orders_levels_by_clinical_significance() -> None:
    *_, statements = _report()
    groups = impression(statements)
    # L5-S1's Modic change outranks L1-L2's bulge clinically, but it is only indeterminate.
    assert [g["level"] for g in groups] == ["L4-L5", "L1-L2", "L5-S1"]
    first = [s.field for s in groups[0]["statements"]]
    assert first[0] == "canal_stenosis"  # moderate stenosis before the protrusion and the bulge
    assert all(s.status != "withheld" for g in groups for s in g["statements"])


def test_text_report_has_exam_technique_levels_and_disclaimer(rendered) -> None:
    out, _ = rendered
    text = (out / "report.txt").read_text()
    for part in ("EXAM: MRI LUMBAR SPINE", "TECHNIQUE:", "TR/TE 3500/100 ms", "IMPRESSION:"):
        assert part in text
    assert text.startswith("PRELIMINARY AI DRAFT -- NOT FOR CLINICAL USE")
    assert text.index("L1-L2:") < text.index("L4-L5:") < text.index("IMPRESSION:")
    assert "T12-L1:\n  not assessable (outside the field of view)" in text
    assert "PHANTOM-0001" not in text and "Phantom^Report" not in text  # no patient identifiers


def test_html_is_self_contained_and_autoescaped(rendered) -> None:
    out, _ = rendered
    html = (out / "report.html").read_text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # No external resources: every src is an inline data URI, no stylesheet links.
    srcs = re.findall(r'src="([^"]*)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<link" not in html and "http://" not in html and "https://" not in html
    assert "PRELIMINARY AI DRAFT -- NOT FOR CLINICAL USE" in html
    # Probability and verdict per statement.
    assert html.count('class="badge supported"') >= 60


def test_key_image_shows_outline_and_measurement(rendered) -> None:
    out, _ = rendered
    html = (out / "report.html").read_text()

    alt = "key image: L4-L5 moderate central canal stenosis"
    b64 = re.search(f'alt="{alt}" src="data:image/png;base64,([^"]+)"', html)
    assert b64 is not None
    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(b64.group(1)))).convert("RGB"))

    def count(color: tuple[int, int, int]) -> int:
        return int(np.all(img == np.array(color), axis=-1).sum())

    assert count(COLORS["disc"]) > 50  # the level's disc outlined
    assert count(COLORS["canal"]) > 50  # the canal outlined
    assert count(COLORS["measurement"]) > 20  # the AP distance drawn


def test_findings_json_has_raw_final_verdicts_and_measurements(rendered) -> None:
    out, _ = rendered
    doc = json.loads((out / "findings.json").read_text())
    assert {"raw_findings", "findings", "verdicts", "measurements", "statements"} <= set(doc)
    raw_l23 = next(lv for lv in doc["raw_findings"]["levels"] if lv["level"] == "L2-L3")
    fin_l23 = next(lv for lv in doc["findings"]["levels"] if lv["level"] == "L2-L3")
    assert raw_l23["canal_stenosis"]["value"] == "severe"
    assert "not_assessable" in fin_l23["canal_stenosis"]
    assert any(m["name"] == "canal_ap_mm" for m in doc["measurements"])
    statuses = {s["status"] for s in doc["statements"]}
    assert statuses == {"reported", "withheld", "indeterminate", "not_assessable"}


def test_provenance_json_records_hashes_uids_and_times(rendered) -> None:
    out, report = rendered
    doc = json.loads((out / "provenance.json").read_text())
    assert doc["model_sha256"] == "ab" * 32 and doc["adapter_sha256"] == "cd" * 32
    assert len(doc["rules_sha256"]) == 64 and len(doc["schema_sha256"]) == 64
    assert doc["study_uid"] == report.provenance.study_uid
    assert len(doc["input_sop_instance_uids"]) == 9
    assert doc["finished_at"] >= doc["started_at"]


def test_failure_while_rendering_leaves_no_partial_output(tmp_path, monkeypatch) -> None:
    study, anatomy, report, statements = _report()
    (tmp_path / "keep.txt").write_text("an earlier file")

    def boom(*a, **k):
        raise RuntimeError("disk full while writing the SR")

    monkeypatch.setattr(outputs, "build_sr", boom)
    with pytest.raises(RuntimeError):
        outputs.write_outputs(report, study, anatomy, statements, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]  # no seg.dcm, no staging folder


def test_atomic_write_replaces_whole_file_and_leaves_no_temporary(tmp_path) -> None:
    target = tmp_path / "manifest.csv"
    atomic.write_text(target, "old\n")
    atomic.write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.csv"]


def test_atomic_write_to_unwritable_place_is_an_output_error(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError):
        atomic.write_text(blocker / "sub" / "a.txt", "y")


def test_statements_cover_every_field_of_every_level() -> None:
    findings = make_findings()
    statements = build_statements(findings, [], None)
    assert len(statements) == 3 + len(findings.levels) * 14  # count, transitional, alignment
    assert all(s.verdict is None for s in statements)


def test_bulge_is_said_once_and_not_denied_in_the_normal_summary(rendered) -> None:
    out, _ = rendered
    text = (out / "report.txt").read_text()
    block = text.split("L1-L2:\n")[1].split("\n\n")[0]
    assert "broad-based disc bulge" in block.lower()  # the prose writes sentences
    assert "diffuse disc bulge" not in block and "No disc bulge" not in block


def test_unwritable_output_folder_is_an_output_error_with_exit_73(tmp_path: Path) -> None:
    study, anatomy, report, statements = _report()
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(OutputError) as err:
        outputs.write_outputs(report, study, anatomy, statements, blocker / "out")
    assert err.value.exit_code == 73


def test_study_without_dicom_headers_gets_every_output_but_sr_and_seg(tmp_path: Path) -> None:
    """A NIfTI input has no DICOM headers to reference: no SR/SEG, said in the report."""
    study, anatomy, report, statements = _report()
    study.series[0].headers = []
    written = outputs.write_outputs(report, study, anatomy, statements, tmp_path)
    assert set(written) == {"text", "html", "json", "provenance"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["report.txt", "report.html", "findings.json", "provenance.json"]
    )
    assert "NOTE: report.sr.dcm and seg.dcm not written" in (tmp_path / "report.txt").read_text()


def test_impression_points_at_levels_with_withheld_statements(rendered) -> None:
    out, _ = rendered
    text = (out / "report.txt").read_text()
    impression_part = text.split("IMPRESSION:")[1].split("WITHHELD STATEMENTS")[0]
    assert "Withheld: 1 statement(s) at L2-L3 are contradicted by the images" in impression_part
