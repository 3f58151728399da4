"""DICOM outputs: SR (TID 1500) and SEG are valid (dciodvfy), readable (dsrdump), complete."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from reporter.contracts import labels as L
from reporter.pipeline import assemble_report
from reporter.render import outputs
from reporter.render.provenance import now_iso
from tests.report_factory import make_findings, make_study, make_verdicts

MODEL_INFO = {"model_name": "test-vlm", "model_sha256": "ab" * 32, "adapter_sha256": "cd" * 32}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("dicom")
    study, anatomy = make_study()
    findings = make_findings(
        {
            "L4-L5": {
                "canal_stenosis": "moderate",
                "herniation": {"value": "extrusion", "zone": "central"},
                "spondylolisthesis": {"value": 1, "direction": "antero"},
            },
            "L2-L3": {"canal_stenosis": "severe"},
        }
    )
    verdicts = make_verdicts(findings, study, anatomy, {("L2-L3", "canal_stenosis")})
    measurements = [m for v in verdicts for m in v.evidence]
    report, statements = assemble_report(
        study, anatomy, findings, verdicts, measurements, MODEL_INFO, None, now_iso()
    )
    outputs.write_outputs(report, study, anatomy, statements, out)
    return out, study, anatomy


def _dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    proc = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=120)
    lines = (proc.stdout + proc.stderr).splitlines()
    errors = [x for x in lines if x.startswith("Error")]
    warnings = [x for x in lines if x.startswith("Warning")]
    return errors, warnings


def test_sr_passes_dciodvfy_without_errors(written) -> None:
    out, *_ = written
    errors, warnings = _dciodvfy(out / "report.sr.dcm")
    assert errors == []
    # The only warning we accept: dciodvfy does not know our local (99-prefixed) coding scheme.
    assert all("99SPREP" in w for w in warnings), warnings


def test_seg_passes_dciodvfy_without_errors(written) -> None:
    out, *_ = written
    errors, warnings = _dciodvfy(out / "seg.dcm")
    assert errors == []
    assert all("99SPREP" in w for w in warnings), warnings


def test_dsrdump_reads_the_sr(written) -> None:
    exe = shutil.which("dsrdump")
    if exe is None:
        pytest.skip("dsrdump (dcmtk) is not installed")
    out, *_ = written
    proc = subprocess.run([exe, "+Pl", str(out / "report.sr.dcm")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    dump = proc.stdout
    assert "Imaging Measurement Report" in dump
    assert "Completion Flag     : PARTIAL" in dump
    assert "Verification Flag   : UNVERIFIED" in dump
    assert "Preliminary Flag    : PRELIMINARY" in dump
    assert "L4/L5 disc" in dump and "Referenced Segment" in dump
    assert "model_sha256=" + "ab" * 32 in dump and "adapter_sha256=" + "cd" * 32 in dump


def test_sr_has_one_group_per_level_with_segment_measurements_and_evaluations(written) -> None:
    out, study, _ = written
    ds = pydicom.dcmread(out / "report.sr.dcm")
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert ds.CompletionFlag == "PARTIAL" and ds.VerificationFlag == "UNVERIFIED"
    assert ds.PreliminaryFlag == "PRELIMINARY"
    report = hd.sr.Comprehensive3DSR.from_dataset(ds)
    content = hd.sr.MeasurementReport.from_sequence([report])
    groups = content.get_volumetric_roi_measurement_groups()
    ids = [g.tracking_identifier for g in groups]
    # T12-L1 is outside the FOV (nothing assessable): no group for it.
    assert ids == [f"{lv} disc level" for lv in ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")]
    seg = pydicom.dcmread(out / "seg.dcm")
    l45 = groups[3]
    ref = l45.referenced_segment
    assert ref.referenced_sop_instance_uid == seg.SOPInstanceUID
    labels = {s.SegmentNumber: s.SegmentLabel for s in seg.SegmentSequence}
    assert [labels[n] for n in ref.referenced_segment_numbers] == ["L4-L5"]
    names = [e.name.meaning for e in l45.get_qualitative_evaluations()]
    assert "Central canal stenosis" in names and "Disc herniation zone" in names
    meas = l45.get_measurements()
    assert meas and meas[0].unit.value == "mm"
    # The withheld L2-L3 canal statement is not asserted in the SR.
    l23 = [e.name.meaning for e in groups[1].get_qualitative_evaluations()]
    assert "Central canal stenosis" not in l23
    # Measurements point at a source image of the study.
    sop_uids = set(study.series[0].sop_instance_uids)
    ref_img = meas[0].referenced_images[0]
    assert ref_img.referenced_sop_instance_uid in sop_uids


def test_seg_segments_reproduce_the_label_map(written) -> None:
    out, study, anatomy = written
    seg = hd.seg.segread(out / "seg.dcm")
    labels_by_number = {s.SegmentNumber: s.SegmentLabel for s in seg.SegmentSequence}
    assert "L4-L5" in labels_by_number.values() and "canal" in labels_by_number.values()
    number = next(n for n, lab in labels_by_number.items() if lab == "L4-L5")
    sop_uids = study.series[0].sop_instance_uids
    mask = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=sop_uids, segment_numbers=[number]
    )[..., 0]
    np.testing.assert_array_equal(mask.astype(bool), anatomy.labels == L.disc_label("L4-L5"))
