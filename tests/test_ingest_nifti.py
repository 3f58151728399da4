"""NIfTI input: one sagittal series in the ingest layout, world coordinates preserved; the real
lumbar3d volumes load with the right orientation."""

from __future__ import annotations

import itertools
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from reporter.errors import InputDataError
from reporter.geometry import nifti_to_lps_affine
from reporter.ingest import load_nifti, load_study
from reporter.ingest.nifti import sagittal_reorientation

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "lumbar3d"


def _write(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


@pytest.mark.parametrize("axes", list(itertools.permutations(range(3))))
@pytest.mark.parametrize("flips", [(1, 1, 1), (-1, 1, -1)])
def test_nifti_voxels_keep_their_world_position_in_any_axis_order(
    tmp_path: Path, axes: tuple[int, int, int], flips: tuple[int, int, int]
) -> None:
    rng = np.random.default_rng(0)
    shape = (6, 7, 8)
    data = rng.integers(0, 1000, size=shape).astype(np.int16)
    affine = np.zeros((4, 4))
    affine[3, 3] = 1.0
    spacing = (1.5, 0.8, 2.0)
    for v, w in enumerate(axes):
        affine[w, v] = flips[v] * spacing[v]
    affine[:3, 3] = (10.0, -20.0, 30.0)
    study = load_study(_write(tmp_path / "v.nii.gz", data, affine))
    series = study.series[0]
    assert series.plane == "sagittal" and series.pixels.dtype == np.float32
    # conventions: rows run inferior, columns posterior, slices along (col dir x row dir)
    assert series.affine[2, 1] < 0 and series.affine[1, 2] > 0
    iop_normal = np.cross(series.affine[:3, 2], series.affine[:3, 1])
    assert float(iop_normal @ series.affine[:3, 0]) > 0
    lps = nifti_to_lps_affine(affine)
    for idx in rng.integers(0, 6, size=(20, 3)):
        world = lps[:3, :3] @ idx + lps[:3, 3]
        k, j, i = np.rint(series.lps_to_index(world)).astype(int)
        assert series.pixels[k, j, i] == data[tuple(idx)]


def test_label_map_comes_out_on_the_series_grid(tmp_path: Path) -> None:
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])[:, [2, 1, 0, 3]]
    image = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    labels = (image % 3).astype(np.uint8)
    img = _write(tmp_path / "img.nii", image, affine)
    seg = _write(tmp_path / "seg.nii.gz", labels, affine)
    study, label_map = load_nifti(img, seg, weighting="T1")
    series = study.series[0]
    assert series.role == "sag_t1"
    assert label_map is not None and label_map.dtype == np.int16
    np.testing.assert_array_equal(label_map, series.pixels.astype(np.int16) % 3)


def test_label_map_on_another_grid_is_refused(tmp_path: Path) -> None:
    img = _write(tmp_path / "img.nii", np.zeros((4, 5, 6), np.float32), np.eye(4))
    seg = _write(tmp_path / "seg.nii", np.zeros((4, 5, 7), np.uint8), np.eye(4))
    with pytest.raises(InputDataError, match="not on the grid"):
        load_nifti(img, seg)


def test_a_non_nifti_file_with_nifti_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.nii.gz").write_bytes(b"garbage")
    with pytest.raises(InputDataError, match="not a readable NIfTI"):
        load_study(tmp_path / "x.nii.gz")


@pytest.mark.real
@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/real/lumbar3d is absent")
@pytest.mark.parametrize(
    ("name", "upper_label", "lower_label"),
    [("ivd_11", 5, 1), ("ivd_20", 5, 1), ("vb3_01", 1, 5), ("vb3_05", 1, 5)],
)
def test_real_lumbar3d_volumes_load_with_correct_orientation(
    name: str, upper_label: int, lower_label: int
) -> None:
    """ivd: labels 1..5 = discs L5-S1 .. L1-L2; vb3: labels 1..5 = vertebrae L1 .. L5.
    Voxel axes on disk: 0 superior->inferior, 1 anterior->posterior, 2 left-right."""
    raw = np.asanyarray(nib.load(str(REAL / f"{name}.nii.gz")).dataobj)
    study, labels = load_nifti(REAL / f"{name}.nii.gz", REAL / f"{name}_seg.nii.gz")
    series = study.series[0]
    assert labels is not None
    # axis 2 (left-right) became the slice axis; rows are axis 0, columns axis 1
    assert series.shape == (raw.shape[2], raw.shape[0], raw.shape[1])
    np.testing.assert_allclose(series.spacing, (1.0, 1.0, 1.0), atol=1e-3)
    assert series.affine[2, 1] < 0  # row index grows toward the feet
    assert series.affine[1, 2] > 0  # column index grows toward the back
    # rows kept the on-disk superior->inferior order, columns the anterior->posterior order
    reo = sagittal_reorientation(nifti_to_lps_affine(nib.load(str(REAL / f"{name}.nii.gz")).affine))
    assert reo.axes == (2, 0, 1) and reo.flip[1:] == (False, False)
    k = raw.shape[2] // 3
    kk = raw.shape[2] - 1 - k if reo.flip[0] else k
    np.testing.assert_array_equal(series.pixels[kk], raw[:, :, k].astype(np.float32))
    # anatomy: the cranial structure sits above the caudal one, both in front of the canal
    rows = {lab: np.nonzero(labels == lab)[1].mean() for lab in (upper_label, lower_label)}
    assert rows[upper_label] < rows[lower_label]
    cols = np.nonzero(labels > 0)[2].mean()
    assert cols < series.shape[2] * 0.75
