"""The defects the hardening issue found in ordinary studies, each reproduced from a phantom whose
slices were edited with pydicom, as a user's export would differ from ours."""

from __future__ import annotations

import csv
import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest

import reporter
from reporter.contracts.report import Report
from reporter.errors import InputDataError, InputMissingError, describe_internal
from reporter.ingest import load_study

# Distinctive stand-ins for patient data: none may reach stderr, stdout or the manifest.
PLANTED_NAME = "Quuxley Zorbington"  # no '^': highdicom warns with the name in the message
PLANTED_BIRTH_DATE = "17/04/1923"  # not a DICOM DA


def _variant(
    phantom_dir: Path, dest: Path, edit: Callable[[pydicom.Dataset], None], only: str = ""
) -> Path:
    """A copy of the phantom's DICOM folder with `edit` applied to every slice (of the series
    folders whose name contains `only`)."""
    shutil.copytree(phantom_dir / "dicom", dest)
    for f in sorted(dest.rglob("*.dcm")):
        if only and only not in f.parent.name:
            continue
        ds = pydicom.dcmread(f)
        edit(ds)
        ds.save_as(f)
    return dest


def _report(phantom, phantom_dir: Path, study: Path, out: Path) -> Report:
    """The real ingest, anatomy import, grounding and writers; the phantom's truth stands in for
    the VLM so that each test takes seconds."""
    return reporter.report_study(
        study, out_dir=out, seg=phantom_dir / "seg.dcm", findings=phantom.findings
    )


def _dciodvfy_errors(path: Path) -> list[str]:
    exe = shutil.which("dciodvfy")
    if exe is None:
        return []  # test_render_dicom skips on this; here the report itself is the point
    proc = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=120)
    return [x for x in (proc.stdout + proc.stderr).splitlines() if x.startswith("Error")]


def test_deidentified_study_without_patient_id_birth_date_or_accession_is_reported(
    phantom, phantom_dir: Path, tmp_path: Path
) -> None:
    def deidentify(ds: pydicom.Dataset) -> None:
        for keyword in ("PatientBirthDate", "PatientID", "AccessionNumber", "StudyID"):
            if keyword in ds:
                delattr(ds, keyword)

    study = _variant(phantom_dir, tmp_path / "deid", deidentify)
    _report(phantom, phantom_dir, study, tmp_path / "out")
    for name in ("report.sr.dcm", "seg.dcm"):
        ds = pydicom.dcmread(tmp_path / "out" / name)
        # Type 2: present and empty, as the source had no value.
        assert ds.PatientID == "" and ds.PatientBirthDate == "" and ds.AccessionNumber == ""
        assert _dciodvfy_errors(tmp_path / "out" / name) == []


def test_legal_iso2022_character_set_with_a_japanese_name_is_written_as_utf8(
    phantom, phantom_dir: Path, tmp_path: Path
) -> None:
    def japanese(ds: pydicom.Dataset) -> None:
        ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
        ds.PatientName = "Yamada^Tarou=\033$B;3ED\033(B^\033$BB@O:\033(B"

    study = _variant(phantom_dir, tmp_path / "jp", japanese)
    _report(phantom, phantom_dir, study, tmp_path / "out")
    sr = pydicom.dcmread(tmp_path / "out" / "report.sr.dcm")
    assert sr.SpecificCharacterSet == "ISO_IR 192"
    assert str(sr.PatientName) == "Yamada^Tarou=山田^太郎"
    assert _dciodvfy_errors(tmp_path / "out" / "report.sr.dcm") == []


def test_unknown_character_set_is_read_with_the_default_and_stated_as_a_limitation(
    phantom, phantom_dir: Path, tmp_path: Path
) -> None:
    def unknown(ds: pydicom.Dataset) -> None:
        ds.SpecificCharacterSet = "ISO_IR 999"

    study = _variant(phantom_dir, tmp_path / "unk", unknown)
    rep = _report(phantom, phantom_dir, study, tmp_path / "out")
    assert any("ISO_IR 999" in line for line in rep.limitations)
    assert "ISO_IR 999" in (tmp_path / "out" / "report.txt").read_text()


