"""A single 2-D sagittal image (PNG or single-frame DICOM) becomes a one-slice sagittal Study:
orientation detected from the content, spacing from the header or estimated from anatomy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reporter.errors import InputDataError, InputMissingError
from reporter.ingest.assessability import unassessable_fields
from reporter.ingest.image2d import (
    DISC_STEP_MM,
    anatomy_from_discs,
    discs_plausible,
    estimate_spacing,
    load_image2d,
    merge_studies,
)
from reporter.ingest.image2d_nets import apply_orientation, compose, describe_orientation

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
SPIDER = REAL / "spider" / "images"
needs_spider = pytest.mark.skipif(not SPIDER.is_dir(), reason="../shared/data/real/spider absent")
# Held-out patients (split "test"); every SPIDER image was inspected to be stored as code 6.
TEST_IMAGES = ("1_t2.png", "108_t1.png", "40_t2.png")
SPIDER_CODE = 6


def _spider(name: str) -> np.ndarray:
    return np.asarray(Image.open(SPIDER / name).convert("L"))


def _png(tmp: Path, img: np.ndarray, name: str = "img.png") -> Path:
    path = tmp / name
    Image.fromarray(np.asarray(img, dtype=np.uint8)).save(path)
    return path


def test_orientation_codes_form_the_dihedral_group_and_read_as_words() -> None:
    probe = np.arange(12).reshape(3, 4)
    seen = {apply_orientation(probe, c).tobytes() + bytes(c % 2) for c in range(8)}
    assert len(seen) == 8
    assert all(compose(a, 0) == a for a in range(8))
    assert describe_orientation(0) == "superior at the top, anterior at the left"
    assert describe_orientation(SPIDER_CODE) == "superior at the bottom, anterior at the left"


@needs_spider
@pytest.mark.parametrize("name", TEST_IMAGES)
def test_orientation_is_detected_in_all_eight_orientations(tmp_path: Path, name: str) -> None:
    native = _spider(name)
    canonical = None
    for turn in range(8):
        shown = apply_orientation(native, turn)
        study = load_image2d(_png(tmp_path, shown))
        notes = study.input_notes[study.series[0].series_uid]
        assert notes["orientation"]["code"] == compose(SPIDER_CODE, turn)
        assert notes["orientation"]["method"].startswith("detected from the image content")
        pixels = study.series[0].pixels[0]
        # Whatever it arrived as, the series holds the same standard-display image.
        canonical = pixels if canonical is None else canonical
        np.testing.assert_array_equal(pixels, canonical)


@needs_spider
def test_png_study_is_one_sagittal_slice_in_the_standard_display(tmp_path: Path) -> None:
    study = load_image2d(_png(tmp_path, _spider("1_t2.png")), weighting="T2")
    (series,) = study.series
    assert series.shape[0] == 1 and series.plane == "sagittal" and series.role == "sag_t2"
    notes = study.input_notes[series.series_uid]
    # Spacing is estimated from anatomy or, when the discs are not plausible, assumed -- and
    # the notes say which, so the report can.
    method = notes["pixel_spacing_method"]
    assert method.startswith(("estimated from anatomy", "unknown; anatomy-based estimate failed"))
    assert notes["pixel_spacing_estimated"] == method.startswith("estimated")
    if notes["pixel_spacing_estimated"]:  # overview.csv: 0.625 mm for this series
        assert abs(series.spacing[1] - 0.625) / 0.625 < 0.35
    # Standard display: rows run inferior (-z in LPS), columns posterior (+y).
    assert series.affine[2, 1] < 0 and series.affine[1, 2] > 0
    assert "not assessable" in study.warnings[0]
    assert set(notes["discs_px"]) == {"L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"}


def _discs(top: float, step: float, col: float = 120.0, score: float = 0.9) -> dict:
    levels = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
    return {lv: (top + i * step, col + 4.0 * i, score) for i, lv in enumerate(levels)}


def test_spacing_is_the_disc_step_in_mm_over_the_disc_step_in_pixels() -> None:
    mm, how, anatomical = estimate_spacing(_discs(100, 50), (600, 400))
    assert anatomical and how.startswith("estimated from anatomy")
    assert mm == pytest.approx(DISC_STEP_MM / np.hypot(50, 4), rel=1e-6)
    shuffled = _discs(100, 50)
    shuffled["L1-L2"], shuffled["L5-S1"] = shuffled["L5-S1"], shuffled["L1-L2"]
    ok, why = discs_plausible(shuffled)
    assert not ok and "cranio-caudally" in why
    mm, how, anatomical = estimate_spacing(shuffled, (600, 400))
    assert not anatomical and mm == pytest.approx(300.0 / 600) and "300 mm" in how
    assert not discs_plausible(_discs(100, 50, score=0.1))[0]


def _study_with_discs(discs: dict, rows: int = 600, cols: int = 400, spacing: float = 0.8):
    from reporter.contracts.study import Series, Study

    affine = np.array([[4.0, 0, 0, 0], [0, 0, spacing, 0], [0, -spacing, 0, 0], [0, 0, 0, 1.0]])
    uid = f"1.2.3.{int(discs['L1-L2'][0])}"
    series = Series(
        series_uid=uid, study_uid="1.2.3", plane="sagittal", weighting="T2", role="sag_t2",
        pixels=np.zeros((1, rows, cols), np.float32), affine=affine,
    )  # fmt: skip
    study = Study(study_uid="1.2.3", series=[series])
    study.input_notes[uid] = {
        "discs_px": {k: list(v) for k, v in discs.items()},
        "discs_plausible": discs_plausible(discs)[0],
        "pixel_spacing_method": "test",
    }
    return study


def test_anatomy_from_discs_names_five_lumbar_levels_from_the_lowest_disc() -> None:
    study = _study_with_discs(_discs(150, 60))
    anatomy = anatomy_from_discs(study)
    assert anatomy is not None and anatomy.naming_uncertain
    assert anatomy.levels == ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    assert anatomy.vertebrae == ["L1", "L2", "L3", "L4", "L5", "S1"]
    assert anatomy.labels.shape == study.series[0].shape
    from reporter.contracts.labels import disc_label

    rows, cols = np.nonzero(anatomy.labels[0] == disc_label("L3-L4"))
    assert abs(rows.mean() - 270) < 3 and abs(cols.mean() - 128) < 3
    bad = _study_with_discs(_discs(150, 60, score=0.05))
    assert anatomy_from_discs(bad) is None


def test_merging_registers_the_second_image_onto_the_first_by_its_discs() -> None:
    t2 = _study_with_discs(_discs(150, 60))
    small = {k: (v[0] * 0.5 + 10, v[1] * 0.5 + 20, v[2]) for k, v in _discs(150, 60).items()}
    t1 = _study_with_discs(small, spacing=1.0)
    t1.series[0].weighting, t1.series[0].role = "T1", "sag_t1"
    both = merge_studies([t2, t1], study_uid="9.9")
    a, b = both.series
    assert a.study_uid == b.study_uid == "9.9"
    # Half the pixels for the same anatomy: twice the spacing, same patient position.
    assert b.spacing[1] == pytest.approx(2 * a.spacing[1], rel=1e-6)
    p_t2 = a.index_to_lps(np.array([0, 150 + 2 * 60, 120 + 8.0]))
    p_t1 = b.index_to_lps(np.array([0, (150 + 2 * 60) * 0.5 + 10, (120 + 8.0) * 0.5 + 20]))
    np.testing.assert_allclose(p_t1, p_t2, atol=1e-6)
    assert "registered to T2" in both.input_notes[b.series_uid]["pixel_spacing_method"]


@needs_spider
def test_single_image_leaves_foramina_subarticular_and_modic_not_assessable(
    tmp_path: Path,
) -> None:
    t2 = load_image2d(_png(tmp_path, _spider("1_t2.png"), "a.png"), weighting="T2")
    missing = unassessable_fields(t2)
    for field in (
        "foraminal_stenosis_left",
        "foraminal_stenosis_right",
        "subarticular_stenosis_left",
        "subarticular_stenosis_right",
        "modic_upper",
        "modic_lower",
    ):
        assert field in missing
    assert "axial" in missing["subarticular_stenosis_left"]
    assert "pfirrmann" not in missing and "canal_stenosis" not in missing
    t1 = load_image2d(_png(tmp_path, _spider("1_t1.png"), "b.png"), weighting="T1")
    both = merge_studies([t2, t1])
    assert "modic_upper" not in unassessable_fields(both)
    assert "pfirrmann" in unassessable_fields(t1)
    assert len(both.input_notes) == 2


def _dicom(path: Path, img: np.ndarray, spacing: tuple[float, float] | None, **extra) -> Path:
    from pydicom import Dataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = extra.pop("Modality", "MR")
    ds.SeriesDescription = "SAG T2 TSE"
    ds.Rows, ds.Columns = img.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if spacing:
        ds.PixelSpacing = list(spacing)
    for k, v in extra.items():
        setattr(ds, k, v)
    ds.PixelData = (img.astype(np.uint16) * 16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


@needs_spider
def test_single_frame_dicom_uses_its_pixel_spacing_and_description(tmp_path: Path) -> None:
    native = _spider("1_t2.png")
    turned = apply_orientation(native, 1)  # a quarter turn: rows and columns swap
    path = _dicom(tmp_path / "x.dcm", turned, (0.5, 0.7))
    study = load_image2d(path)
    series = study.series[0]
    notes = study.input_notes[series.series_uid]
    assert notes["pixel_spacing_method"].startswith("from the DICOM header")
    assert series.weighting == "T2" and "description" in notes["weighting"]["method"]
    assert notes["orientation"]["code"] == compose(SPIDER_CODE, 1)
    assert sorted(round(v, 3) for v in series.spacing[1:]) == [0.5, 0.7]
    assert series.sop_instance_uids


def test_bad_inputs_fail_with_our_errors(tmp_path: Path) -> None:
    with pytest.raises(InputMissingError):
        load_image2d(tmp_path / "missing.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(InputDataError):
        load_image2d(junk)
    with pytest.raises(InputDataError, match="too small, blank"):
        load_image2d(_png(tmp_path, np.zeros((64, 64))))
    img = (np.random.default_rng(0).random((64, 64)) * 200).astype(np.uint8)
    with pytest.raises(InputDataError, match="not MR"):
        load_image2d(_dicom(tmp_path / "ct.dcm", img, (1.0, 1.0), Modality="CT"))
    with pytest.raises(InputDataError, match="multi-frame"):
        load_image2d(_dicom(tmp_path / "mf.dcm", img, (1.0, 1.0), NumberOfFrames=2))
