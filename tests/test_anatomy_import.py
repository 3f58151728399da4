"""Label-map import: conventions as data, translation, resampling, naming of what was imported."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from grounding_factory import sagittal_series, spine_labels, study_with

from reporter.anatomy import segment
from reporter.anatomy.importers import (
    builtin_conventions,
    canonical_name,
    detect_convention,
    resample_nearest,
)
from reporter.contracts import labels as L
from reporter.errors import InputDataError, InputMissingError, ModelFileError
from reporter.geometry import lps_to_nifti_affine

NAMES = ["T12", "L1", "L2", "L3", "L4", "L5", "S1"]


def _write(path: Path, array: np.ndarray, affine_lps: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(array.astype(np.int16), lps_to_nifti_affine(affine_lps)), path)
    return path


def _ours() -> tuple[object, np.ndarray]:
    s = sagittal_series((9, 160, 80))
    return s, spine_labels(s.shape, NAMES)


def test_every_shipped_convention_loads_and_cites_its_source() -> None:
    conv = builtin_conventions()
    assert {"spider", "totalspineseg", "totalsegmentator", "spine_reporter"} <= set(conv)
    for c in conv.values():
        assert c.source and c.description


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("vertebrae_L5", "L5"),
        ("disc_L5_S", "L5-S1"),
        ("L4/L5", "L4-L5"),
        ("sacrum", "S1"),
        ("Spinal Canal", "canal"),
        ("C3", None),
        ("liver", None),
    ],
)
def test_structure_names_from_other_tools_map_to_ours(text: str, name: str | None) -> None:
    assert canonical_name(text) == name


def test_own_convention_round_trips_through_nifti(tmp_path: Path) -> None:
    s, lab = _ours()
    path = _write(tmp_path / "seg.nii.gz", lab, s.affine)
    anatomy = segment(study_with([s]), seg_path=path)
    assert np.array_equal(anatomy.labels, lab)
    assert anatomy.vertebrae == NAMES
    assert anatomy.levels == ["T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    assert anatomy.lumbar_vertebrae == 5 and not anatomy.naming_uncertain
    assert anatomy.source == "nifti"


def test_spider_numbering_is_named_from_the_lumbosacral_junction(tmp_path: Path) -> None:
    s, lab = _ours()
    spider = np.zeros_like(lab)
    # SPIDER: 1 = lowest lumbar vertebra, 201 = lumbosacral disc, 100 = canal; no sacrum label.
    for n, name in enumerate(["L5", "L4", "L3", "L2", "L1", "T12"], start=1):
        spider[lab == L.vertebra_label(name)] = n
    for n, level in enumerate(["L5-S1", "L4-L5", "L3-L4", "L2-L3", "L1-L2", "T12-L1"], start=201):
        spider[lab == L.disc_label(level)] = n
    spider[lab == L.CANAL] = 100
    path = _write(tmp_path / "spider.nii.gz", spider, s.affine)
    anatomy = segment(study_with([s]), seg_path=path, convention="spider")
    assert anatomy.vertebrae == NAMES[:-1]
    assert anatomy.levels[-1] == "L5-S1"
    assert (anatomy.labels == L.CANAL).sum() == (lab == L.CANAL).sum()
    assert "spider" in anatomy.naming_convention


def test_totalspineseg_labels_are_translated_and_cervical_ones_dropped(tmp_path: Path) -> None:
    s, lab = _ours()
    tss = np.zeros_like(lab)
    for n, name in enumerate(["L1", "L2", "L3", "L4", "L5"]):
        tss[lab == L.vertebra_label(name)] = 41 + n
    tss[lab == L.vertebra_label("T12")] = 32
    tss[lab == L.vertebra_label("S1")] = 50
    tss[lab == L.disc_label("L5-S1")] = 100
    tss[lab == L.disc_label("L4-L5")] = 95
    tss[lab == L.CANAL] = 2
    tss[0, :3, :3] = 11  # a stray C1 voxel: a real structure with no place in a lumbar study
    path = _write(tmp_path / "tss.nii.gz", tss, s.affine)
    anatomy = segment(study_with([s]), seg_path=path)  # detected from the values
    assert anatomy.vertebrae == NAMES
    assert {"L4-L5", "L5-S1"} <= set(anatomy.levels)
    assert not (anatomy.labels[0, :3, :3]).any()


def test_label_map_on_another_grid_is_resampled_by_nearest_neighbour(tmp_path: Path) -> None:
    s, lab = _ours()
    # The same labels stored with the axes reversed (a different voxel order, same anatomy).
    flipped = lab[::-1, ::-1, :]
    aff = s.affine.copy()
    aff[:3, 3] = (
        s.affine[:3, 3]
        + s.affine[:3, 0] * (lab.shape[0] - 1)
        + s.affine[:3, 1] * (lab.shape[1] - 1)
    )
    aff[:3, 0] = -s.affine[:3, 0]
    aff[:3, 1] = -s.affine[:3, 1]
    back = resample_nearest(flipped, aff, lab.shape, s.affine)
    assert np.array_equal(back, lab)


def test_resampling_never_invents_label_values() -> None:
    s, lab = _ours()
    fine = s.affine.copy()
    fine[:3, :3] = s.affine[:3, :3] * np.array([0.5, 0.7, 0.7])
    out = resample_nearest(lab, s.affine, (17, 220, 110), fine)
    assert set(np.unique(out)) <= set(np.unique(lab))


def test_values_no_convention_explains_are_rejected_with_exit_65(tmp_path: Path) -> None:
    s, lab = _ours()
    odd = lab.copy()
    odd[0, 0, 0] = 777
    path = _write(tmp_path / "odd.nii.gz", odd, s.affine)
    with pytest.raises(InputDataError) as err:
        segment(study_with([s]), seg_path=path)
    assert err.value.exit_code == 65


def test_missing_label_file_is_exit_66(tmp_path: Path) -> None:
    s, _ = _ours()
    with pytest.raises(InputMissingError):
        segment(study_with([s]), seg_path=tmp_path / "nope.nii.gz")


def test_json_map_beside_the_file_names_the_labels(tmp_path: Path) -> None:
    s, lab = _ours()
    custom = np.zeros_like(lab)
    custom[lab == L.vertebra_label("L4")] = 7
    custom[lab == L.vertebra_label("L5")] = 8
    path = _write(tmp_path / "x_seg.nii.gz", custom, s.affine)
    (tmp_path / "x_seg.json").write_text('{"labels": {"7": "L4", "8": "L5"}}')
    anatomy = segment(study_with([s]), seg_path=path)
    assert anatomy.vertebrae == ["L4", "L5"]
    assert anatomy.levels == ["L4-L5"]


def test_empty_map_cannot_be_given_a_convention() -> None:
    with pytest.raises(InputDataError):
        detect_convention({0})


def test_segment_without_a_label_map_uses_the_builtin_segmenter_or_says_it_is_missing() -> None:
    s, _ = _ours()
    try:
        anatomy = segment(study_with([s]))
    except ModelFileError as exc:  # no module or no weights: a clear error, never a random model
        assert exc.exit_code == 66
        assert str(exc)
    else:
        assert anatomy.reference_series_uid == s.series_uid
