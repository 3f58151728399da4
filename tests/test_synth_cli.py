"""`spine-report synth`: folders, RSNA 2024 layout, DICOM SEG, usage errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pydicom
from typer.testing import CliRunner

from reporter.cli.app import app
from reporter.synth import load_phantom

runner = CliRunner()


def test_synth_writes_study_folders_with_seg_and_preview(tmp_path: Path) -> None:
    res = runner.invoke(app, ["synth", "--out", str(tmp_path), "--n", "1", "--seed",
                              "1000500", "--preview"])  # fmt: skip
    assert res.exit_code == 0, res.output
    d = tmp_path / "study_1000500"
    assert (d / "findings.json").is_file() and (d / "meta.json").is_file()
    assert (d / "preview.png").is_file() and (d / "labels" / "sag_t1.nii.gz").is_file()
    seg = pydicom.dcmread(d / "seg.dcm")
    assert seg.Modality == "SEG" and len(seg.SegmentSequence) > 10
    ph = load_phantom(d)
    assert {s.role for s in ph.study.series} == {"sag_t1", "sag_t2", "ax_t2"}


def test_synth_rsna2024_layout_has_the_three_csv_files_and_images(tmp_path: Path) -> None:
    res = runner.invoke(app, ["synth", "--out", str(tmp_path), "--n", "1", "--seed",
                              "1000501", "--format", "rsna2024", "--site", "site-c"])  # fmt: skip
    assert res.exit_code == 0, res.output
    with (tmp_path / "train.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and "spinal_canal_stenosis_l4_l5" in rows[0]
    assert rows[0]["spinal_canal_stenosis_l4_l5"] in ("Normal/Mild", "Moderate", "Severe")
    with (tmp_path / "train_label_coordinates.csv").open() as fh:
        coords = list(csv.DictReader(fh))
    assert {c["condition"] for c in coords} >= {"Spinal Canal Stenosis"}
    with (tmp_path / "train_series_descriptions.csv").open() as fh:
        descs = {r["series_description"] for r in csv.DictReader(fh)}
    assert descs == {"Sagittal T1", "Sagittal T2/STIR", "Axial T2"}
    c = coords[0]
    f = tmp_path / "train_images" / c["study_id"] / c["series_id"] / f"{c['instance_number']}.dcm"
    assert f.is_file()


def test_synth_refuses_unknown_site_with_exit_64(tmp_path: Path) -> None:
    res = runner.invoke(app, ["synth", "--out", str(tmp_path), "--site", "site-x"])
    assert res.exit_code == 64
