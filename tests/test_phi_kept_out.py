"""Patient data kept out (issue 20, item 2).

Distinctive stand-ins for a patient's identity are planted in every PHI attribute of a phantom
study's slices (PS3.15 Table E.1-1: names, IDs, birth date, accession and study numbers,
addresses, telephone, physicians, operators, institution, station, comments). `report`, `batch`,
`eval` and `watch` (against a real Orthanc, when installed) then run as a user runs them, and
none of the planted values may appear in stdout, stderr, manifest.csv, the batch summary,
metrics, studies.jsonl, run.json, summary.md, provenance.json, findings.json, the watch state or
an error line, also for a study that fails. Only report.sr.dcm and seg.dcm carry them: the
DICOM patient module, as the standard requires (checked, so the test proves the planted values
reached the pipeline).

The command line has no verbose or log option: its contract is results on stdout and one line
per error on stderr. The loudest a user can make it is PYTHONWARNINGS=always, which every run here
sets; the Python API is run with every logger at DEBUG and every warning recorded.
SPINE_REPORTER_DEBUG=1 prints tracebacks that may quote header values, as documented, and is
left out.

`--deidentify` (reporter.render.deidentify): the outputs hold none of the planted values nor the
planted series / study descriptions, are marked as de-identified, still reference the source
images by their own UIDs (Retain UIDs), and dciodvfy finds no error in them that it does not
find in the identified outputs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset

import reporter
from reporter.errors import InputDataError
from reporter.worklist import read_manifest

# Every value is made of words no report, code table or library message contains.
PLANTED: dict[str, str] = {
    "PatientName": "Zorbington^Quuxley^Marvella",
    "PatientID": "QX-7741-ZORB",
    "PatientBirthDate": "19230417",
    "PatientBirthTime": "031415",
    "AccessionNumber": "ACC99887766",
    "StudyID": "STZ-48213",
    "ReferringPhysicianName": "Plonkwhistle^Ermintrude",
    "InstitutionName": "Grimsbury Vale Infirmary",
    "InstitutionAddress": "12 Snorkmaiden Lane, Grimsbury",
    "InstitutionalDepartmentName": "Vexmoor Quillery",
    "PatientAddress": "77 Wobblecrank Road, Fenchester",
    "OtherPatientIDs": "OPID-55231-XQ",
    "OtherPatientNames": "Quibbleworth^Zenobia",
    "PatientMotherBirthName": "Fandangle^Hortensia",
    "PatientTelephoneNumbers": "+44 7700 918273",
    "OperatorsName": "Krumplethorpe^Bastian",
    "PerformingPhysicianName": "Wigglesford^Theodora",
    "NameOfPhysiciansReadingStudy": "Snoddgrass^Peregrine",
    "PhysiciansOfRecord": "Muddlecombe^Ignatius",
    "RequestingPhysician": "Bramblewick^Octavia",
    "StationName": "ZORBSTATION7",
    "MedicalRecordLocator": "MRL-33917-ZQ",
    "IssuerOfPatientID": "Quuxshire Trust MPI",
    "PatientComments": "Prefers Quuxie Zorbington",
    "AdditionalPatientHistory": "Fell off the Wobblecrank ladder",
    "RequestedProcedureID": "RPID-66120-Z",
    "PerformedProcedureStepID": "PPS-90211-Q",
    "ImageComments": "Zorbington follow-up",
    "StudyDescription": "LSPINE Zorbington research",
}
NESTED_ID = "OPIDSEQ-20417-QZ"  # OtherPatientIDsSequence > PatientID
# What must not appear: every full value and its distinctive words.
NEEDLES = sorted(
    {*PLANTED.values(), NESTED_ID}
    | {
        "Zorbington",
        "Quuxley",
        "Marvella",
        "Plonkwhistle",
        "Grimsbury",
        "Snorkmaiden",
        "Vexmoor",
        "Wobblecrank",
        "Fenchester",
        "Quibbleworth",
        "Fandangle",
        "Krumplethorpe",
        "Wigglesford",
        "Snoddgrass",
        "Muddlecombe",
        "Bramblewick",
        "Quuxshire",
        "Quuxie",
        "1923-04-17",
    }
)
# Descriptors: shown by design (they name the series a limitation is about), so only the
# de-identified outputs are checked for them (Annex E removes them; Clean Descriptors).
DESCRIPTOR = "Xyloquent"


def _found(text: str) -> list[str]:
    return [n for n in NEEDLES if n in text]


def _plant(ds: Dataset) -> None:
    for keyword, value in PLANTED.items():
        setattr(ds, keyword, value)
    other = Dataset()
    other.PatientID = NESTED_ID
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = [other]
    ds.SeriesDescription = f"{ds.get('SeriesDescription', '')} {DESCRIPTOR}".strip()
    ds.ProtocolName = f"{DESCRIPTOR} protocol"


def _planted_copy(phantom_dir: Path, dest: Path, damage_sagittal: bool = False) -> Path:
    """A copy of the phantom's DICOM folder with PHI planted in every slice; with
    `damage_sagittal` every sagittal slice is cut in half, so the study cannot be reported."""
    shutil.copytree(phantom_dir / "dicom", dest)
    for f in sorted(dest.rglob("*.dcm")):
        ds = pydicom.dcmread(f)
        _plant(ds)
        ds.save_as(f)
        if damage_sagittal and "sag" in f.parent.name:
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    return dest


def _cli(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SPINE_REPORTER_DEBUG"}
    env["PYTHONWARNINGS"] = "always"  # as loud as a user can make the libraries
    return subprocess.run(
        [sys.executable, "-m", "reporter.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )


def _text_files(folder: Path, skip_suffixes: tuple[str, ...] = ()) -> dict[str, str]:
    """Every file under `folder` (binary ones decoded leniently), by relative path."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.name.endswith(skip_suffixes):
            out[str(p.relative_to(folder))] = p.read_bytes().decode("utf-8", "replace")
    return out


