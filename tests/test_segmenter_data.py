"""The segmenter's view of a series: canonical orientation, generic classes, real volumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reporter.anatomy import segmenter_data as sd
from reporter.contracts import labels as lab
from reporter.errors import InputDataError
from tests.segmenter_factory import fake_phantom, label_volume, sagittal_affine

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "lumbar3d"


def test_generic_classes_keep_sacrum_apart_from_other_vertebrae() -> None:
    labels = np.array([lab.vertebra_label("L5"), lab.vertebra_label("S1"), lab.disc_label("L5-S1"),
                       lab.CANAL, lab.FORAMEN_LEFT, lab.ROOT_RIGHT, lab.MUSCLE, 0])  # fmt: skip
    assert sd.to_generic(labels).tolist() == [
        sd.VERTEBRA,
        sd.SACRUM,
        sd.DISC,
        sd.CANAL,
        sd.FORAMEN,
        sd.ROOT,
        0,
        0,
    ]


def test_canonical_frame_resamples_to_one_mm_rows_superior_first() -> None:
    frame = sd.canonical_frame((5, 96, 64), sagittal_affine(spacing=2.0))
    assert frame.canonical_shape == (192, 128)
    assert not frame.transpose and not frame.flip_rows and not frame.flip_cols


def test_transposed_and_flipped_series_reach_the_same_canonical_slices() -> None:
    labels = label_volume()
    aff = sagittal_affine()
    canon = sd.stack_from_series("a", labels.astype(np.float32), aff, labels).labels
    # Store the same slices with rows and columns swapped and the S-I axis reversed.
    swapped = np.flip(np.transpose(labels, (0, 2, 1)), axis=2).copy()
    aff2 = np.eye(4)
    aff2[:3, 0] = aff[:3, 0]
    aff2[:3, 1] = aff[:3, 2]  # rows now run A -> P
    aff2[:3, 2] = -aff[:3, 1]  # columns run inferior -> superior
    aff2[:3, 3] = aff[:3, 3] + aff[:3, 1] * (labels.shape[1] - 1)
    other = sd.stack_from_series("b", swapped.astype(np.float32), aff2, swapped).labels
    assert np.array_equal(canon, other)


def test_canonical_round_trip_restores_the_native_grid() -> None:
    labels = label_volume()
    frame = sd.canonical_frame(labels.shape, sagittal_affine())
    t = torch.from_numpy(labels)[:, None]
    back = frame.to_native(frame.to_canonical(t, "nearest"), "nearest")[:, 0].numpy()
    assert np.array_equal(back, labels)


def test_axial_series_is_rejected_as_not_sagittal() -> None:
    aff = np.eye(4)  # slices along z, rows along y, columns along x: an axial stack
    aff[:3, 0], aff[:3, 1], aff[:3, 2] = (0, 0, 4.0), (0, 1.0, 0), (1.0, 0, 0)
    with pytest.raises(InputDataError, match="not sagittal"):
        sd.canonical_frame((10, 64, 64), aff)


def test_phantom_stacks_carry_full_labels_and_tissue_map() -> None:
    stacks = sd.phantom_stacks(fake_phantom())
    assert len(stacks) == 1
    st = stacks[0]
    assert st.annotated == sd.ALL_CLASSES and st.tissue is not None
    assert st.image.shape == st.labels.shape
    assert float(st.image.min()) >= 0.0 and float(st.image.max()) <= 2.0


@pytest.mark.real
@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/real/lumbar3d not present")
def test_real_vertebra_volume_is_canonical_and_labels_only_vertebrae() -> None:
    vol = sd.load_lumbar3d(REAL, "vb3_01")
    st = vol.stack
    assert vol.structure == "vertebra" and st.annotated == frozenset({sd.VERTEBRA})
    assert set(np.unique(st.labels).tolist()) == {0, sd.VERTEBRA}
    assert st.valid_rows is not None and st.valid_rows[0] > 0
    # The vb3 files are 1 mm and stored superior -> inferior: canonical equals stored.
    assert st.image.shape == vol.pixels.shape


def test_heldout_split_is_fixed_by_patient() -> None:
    assert set(sd.LUMBAR3D_HELDOUT) == {"vb3_08", "vb3_09", "vb3_10", "ivd_25"}
