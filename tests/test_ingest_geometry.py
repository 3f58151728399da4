"""Volumes and affines built from multi-slice series written by the tests (dicom_factory)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import (
    SLICE_CODE,
    SeriesSpec,
    StudyInfo,
    enhanced_dataset,
    lumbar_specs,
    series_datasets,
    write_datasets,
    write_series,
    write_study,
)

from reporter.contracts.study import Series
from reporter.ingest import load_study


def _ipp(header: pydicom.Dataset) -> np.ndarray:
    return np.array([float(v) for v in header.ImagePositionPatient])


def assert_affine_reproduces_every_ipp(series: Series) -> None:
    for k, header in enumerate(series.headers):
        np.testing.assert_allclose(series.index_to_lps([k, 0, 0]), _ipp(header), atol=1e-3)


def test_affine_reproduces_every_slice_position_within_a_micrometre(tmp_path: Path) -> None:
    study = load_study(write_study(tmp_path, lumbar_specs())[0].parents[1])
    assert len(study.series) == 5
    for series in study.series:
        assert_affine_reproduces_every_ipp(series)


def test_affine_columns_follow_the_study_convention(tmp_path: Path) -> None:
    spec = SeriesSpec("sagittal", "T2", n_slices=7, rows=24, cols=20, pixel_spacing=(0.7, 0.9),
                      slice_step=3.5)  # fmt: skip
    write_series(spec, tmp_path)
    series = load_study(tmp_path).series[0]
    # column 0: slice step along the normal; 1: down the rows; 2: along a row (contracts.study)
    np.testing.assert_allclose(series.spacing, (3.5, 0.7, 0.9), atol=1e-6)
    np.testing.assert_allclose(series.affine[:3, 1], [0, 0, -0.7], atol=1e-6)  # rows -> inferior
    np.testing.assert_allclose(series.affine[:3, 2], [0, 0.9, 0], atol=1e-6)  # cols -> posterior
    np.testing.assert_allclose(series.normal, spec.normal(), atol=1e-6)
    # a voxel's centre maps to where the factory put it
    centre = series.index_to_lps([3, 23 / 2, 19 / 2])
    np.testing.assert_allclose(centre, spec.center, atol=1e-3)
    np.testing.assert_allclose(series.lps_to_index(centre), [3, 11.5, 9.5], atol=1e-6)


def test_slices_are_sorted_along_the_normal_whatever_the_file_order(tmp_path: Path) -> None:
    spec = SeriesSpec("sagittal", "T1", n_slices=9)
    datasets = series_datasets(spec)
    random.Random(3).shuffle(datasets)
    for k, ds in enumerate(datasets):
        ds.InstanceNumber = 9 - k  # misleading instance numbers must not matter
    write_datasets(datasets, tmp_path)
    series = load_study(tmp_path).series[0]
    np.testing.assert_array_equal(series.pixels[:, 0, 0], np.arange(9) * SLICE_CODE)


def test_shuffled_order_and_random_names_give_the_same_volume(tmp_path: Path) -> None:
    study_info = StudyInfo()
    specs = lumbar_specs()
    write_study(tmp_path / "plain", specs, study_info)
    shutil.copytree(tmp_path / "plain", tmp_path / "renamed")
    rng = random.Random(11)
    files = sorted(p for p in (tmp_path / "renamed").rglob("*") if p.is_file())
    nested = tmp_path / "renamed" / "a" / "b"
    nested.mkdir(parents=True)
    for f in files:
        f.rename(nested / f"{rng.getrandbits(64):x}")
    a, b = load_study(tmp_path / "plain"), load_study(tmp_path / "renamed")
    assert [(s.series_uid, s.stack_index, s.role) for s in a.series] == [
        (s.series_uid, s.stack_index, s.role) for s in b.series
    ]
    for sa, sb in zip(a.series, b.series, strict=True):
        np.testing.assert_array_equal(sa.pixels, sb.pixels)
        np.testing.assert_array_equal(sa.affine, sb.affine)
        assert sa.sop_instance_uids == sb.sop_instance_uids


def test_angled_axial_blocks_in_one_series_become_separate_stacks(tmp_path: Path) -> None:
    specs = lumbar_specs(n_axial_blocks=3, n_per_block=4)
    write_study(tmp_path, specs, random_names=True)
    study = load_study(tmp_path)
    axials = study.all("ax_t2")
    assert [s.stack_index for s in axials] == [0, 1, 2]
    assert len({s.series_uid for s in axials}) == 1
    # cranial block first; each block keeps its own tilt
    zs = [s.index_to_lps([1.5, 0, 0])[2] for s in axials]
    assert zs == sorted(zs, reverse=True)
    for s, spec in zip(axials, specs[2:], strict=True):
        np.testing.assert_allclose(s.normal, spec.normal(), atol=1e-6)
        np.testing.assert_array_equal(s.pixels[:, 0, 0], np.arange(4) * SLICE_CODE)
        assert_affine_reproduces_every_ipp(s)
    assert study.get("sag_t2") is not None and study.get("sag_t1") is not None


@pytest.mark.parametrize("tilt", [30.0, -30.0])
def test_tilted_blocks_are_ordered_by_their_centres_not_their_corners(
    tmp_path: Path, tilt: float
) -> None:
    # Centres 12 mm apart, opposite tilts over a 190 mm FOV: the top-left corners' z differ by
    # ~95 mm the other way round, so ordering by IPP would put the caudal block first.
    uid = pydicom.uid.generate_uid()
    info = StudyInfo()
    write_series(SeriesSpec("sagittal"), tmp_path / "sag", info)
    for b, (z, angle) in enumerate(((-40.0, tilt), (-52.0, -tilt))):
        spec = SeriesSpec("axial", n_slices=4, rows=64, cols=64, pixel_spacing=(3.0, 3.0),
                          slice_step=2.0, center=(0, 30, z), angle_deg=angle, series_uid=uid,
                          series_number=5)  # fmt: skip
        write_series(spec, tmp_path / f"ax{b}", info)
    axials = load_study(tmp_path).all("ax_t2")
    assert len(axials) == 2
    centres = [s.index_to_lps([1.5, 31.5, 31.5])[2] for s in axials]
    np.testing.assert_allclose(centres, [-40.0, -52.0], atol=1e-3)


def test_parallel_axial_blocks_with_a_gap_become_separate_stacks(tmp_path: Path) -> None:
    uid = pydicom.uid.generate_uid()
    info = StudyInfo()
    write_series(SeriesSpec("sagittal"), tmp_path / "sag", info)
    for b, z in enumerate((-20.0, -57.3)):
        spec = SeriesSpec("axial", n_slices=4, center=(0, 30, z), series_uid=uid,
                          series_number=5)  # fmt: skip
        write_series(spec, tmp_path / f"ax{b}", info)
    axials = load_study(tmp_path).all("ax_t2")
    assert [s.shape[0] for s in axials] == [4, 4]


def test_rescale_slope_and_intercept_are_applied(tmp_path: Path) -> None:
    write_series(SeriesSpec("sagittal", rescale=(2.5, -10.0)), tmp_path)
    series = load_study(tmp_path).series[0]
    assert series.pixels.dtype == np.float32
    np.testing.assert_allclose(series.pixels[:, 0, 0], np.arange(5) * SLICE_CODE * 2.5 - 10.0)


def test_enhanced_multiframe_mr_is_read_frame_by_frame(tmp_path: Path) -> None:
    info = StudyInfo()
    sag = SeriesSpec("sagittal", "T2", n_slices=6, rescale=(0.5, 1.0))
    ds = enhanced_dataset([sag], info)
    write_datasets([ds], tmp_path / "sag")
    uid = pydicom.uid.generate_uid()
    blocks = [SeriesSpec("axial", "T2", n_slices=3, center=(0, 30, z), angle_deg=a,
                         series_uid=uid, series_number=7)
              for z, a in ((-20, -8.0), (-60, 9.0))]  # fmt: skip
    write_datasets([enhanced_dataset(blocks, info, shuffle_seed=5)], tmp_path / "ax")
    study = load_study(tmp_path)
    series = study.get("sag_t2")
    assert series is not None and series.shape == (6, 32, 32)
    np.testing.assert_allclose(series.pixels[:, 0, 0], np.arange(6) * SLICE_CODE * 0.5 + 1.0)
    np.testing.assert_allclose(series.spacing, (4.0, 0.75, 0.8), atol=1e-6)
    assert sorted(series.frame_numbers) == list(range(1, 7))
    assert len(set(series.sop_instance_uids)) == 1
    axials = study.all("ax_t2")
    assert [s.shape[0] for s in axials] == [3, 3]
    for s, spec in zip(axials, blocks, strict=True):
        np.testing.assert_allclose(s.normal, spec.normal(), atol=1e-6)
        np.testing.assert_allclose(s.affine[:3, 3], spec.positions()[0], atol=1e-3)


def test_headers_are_pixel_free_and_reference_the_source_instances(tmp_path: Path) -> None:
    paths = write_series(SeriesSpec("sagittal"), tmp_path)
    series = load_study(tmp_path).series[0]
    uids = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in paths}
    assert set(series.sop_instance_uids) == uids
    assert [h.SOPInstanceUID for h in series.headers] == series.sop_instance_uids
    assert all("PixelData" not in h for h in series.headers)
    assert series.transfer_syntax_uid == pydicom.uid.ExplicitVRLittleEndian


def test_study_metadata_is_read_and_the_accession_only_hashed(tmp_path: Path) -> None:
    write_series(SeriesSpec("sagittal"), tmp_path)
    study = load_study(tmp_path)
    assert study.patient_sex == "F" and study.patient_age == 54.0
    assert study.accession_hash is not None and "ACC0001" not in study.model_dump_json(
        exclude={"series"}
    )


def test_role_rule_prefers_the_later_clinical_series(tmp_path: Path) -> None:
    info = StudyInfo()
    write_series(SeriesSpec("sagittal", "T2", series_number=3), tmp_path / "a", info)
    write_series(SeriesSpec("sagittal", "T2", series_number=9), tmp_path / "b", info)
    write_series(SeriesSpec("sagittal", "T2", n_slices=40, slice_step=1.0, series_number=12),
                 tmp_path / "c", info)  # fmt: skip
    study = load_study(tmp_path)
    chosen = study.get("sag_t2")
    assert chosen is not None and chosen.series_number == 9
    assert sorted(s.series_number or 0 for s in study.all("other")) == [3, 12]


@pytest.mark.parametrize(
    ("acquisition", "description", "expected"),
    [
        ((550.0, 12.0, None, "SE"), "whatever", "T1"),
        ((3500.0, 100.0, None, "SE"), "SAG T1", "T2"),  # the physics wins over the name
        ((4000.0, 60.0, 160.0, "IR\\SE"), "sag", "STIR"),
        ((2200.0, 9.0, 860.0, "IR\\SE"), "SAG T1 FLAIR", "T1"),
        ((2500.0, 20.0, None, "SE"), "PD", "other"),
        ((3000.0, 50.0, None, "SE"), "t2_tse_sag", "T2"),  # ambiguous physics: the hint
    ],
)
def test_weighting_comes_from_tr_te_ti_with_the_description_as_hint(
    tmp_path: Path, acquisition: tuple, description: str, expected: str
) -> None:
    spec = SeriesSpec("sagittal", acquisition=acquisition, description=description)
    write_series(spec, tmp_path)
    assert load_study(tmp_path).series[0].weighting == expected
