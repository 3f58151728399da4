"""report_study end to end on phantom studies: the real ingest, anatomy import and grounding."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

import reporter
from reporter import pipeline
from reporter.contracts.findings import StudyFindings
from reporter.errors import InputMissingError
from reporter.render.outputs import FILES


@pytest.fixture(scope="module")
def truth_report(phantom, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("truth")
    rep = reporter.report_study(
        phantom.study, out_dir=out, anatomy=phantom.anatomy, findings=phantom.findings
    )
    return rep, out


def test_report_of_ground_truth_findings_writes_every_output(phantom, truth_report) -> None:
    rep, tmp_path = truth_report
    assert {Path(p).name for p in rep.outputs.values()} == set(FILES.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES.values())
    # One verdict per assessed statement, from the real checker.
    assert rep.verdicts and all(
        v.verdict in ("supported", "contradicted", "unverifiable") for v in rep.verdicts
    )
    # Withheld statements are exactly the contradicted ones, and gone from the final findings.
    for v in rep.withheld:
        assert v.verdict == "contradicted"
        final = rep.findings.level(v.level) if v.level else None
        if final is not None:
            assert getattr(final, v.field).not_assessable.startswith("withheld")
    text = (tmp_path / "report.txt").read_text()
    assert "t2_tse_sag" in text or "sagittal T2" in text  # technique from the headers
    for lv in (lv.level for lv in phantom.findings.levels):
        assert f"{lv}:" in text
    ds = pydicom.dcmread(tmp_path / "report.sr.dcm")
    assert ds.PreliminaryFlag == "PRELIMINARY" and ds.StudyInstanceUID == phantom.study.study_uid


def test_report_from_a_dicom_folder_with_an_imported_seg(phantom, phantom_dir, tmp_path) -> None:
    """The path a user takes: ingest the written DICOM, import the label map, check, render."""
    rep = reporter.report_study(
        phantom_dir / "dicom",
        out_dir=tmp_path,
        seg=phantom_dir / "seg.dcm",
        findings=phantom.findings,
    )
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["study_uid"] == phantom.study.study_uid
    assert prov["anatomy"]["source"] == "dicom_seg"
    assert set(prov["input_series_uids"]) == {s.series_uid for s in phantom.study.series}
    assert {"ingest", "anatomy", "grounding", "render", "total"} <= set(prov["timings_s"])
    assert rep.technique["anatomy"]["lumbar_vertebrae"] == phantom.meta["n_lumbar"]


def test_findings_json_round_trips_through_the_schema(truth_report) -> None:
    _, tmp_path = truth_report
    doc = json.loads((tmp_path / "findings.json").read_text())
    StudyFindings.model_validate(doc["raw_findings"])
    StudyFindings.model_validate(doc["findings"])
    assert len(doc["verdicts"]) == len([s for s in doc["statements"] if s["verdict"]])


def test_no_out_dir_writes_nothing_and_returns_the_report(phantom, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    rep = reporter.report_study(phantom.study, anatomy=phantom.anatomy, findings=phantom.findings)
    assert rep.outputs == {} and rep.provenance.finished_at
    assert list(tmp_path.iterdir()) == []


def test_missing_study_folder_is_input_missing(tmp_path: Path) -> None:
    with pytest.raises(InputMissingError):
        reporter.report_study(tmp_path / "nope", findings=None)


def test_missing_model_path_is_input_missing(phantom, tmp_path: Path) -> None:
    with pytest.raises(InputMissingError, match="model path"):
        reporter.report_study(phantom.study, anatomy=phantom.anatomy, model=tmp_path / "none")


def test_model_cache_loads_each_model_once(monkeypatch, tmp_path: Path) -> None:
    calls: list[tuple] = []

    class Loaded:
        def predict(self, study, anatomy):  # pragma: no cover - never called here
            raise AssertionError

    def load_model(path=None, adapter=None):
        calls.append((path, adapter))
        return Loaded()

    # The pipeline imports the loader (and torch) when it first needs a model.
    import reporter.vlm.inference as inference

    monkeypatch.setattr(inference, "load_model", load_model)
    pipeline.clear_model_cache()
    (tmp_path / "m").mkdir()
    a = pipeline.get_model(tmp_path / "m")
    b = pipeline.get_model(str(tmp_path / "m"))
    c = pipeline.get_model(None)
    assert a is b and a is not c and len(calls) == 2
    pipeline.clear_model_cache()


@pytest.mark.slow
def test_cli_report_with_a_model_folder_prints_the_paths(phantom_dir, tmp_path: Path) -> None:
    """`spine-report report` with the real VLM (random weights) on an imported label map."""
    import torch

    from reporter.vlm.inference import new_model, save_model

    torch.manual_seed(0)
    save_model(new_model(), tmp_path / "vlm")
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from reporter.cli import main; main()",
            "report",
            str(phantom_dir / "dicom"),
            "--out",
            str(out),
            "--seg",
            str(phantom_dir / "seg.dcm"),
            "--model",
            str(tmp_path / "vlm"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in FILES.values():
        assert str(out / name) in proc.stdout.replace("\n", "")
    prov = json.loads((out / "provenance.json").read_text())
    assert len(prov["model_sha256"]) == 64 and prov["prompt_version"]


def test_cli_report_of_a_missing_folder_exits_66(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from reporter.cli import main; main()",
            "report",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 66
    assert proc.stderr.startswith("spine-report: error:") and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def _default_weights_present() -> bool:
    from reporter.resources import weights_dir

    # The demo runs the embedded VLM and the built-in segmenter.
    return (weights_dir() / "vlm").is_dir() and (weights_dir() / "segmenter").is_dir()


@pytest.mark.slow
@pytest.mark.skipif(not _default_weights_present(), reason="embedded default weights not built")
def test_demo_makes_reports_and_prints_where_they_went(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-c", "from reporter.cli import main; main()", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in (out / "report").iterdir()) == sorted(FILES.values())
    assert "report.html" in proc.stdout
    shutil.rmtree(out)
