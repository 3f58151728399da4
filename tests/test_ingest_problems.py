"""Unusable series are set aside with a reason naming them; unusable studies are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import (
    SeriesSpec,
    StudyInfo,
    series_datasets,
    write_datasets,
    write_series,
)

from reporter.errors import InputDataError, InputMissingError
from reporter.ingest import load_study, scan


def _sagittal_and(tmp_path: Path, datasets: list[pydicom.Dataset], info: StudyInfo) -> Path:
    write_series(SeriesSpec("sagittal", "T2", series_number=1), tmp_path / "good", info)
    write_datasets(datasets, tmp_path / "bad")
    return tmp_path


def _problem(study_dir: Path, uid: str) -> str:
    study = load_study(study_dir)
    reasons = [a.reason for a in study.set_aside if a.series_uid == uid]
    assert len(reasons) == 1, study.set_aside
    assert any(uid in w for w in study.warnings), study.warnings  # the warning names it
    assert all(s.series_uid != uid for s in study.series)
    return reasons[0]


def test_missing_slice_sets_the_series_aside(tmp_path: Path) -> None:
    info = StudyInfo()
    spec = SeriesSpec("sagittal", "T1", n_slices=8, series_number=2)
    datasets = series_datasets(spec, info)
    del datasets[4]
    reason = _problem(_sagittal_and(tmp_path, datasets, info), spec.series_uid)
    assert "spacing not uniform" in reason and "missing" in reason


def test_mixed_orientation_sets_the_series_aside(tmp_path: Path) -> None:
    info = StudyInfo()
    spec = SeriesSpec("sagittal", "T1", n_slices=12, series_number=2)
    datasets = series_datasets(spec, info)
    datasets[5].ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # one coronal slice
    assert "mixed orientation" in _problem(_sagittal_and(tmp_path, datasets, info), spec.series_uid)


def test_mixed_matrix_sets_the_series_aside(tmp_path: Path) -> None:
    info = StudyInfo()
    spec = SeriesSpec("sagittal", "T1", series_number=2)
    datasets = series_datasets(spec, info)
    odd = series_datasets(SeriesSpec("sagittal", "T1", rows=16, cols=16), info)[2]
    odd.SeriesInstanceUID = spec.series_uid
    datasets[2] = odd
    assert "mixed matrix" in _problem(_sagittal_and(tmp_path, datasets, info), spec.series_uid)


def _left_out(study_dir: Path, uid: str) -> tuple[int, str]:
    """Slices kept of series `uid`, and the limitation that names what was left out."""
    study = load_study(study_dir)
    (series,) = [s for s in study.series if s.series_uid == uid]
    (line,) = [x for x in study.limitations if uid in x]
    assert "damaged image(s) left out" in line
    return series.shape[0], line


def test_truncated_pixel_data_leaves_the_image_out_and_says_so(tmp_path: Path) -> None:
    info = StudyInfo()
    spec = SeriesSpec("sagittal", "T1", series_number=2)
    datasets = series_datasets(spec, info)
    datasets[1].PixelData = datasets[1].PixelData[:100]
    kept, line = _left_out(_sagittal_and(tmp_path, datasets, info), spec.series_uid)
    # Slices 1-2 (physical order) fall away with the damaged one: the rest is one regular stack.
    assert kept == len(datasets) - 2 and "truncated" in line


def test_corrupt_compressed_pixel_data_leaves_the_image_out_and_says_so(tmp_path: Path) -> None:
    info = StudyInfo()
    spec = SeriesSpec("sagittal", "T1", series_number=2)
    datasets = series_datasets(spec, info)
    for ds in datasets:
        ds.compress(pydicom.uid.RLELossless)
    broken = bytearray(datasets[-1].PixelData)
    broken[-40:] = b"\x00" * 40
    datasets[-1].PixelData = bytes(broken[: len(broken) // 2]) + b"\x00"
    kept, line = _left_out(_sagittal_and(tmp_path, datasets, info), spec.series_uid)
    assert kept == len(datasets) - 1 and "pixel data" in line


def test_series_with_half_its_images_damaged_is_set_aside(tmp_path: Path) -> None:
    info = StudyInfo()
    spec = SeriesSpec("sagittal", "T1", series_number=2)
    datasets = series_datasets(spec, info)
    for ds in datasets[1::3]:  # no run of half the series survives
        ds.PixelData = ds.PixelData[:100]
    assert "truncated" in _problem(_sagittal_and(tmp_path, datasets, info), spec.series_uid)
    study = load_study(tmp_path)
    assert any(spec.series_uid in x and "could not be used" in x for x in study.limitations)


def test_several_images_at_one_position_set_the_series_aside(tmp_path: Path) -> None:
    info = StudyInfo()
    spec = SeriesSpec("sagittal", "T1", series_number=2)
    datasets = series_datasets(spec, info)
    datasets += series_datasets(SeriesSpec("sagittal", "T1", series_uid=spec.series_uid), info)
    assert "share one slice position" in _problem(
        _sagittal_and(tmp_path, datasets, info), spec.series_uid
    )


def test_duplicate_instances_are_kept_once_with_a_warning(tmp_path: Path) -> None:
    paths = write_series(SeriesSpec("sagittal", n_slices=5), tmp_path / "a")
    (tmp_path / "copy").mkdir()
    for p in paths[:2]:
        (tmp_path / "copy" / p.name).write_bytes(p.read_bytes())
    study = load_study(tmp_path)
    assert study.series[0].shape[0] == 5
    assert any("2 duplicate instance(s)" in w for w in study.warnings)


def test_localizer_and_derived_series_are_set_aside(tmp_path: Path) -> None:
    info = StudyInfo()
    write_series(SeriesSpec("sagittal", series_number=5), tmp_path / "sag", info)
    loc = SeriesSpec("sagittal", n_slices=3, series_number=1,
                     image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))  # fmt: skip
    write_series(loc, tmp_path / "loc", info)
    mpr = SeriesSpec("coronal", n_slices=4, series_number=50,
                     image_type=("DERIVED", "SECONDARY", "MPR"))  # fmt: skip
    write_series(mpr, tmp_path / "mpr", info)
    three_plane = []
    for n, plane in enumerate(("sagittal", "coronal", "axial")):
        ds = series_datasets(SeriesSpec(plane, n_slices=1), info)[0]
        ds.SeriesInstanceUID, ds.SeriesDescription, ds.SOPInstanceUID = (
            "1.2.3.4.77",
            "tripilot",
            pydicom.uid.generate_uid(),
        )
        ds.InstanceNumber = n
        three_plane.append(ds)
    write_datasets(three_plane, tmp_path / "3pl")
    study = load_study(tmp_path)
    assert [s.series_number for s in study.series] == [5]
    reasons = {a.series_uid: a.reason for a in study.set_aside}
    assert reasons[loc.series_uid] == "localizer"
    assert reasons[mpr.series_uid].startswith("derived")
    assert reasons["1.2.3.4.77"].startswith("localizer")


def test_non_dicom_files_are_skipped_and_counted(tmp_path: Path) -> None:
    write_series(SeriesSpec("sagittal"), tmp_path / "dicom")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "DICM.bin").write_bytes(b"\x00" * 10)
    (tmp_path / "empty").write_bytes(b"")
    study = load_study(tmp_path)
    assert study.n_files_skipped == 3


def test_no_mr_images_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("nothing here")
    with pytest.raises(InputDataError, match="no MR images"):
        load_study(tmp_path)


def test_non_mr_images_are_refused_and_named(tmp_path: Path) -> None:
    datasets = series_datasets(SeriesSpec("sagittal"))
    for ds in datasets:
        ds.Modality = "CT"
    write_datasets(datasets, tmp_path)
    inv = scan(tmp_path)
    assert inv.refusal is not None and "no MR images" in inv.refusal
    assert inv.rows[0].problem == "not an MR image (modality CT)"


def test_no_usable_sagittal_series_is_refused_with_the_reason(tmp_path: Path) -> None:
    info = StudyInfo()
    write_series(SeriesSpec("axial"), tmp_path / "ax", info)
    datasets = series_datasets(SeriesSpec("sagittal", n_slices=6, description="SAG T2"), info)
    del datasets[2]
    write_datasets(datasets, tmp_path / "sag")
    with pytest.raises(InputDataError, match=r"no usable sagittal.*SAG T2: slice spacing"):
        load_study(tmp_path)


def test_two_mr_studies_in_one_folder_are_refused(tmp_path: Path) -> None:
    write_series(SeriesSpec("sagittal"), tmp_path / "a", StudyInfo())
    write_series(SeriesSpec("sagittal"), tmp_path / "b", StudyInfo())
    with pytest.raises(InputDataError, match="2 MR studies"):
        load_study(tmp_path)


def test_missing_path_is_input_missing(tmp_path: Path) -> None:
    with pytest.raises(InputMissingError):
        load_study(tmp_path / "nope")


def test_one_dicom_file_can_be_given_directly(tmp_path: Path) -> None:
    paths = write_series(SeriesSpec("sagittal", n_slices=1), tmp_path)
    series = load_study(paths[0]).series[0]
    assert series.shape == (1, 32, 32)
    assert np.isclose(series.spacing[0], 4.0)


def test_classic_multiframe_without_per_frame_geometry_is_set_aside(tmp_path: Path) -> None:
    info = StudyInfo()
    spec = SeriesSpec("sagittal", "T1", n_slices=3, series_number=2)
    datasets = series_datasets(spec, info)
    datasets[0].NumberOfFrames = 2
    datasets[0].PixelData = datasets[0].PixelData * 2
    assert "per-frame geometry" in _problem(
        _sagittal_and(tmp_path, datasets, info), spec.series_uid
    )


def test_study_uid_picks_one_study_from_a_mixed_folder(tmp_path: Path) -> None:
    first, second = StudyInfo(), StudyInfo()
    write_series(SeriesSpec("sagittal", n_slices=4), tmp_path / "a", first)
    write_series(SeriesSpec("sagittal", n_slices=6), tmp_path / "b", second)
    study = load_study(tmp_path, study_uid=second.study_uid)
    assert study.study_uid == second.study_uid and study.series[0].shape[0] == 6