def test_truncated_slice_is_left_out_and_the_report_says_so_before_any_finding(
    phantom, phantom_dir: Path, tmp_path: Path
) -> None:
    study = _variant(phantom_dir, tmp_path / "trunc", lambda ds: None)
    t2 = sorted((study / "02_sag_t2").glob("*.dcm"))
    last = t2[-1]  # an edge slice: the rest stays one regular stack
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])

    loaded = load_study(study)
    sag_t2 = loaded.get("sag_t2")
    assert sag_t2 is not None and sag_t2.shape[0] == len(t2) - 1
    rep = _report(phantom, phantom_dir, study, tmp_path / "out")
    assert len(rep.limitations) == 1 and "damaged image(s) left out" in rep.limitations[0]
    text = (tmp_path / "out" / "report.txt").read_text()
    assert text.index("LIMITATIONS") < text.index("FINDINGS:")
    html = (tmp_path / "out" / "report.html").read_text()
    assert 'class="limitations"' in html and "damaged image(s) left out" in html


def test_series_with_most_slices_damaged_is_set_aside_and_the_report_says_so_first(
    phantom, phantom_dir: Path, tmp_path: Path
) -> None:
    study = _variant(phantom_dir, tmp_path / "wrecked", lambda ds: None)
    for f in sorted((study / "02_sag_t2").glob("*.dcm"))[::2]:  # every other slice
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    rep = _report(phantom, phantom_dir, study, tmp_path / "out")
    assert any("sagittal T2" in line and "could not be used" in line for line in rep.limitations), (
        rep.limitations
    )
    text = (tmp_path / "out" / "report.txt").read_text()
    assert "LIMITATIONS -- READ FIRST" in text and "Limitation: the sagittal T2" in text


def test_images_sharing_one_sop_instance_uid_are_set_aside_naming_that_cause(
    phantom_dir: Path, tmp_path: Path
) -> None:
    shared: list[str] = []

    def same_uid(ds: pydicom.Dataset) -> None:
        shared.append(shared[0] if shared else ds.SOPInstanceUID)
        ds.SOPInstanceUID = shared[0]
        ds.file_meta.MediaStorageSOPInstanceUID = shared[0]

    study = load_study(_variant(phantom_dir, tmp_path / "dup", same_uid, only="sag_t2"))
    assert study.get("sag_t2") is None
    (aside,) = [a for a in study.set_aside if a.plane == "sagittal"]
    assert "share 1 SOP Instance UID" in aside.reason
    assert any("could not be used" in line for line in study.limitations)


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares width x height (8-bit grey) with a tiny, never-decoded IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    return path


@pytest.mark.parametrize("side", [20_000, 9_000])
def test_oversized_png_is_refused_as_bad_input(tmp_path: Path, side: int) -> None:
    png = _png_header_only(tmp_path / "huge.png", side, side)
    with pytest.raises(InputDataError, match="MR image"):
        load_study(png)


