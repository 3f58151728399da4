"""open_dataset: phantom folders, RSNA 2024, SPIDER and lumbar3d layouts, and their errors."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from reporter.datasets import FORMATS, detect_format, open_dataset
from reporter.errors import InputMissingError, UsageError

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
SPIDER = REAL / "spider"
LUMBAR3D = REAL / "lumbar3d"
needs_spider = pytest.mark.skipif(not SPIDER.is_dir(), reason="../shared/data/real/spider absent")
needs_lumbar3d = pytest.mark.skipif(
    not LUMBAR3D.is_dir(), reason="../shared/data/real/lumbar3d absent"
)


@pytest.fixture(scope="module")
def phantom_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    from reporter.synth import generate_study, write_study

    ph = generate_study(1_000_777)
    root = tmp_path_factory.mktemp("phantoms")
    write_study(ph, root / "study_a")
    rsna = tmp_path_factory.mktemp("rsna")
    write_study(ph, rsna, fmt="rsna2024")
    return root, rsna, ph


def test_phantom_folders_open_with_study_anatomy_and_findings(phantom_root) -> None:
    root, _rsna, ph = phantom_root
    assert detect_format(root) == "phantom"
    ds = open_dataset(root)
    assert ds.fmt == "phantom" and len(ds) == 1
    case = ds[0]
    assert case.patient_id == "phantom-1000777"
    assert case.meta["seed"] == 1_000_777 and case.meta["site"] == ph.meta["site"]
    assert case.findings == ph.findings
    assert case.anatomy.levels == ph.anatomy.levels
    assert {s.role for s in case.study.series} >= {"sag_t1", "sag_t2"}
    # A single study folder is a dataset of one, too.
    assert len(open_dataset(root / "study_a", "phantom")) == 1


def test_rsna2024_layout_reads_labels_through_the_converter(phantom_root) -> None:
    _root, rsna, ph = phantom_root
    assert detect_format(rsna) == "rsna2024"
    ds = open_dataset(rsna, "rsna2024")
    case = ds[0]
    assert case.patient_id.startswith("rsna-")
    assert case.meta["series_descriptions"]
    f = case.findings
    assert [lf.level for lf in f.levels] == ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    truth = ph.findings.level("L4-L5")
    if truth is not None and truth.canal_stenosis.value in ("moderate", "severe"):
        assert f.level("L4-L5").canal_stenosis.value == truth.canal_stenosis.value
    assert case.study.get("sag_t2") is not None


@needs_spider
def test_spider_layout_gives_one_case_per_patient_with_gradings_and_true_spacing() -> None:
    ds = open_dataset(SPIDER)
    assert ds.fmt == "spider" and len(ds) == 179
    case = ds["1"]
    assert case.patient_id == "spider-1" and case.split == "test"
    assert case.meta["pixel_spacing_mm"] == {"t1": 0.625, "t2": 0.625}
    assert case.meta["gradings"]["L5-S1"]["Pfirrman grade"] in range(1, 6)
    levels = [lf.level for lf in case.findings.levels]
    assert levels[-1] == "L5-S1" and "L1-L2" in levels
    assert case.anatomy is None or case.anatomy.reference_series_uid
    # Splits are by patient, roughly 70/15/15.
    assert 0.6 < len(ds.split("train")) / len(ds) < 0.8


@needs_spider
def test_spider_study_is_built_like_a_users_png(tmp_path: Path) -> None:
    # A two-patient copy in tmp (never in the repository).
    (tmp_path / "images").mkdir()
    for name in ("1_t1.png", "1_t2.png", "10_t2.png"):
        shutil.copy(SPIDER / "images" / name, tmp_path / "images" / name)
    with (SPIDER / "radiological_gradings.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["Patient"] in ("1", "10")]
    with (tmp_path / "radiological_gradings.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    ds = open_dataset(tmp_path, "spider")
    assert ds.case_ids == ["1", "10"]
    study = ds["1"].study
    assert [s.role for s in study.series] == ["sag_t2", "sag_t1"]
    assert all(s.shape[0] == 1 and s.plane == "sagittal" for s in study.series)
    notes = study.input_notes[study.series[0].series_uid]
    assert notes["orientation"]["as_found"] == "superior at the bottom, anterior at the left"
    assert ds["10"].findings is not None and ds["10"].meta.get("pixel_spacing_mm") == {}


@needs_lumbar3d
def test_lumbar3d_volumes_come_with_named_discs_or_vertebrae() -> None:
    ds = open_dataset(LUMBAR3D)
    assert ds.fmt == "lumbar3d" and len(ds) == 13
    ivd = ds["ivd_11"]
    assert ivd.findings is None and ivd.meta["weighting"] == "T2"
    assert ivd.anatomy.levels == ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    vb = ds["vb3_01"]
    assert vb.study.series[0].role == "sag_t1"
    assert vb.anatomy.vertebrae == ["L1", "L2", "L3", "L4", "L5"]


def test_missing_folder_and_unknown_format_fail_with_our_errors(tmp_path: Path) -> None:
    with pytest.raises(InputMissingError):
        open_dataset(tmp_path / "nope", "spider")
    with pytest.raises(UsageError, match="unknown dataset format"):
        open_dataset(tmp_path, "dicomweb")
    with pytest.raises(UsageError, match="cannot tell"):
        open_dataset(tmp_path)
    (tmp_path / "images").mkdir()
    (tmp_path / "overview.csv").write_text("new_file_name\n")
    with pytest.raises(InputMissingError, match="no cases"):
        open_dataset(tmp_path, "spider")
    assert set(FORMATS) == {
        "phantom",
        "rsna2024",
        "spider",
        "lumbar3d",
        "lumbar3d-2d",
        "sudirman",
        "spider-slices",
    }