def _assert_clean(where: str, text: str) -> None:
    assert not _found(text), f"planted patient data in {where}: {_found(text)}"


def _assert_patient_module(dcm: Path) -> None:
    """The report's DICOM objects carry the patient module (the plant reached the pipeline)."""
    ds = pydicom.dcmread(dcm)
    assert str(ds.PatientName) == PLANTED["PatientName"]
    assert ds.PatientID == PLANTED["PatientID"]
    assert ds.PatientBirthDate == PLANTED["PatientBirthDate"]


@pytest.fixture(scope="module")
def planted(phantom_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _planted_copy(phantom_dir, tmp_path_factory.mktemp("planted") / "study")


@pytest.fixture(scope="module")
def identified_report(planted: Path, phantom_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("report") / "out"
    proc = _cli("report", str(planted), "--seg", str(phantom_dir / "seg.dcm"), "--out", str(out))
    return proc, out


def test_report_keeps_planted_patient_data_out_of_stdout_stderr_and_text_outputs(
    identified_report: tuple[subprocess.CompletedProcess, Path],
) -> None:
    proc, out = identified_report
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr == ""
    _assert_clean("stdout", proc.stdout)
    for name, text in _text_files(out, skip_suffixes=(".dcm",)).items():
        _assert_clean(name, text)  # report.txt / .html, findings.json, provenance.json
    for name in ("report.sr.dcm", "seg.dcm"):
        _assert_patient_module(out / name)


def test_report_error_line_of_an_unusable_study_carries_no_patient_data(
    phantom_dir: Path, tmp_path: Path
) -> None:
    study = _planted_copy(phantom_dir, tmp_path / "broken", damage_sagittal=True)
    proc = _cli("report", str(study), "--out", str(tmp_path / "out"))
    assert proc.returncode == 65, proc.stderr[-2000:]
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("spine-report: error:")
    _assert_clean("stderr", proc.stderr)
    _assert_clean("stdout", proc.stdout)
    assert not (tmp_path / "out").exists()


def test_python_api_with_debug_logging_records_no_patient_data(
    phantom, phantom_dir: Path, planted: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every logger at DEBUG, every warning recorded: a report and a failing study."""
    broken = _planted_copy(phantom_dir, tmp_path / "broken", damage_sagittal=True)
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reporter.report_study(
            planted, out_dir=tmp_path / "ok", seg=phantom_dir / "seg.dcm", findings=phantom.findings
        )
        with pytest.raises(InputDataError) as failed:
            reporter.report_study(broken, out_dir=tmp_path / "no", findings=phantom.findings)
    _assert_clean("log records", "\n".join(r.getMessage() for r in caplog.records))
    _assert_clean("warnings", "\n".join(str(w.message) for w in caught))
    _assert_clean("the error message", str(failed.value))


@pytest.mark.slow
def test_batch_keeps_planted_patient_data_out_of_every_file_but_the_dicom_report(
    phantom_dir: Path, planted: Path, tmp_path: Path
) -> None:
    """A worklist of the planted study (by a folder named after the patient, with its accession)
    and one that fails; the failure's line in stderr, manifest and summary is clean too."""
    studies = tmp_path / "studies"
    good = studies / "Zorbington_Quuxley_19230417"
    shutil.copytree(planted, good)
    bad = _planted_copy(phantom_dir, studies / "Quuxley_Zorbington_broken", damage_sagittal=True)
    seg = tmp_path / "seg.dcm"
    shutil.copy(phantom_dir / "seg.dcm", seg)
    worklist = tmp_path / "wl.csv"
    acc = PLANTED["AccessionNumber"]
    worklist.write_text(f"study,accession,seg\n{good},{acc},{seg}\n{bad},{acc},\n")
    out = tmp_path / "out"
    proc = _cli("batch", str(worklist), "--out", str(out))
    assert proc.returncode == 1, proc.stderr[-2000:]  # one item failed
    _assert_clean("stdout (the batch summary)", proc.stdout)
    _assert_clean("stderr", proc.stderr)
    rows = read_manifest(out)
    assert [r["status"] for r in rows] == ["done", "failed"]
    assert rows[1]["reason"]  # the error line is there, and clean (checked below)
    for name, text in _text_files(out, skip_suffixes=(".dcm",)).items():
        _assert_clean(name, text)  # manifest.csv, report.txt / .html, json, provenance
    assert not _found(" ".join(p.name for p in out.rglob("*")))  # no folder named after them
    _assert_patient_module(out / rows[0]["item_id"] / "report.sr.dcm")


@pytest.mark.slow
def test_eval_keeps_planted_patient_data_out_of_metrics_records_and_progress(
    phantom_dir: Path, tmp_path: Path
) -> None:
    """`eval --data` on two phantom cases whose slices carry the planted data, one unusable."""
    data = tmp_path / "data"
    for case, damage in (("case_a", False), ("case_b", True)):
        folder = data / case
        folder.mkdir(parents=True)
        for item in phantom_dir.iterdir():
            if item.name != "dicom":
                (shutil.copytree if item.is_dir() else shutil.copy)(item, folder / item.name)
        _planted_copy(phantom_dir, folder / "dicom", damage_sagittal=damage)
    out = tmp_path / "eval"
    proc = _cli(
        "eval", "--data", str(data), "--format", "phantom", "--anatomy", "truth",
        "--no-injected", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    _assert_clean("stdout", proc.stdout)
    _assert_clean("stderr", proc.stderr)
    records = [json.loads(x) for x in (out / "studies.jsonl").read_text().splitlines()]
    assert sorted(bool(r.get("error")) for r in records) == [False, True]
    texts = _text_files(out, skip_suffixes=(".png",))
    assert {"metrics.json", "studies.jsonl", "run.json", "summary.md"} <= set(texts)
    for name, text in texts.items():
        _assert_clean(name, text)


@pytest.mark.slow
def test_watch_keeps_planted_patient_data_out_of_its_output_and_state(
    phantom_dir: Path, planted: Path, tmp_path: Path
) -> None:
    from tests.orthanc_server import missing_reason, running_orthanc

    if missing_reason() is not None:
        pytest.skip(str(missing_reason()))
    from reporter.watch import STATE_FILE

    with running_orthanc(tmp_path / "orthanc") as server:
        (study_uid,) = server.upload(planted)
        out = tmp_path / "out"
        proc = _cli(
            "watch", "--dicomweb", server.dicomweb, "--out", str(out), "--once",
            "--interval", "0.5",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    _assert_clean("stdout", proc.stdout)
    _assert_clean("stderr", proc.stderr)
    state = json.loads((out / STATE_FILE).read_text())["studies"]
    assert {st["status"] for st in state.values()} == {"done"} and set(state) == {study_uid}
    for name, text in _text_files(out, skip_suffixes=(".dcm",)).items():
        _assert_clean(name, text)
    (item,) = [st["item_id"] for st in state.values()]
    _assert_patient_module(out / item / "report.sr.dcm")


# --- --deidentify -------------------------------------------------------------------------------
def _dciodvfy_errors(path: Path) -> set[str]:
    exe = shutil.which("dciodvfy")
    assert exe is not None
    proc = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=120)
    return {x for x in (proc.stdout + proc.stderr).splitlines() if x.startswith("Error")}


def _referenced_uids(ds: Any) -> set[str]:
    found: set[str] = set()

    def visit(d: Dataset) -> None:
        for elem in d:
            if elem.keyword == "ReferencedSOPInstanceUID":
                found.add(str(elem.value))
            elif elem.VR == "SQ":
                for item in elem.value:
                    visit(item)

    visit(ds)
    return found


@pytest.fixture(scope="module")
def deidentified_report(planted: Path, phantom_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """`report --deidentify` on the planted study with one damaged T2 slice (so a limitation
    names the series, and its planted description must be scrubbed from it)."""
    root = tmp_path_factory.mktemp("deid")
    study = root / "study"
    shutil.copytree(planted, study)
    t2 = sorted(next(p for p in study.iterdir() if "sag_t2" in p.name).glob("*.dcm"))
    t2[-1].write_bytes(t2[-1].read_bytes()[: t2[-1].stat().st_size // 2])
    out = root / "out"
    proc = _cli(
        "report", str(study), "--seg", str(phantom_dir / "seg.dcm"), "--out", str(out),
        "--deidentify", "--indication", "back pain, Mr Zorbington",
    )  # fmt: skip
    return proc, out


def test_deidentified_outputs_contain_no_planted_value_or_description(
    deidentified_report: tuple[subprocess.CompletedProcess, Path],
) -> None:
    proc, out = deidentified_report
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = _text_files(out)
    assert set(files) == {
        "report.txt", "report.html", "findings.json", "provenance.json", "report.sr.dcm", "seg.dcm",
    }  # fmt: skip
    for name, text in files.items():
        _assert_clean(name, text)
        assert DESCRIPTOR not in text, name
    _assert_clean("stdout", proc.stdout)
    report_txt = files["report.txt"]
    assert "damaged image(s) left out" in report_txt  # the limitation stays, scrubbed
    assert "de-identified outputs" in report_txt


def test_deidentified_dicom_is_marked_and_still_references_the_source_images(
    planted: Path, deidentified_report: tuple[subprocess.CompletedProcess, Path]
) -> None:
    proc, out = deidentified_report
    assert proc.returncode == 0, proc.stderr[-2000:]
    sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in planted.rglob("*.dcm")]
    source_uids = {str(ds.SOPInstanceUID) for ds in sources}
    study_uid = {str(ds.StudyInstanceUID) for ds in sources}.pop()
    sr = pydicom.dcmread(out / "report.sr.dcm")
    seg = pydicom.dcmread(out / "seg.dcm")
    for ds in (sr, seg):
        assert ds.PatientIdentityRemoved == "YES"
        codes = {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}
        assert {"113100", "113110", "113108"} <= codes  # basic profile, Retain UIDs, patient
        assert ds.DeidentificationMethod
        assert ds.StudyInstanceUID == study_uid  # Retain UIDs: the source study
        assert str(ds.PatientName) == "" and ds.PatientBirthDate == ""
        assert ds.PatientSex in ("M", "F", "O")  # Retain Patient Characteristics
    # Every instance the SR points at is the SEG or a source image, by its own UID; the SEG's
    # segments lie on source images.
    assert _referenced_uids(sr) - {seg.SOPInstanceUID} <= source_uids
    assert seg.SOPInstanceUID in _referenced_uids(sr)
    assert _referenced_uids(seg) and _referenced_uids(seg) <= source_uids
    assert len(sr.ContentSequence) > 1  # the structured content is kept (clean by making)


def test_deidentify_refuses_images_that_declare_burned_in_annotation(
    phantom, phantom_dir: Path, tmp_path: Path
) -> None:
    """Pixels are not cleaned (no Clean Pixel Data option) and report.html shows crops of them."""
    study = tmp_path / "burned"
    shutil.copytree(phantom_dir / "dicom", study)
    for f in sorted(study.rglob("*.dcm")):
        ds = pydicom.dcmread(f)
        ds.BurnedInAnnotation = "YES"
        ds.save_as(f)
    with pytest.raises(InputDataError, match="burned-in annotation"):
        reporter.report_study(
            study,
            out_dir=tmp_path / "out",
            seg=phantom_dir / "seg.dcm",
            findings=phantom.findings,
            deidentify=True,
        )
    assert not (tmp_path / "out").exists()


def test_deidentified_sr_and_seg_add_no_dciodvfy_error(
    identified_report: tuple[subprocess.CompletedProcess, Path],
    deidentified_report: tuple[subprocess.CompletedProcess, Path],
) -> None:
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    (_, plain), (_, deid) = identified_report, deidentified_report
    for name in ("report.sr.dcm", "seg.dcm"):
        assert _dciodvfy_errors(deid / name) <= _dciodvfy_errors(plain / name), name


@pytest.mark.slow
def test_batch_deidentify_writes_clean_reports_in_folders_of_their_own(
    phantom_dir: Path, planted: Path, tmp_path: Path
) -> None:
    from reporter.worklist import run_batch

    worklist = tmp_path / "wl.csv"
    worklist.write_text(f"study,seg\n{planted},{phantom_dir / 'seg.dcm'}\n")
    (result,) = run_batch(worklist, tmp_path / "out", deidentify=True)
    assert result.status == "done", result.reason
    assert result.item.item_id.endswith("-deid")
    folder = tmp_path / "out" / result.item.item_id
    for name, text in _text_files(folder).items():
        _assert_clean(name, text)
        assert DESCRIPTOR not in text, name
    assert pydicom.dcmread(folder / "report.sr.dcm").PatientIdentityRemoved == "YES"