def test_failed_report_leaves_no_output_folder_behind(phantom_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "new" / "out"
    with pytest.raises(InputMissingError):
        reporter.report_study(phantom_dir / "dicom", out_dir=out, seg=tmp_path / "none.nii")
    assert not out.exists()


def test_internal_error_line_names_type_and_place_never_the_value() -> None:
    from pydicom.valuerep import DA

    try:
        DA(PLANTED_BIRTH_DATE)
    except ValueError as exc:
        line = describe_internal(exc)
    assert line.startswith("internal error (ValueError at pydicom/")
    assert PLANTED_BIRTH_DATE not in line


# --- the command line as a user runs it (a subprocess: its stderr is what a user sees) ----
def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    return subprocess.run(
        [sys.executable, "-m", "reporter.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    "args",
    [["--bogus"], ["report"], ["batch", "wl.csv", "--workers", "0"], ["report", "--bogus", "x"]],
    ids=["unknown-option", "missing-argument", "workers-0", "unknown-report-option"],
)
def test_usage_errors_exit_64_with_one_line(args: list[str]) -> None:
    proc = _cli(*args)
    assert proc.returncode == 64, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("spine-report: error: "), proc.stderr


def test_unwritable_out_is_refused_with_exit_73_before_any_work(
    phantom_dir: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = _cli("report", str(phantom_dir / "dicom"), "--out", str(blocker / "out"))
    assert proc.returncode == 73
    assert proc.stderr.count("\n") == 1 and "cannot write" in proc.stderr


@pytest.mark.slow
def test_patient_data_in_odd_headers_never_reaches_stderr_or_stdout(
    phantom_dir: Path, tmp_path: Path
) -> None:
    def odd(ds: pydicom.Dataset) -> None:
        ds.PatientName = PLANTED_NAME
        ds.PatientBirthDate = PLANTED_BIRTH_DATE
        for keyword in ("PatientID", "AccessionNumber"):
            if keyword in ds:
                delattr(ds, keyword)

    study = _variant(phantom_dir, tmp_path / "odd", odd)
    proc = _cli(
        "report", str(study), "--seg", str(phantom_dir / "seg.dcm"), "--out", str(tmp_path / "o")
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no library warning, no log record
    for planted in (PLANTED_NAME, "Quuxley", PLANTED_BIRTH_DATE, "1923"):
        assert planted not in proc.stdout
    # The SR carries the patient module as DICOM requires; the unparseable date is left empty.
    sr = pydicom.dcmread(tmp_path / "o" / "report.sr.dcm")
    assert str(sr.PatientName) == PLANTED_NAME and sr.PatientBirthDate == ""


def test_batch_manifest_and_item_ids_carry_no_folder_names(tmp_path: Path) -> None:
    from reporter.worklist import read_manifest, run_batch

    folder = tmp_path / "studies" / "Zorbington_Quuxley_19230417"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("not DICOM")
    results = run_batch(tmp_path / "studies", tmp_path / "out", workers=1, timeout_s=300)
    assert [r.status for r in results] == ["failed"]
    rows = read_manifest(tmp_path / "out")
    with (tmp_path / "out" / "manifest.csv").open(newline="") as fh:
        raw = fh.read()
    assert "Zorbington" not in raw and "Quuxley" not in raw and "19230417" not in raw
    assert rows[0]["study_sha256"] and rows[0]["reason"]
    assert "<study>" in rows[0]["reason"]  # the path in the error line is replaced
    assert not any("Zorbington" in p.name for p in (tmp_path / "out").iterdir())
    assert next(iter(csv.DictReader(raw.splitlines())))["item_id"].startswith("study-")


def test_enhanced_multiframe_study_is_reported_with_valid_seg_and_sr(
    phantom, phantom_dir: Path, tmp_path: Path
) -> None:
    """Vendors (Philips among them) export enhanced multi-frame MR: the SEG must reference the
    one object frame by frame, and the SR must not describe it as a single-frame image."""
    import highdicom as hd

    study = tmp_path / "enhanced"
    study.mkdir()
    for folder in sorted((phantom_dir / "dicom").iterdir()):
        stacks: dict[tuple[float, ...], list[pydicom.Dataset]] = {}
        for f in sorted(folder.glob("*.dcm")):
            ds = pydicom.dcmread(f)
            iop = tuple(round(float(x), 3) for x in ds.ImageOrientationPatient)
            stacks.setdefault(iop, []).append(ds)
        for i, frames in enumerate(stacks.values()):  # one object per stack of parallel slices
            hd.legacy.LegacyConvertedEnhancedMRImage(
                frames,
                series_instance_uid=frames[0].SeriesInstanceUID,
                series_number=int(frames[0].SeriesNumber),
                sop_instance_uid=hd.UID(),
                instance_number=i + 1,
            ).save_as(study / f"{folder.name}_{i}.dcm")
    _report(phantom, phantom_dir, study, tmp_path / "out")
    seg = pydicom.dcmread(tmp_path / "out" / "seg.dcm")
    assert len(seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence) == 1
    for name in ("report.sr.dcm", "seg.dcm"):
        assert _dciodvfy_errors(tmp_path / "out" / name) == []


@pytest.mark.slow
def test_batch_keeps_patient_data_out_of_stderr_stdout_and_manifest(
    phantom_dir: Path, tmp_path: Path
) -> None:
    def odd(ds: pydicom.Dataset) -> None:
        ds.PatientName = PLANTED_NAME
        ds.PatientBirthDate = PLANTED_BIRTH_DATE
        ds.PatientID = "QX-7741-ZORB"
        ds.AccessionNumber = "ACC99887766"

    folder = tmp_path / "studies" / "Zorbington_Quuxley"
    _variant(phantom_dir, folder, odd)
    shutil.copy(phantom_dir / "seg.dcm", tmp_path / "seg.dcm")
    worklist = tmp_path / "wl.csv"
    worklist.write_text(f"study,accession,seg\n{folder},ACC99887766,{tmp_path / 'seg.dcm'}\n")
    proc = _cli("batch", str(worklist), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = (tmp_path / "out" / "manifest.csv").read_text()
    planted = (PLANTED_NAME, "Quuxley", "Zorbington", "1923", "QX-7741-ZORB", "ACC99887766")
    for text in (proc.stderr, proc.stdout, manifest):
        for p in planted:
            assert p not in text, p
