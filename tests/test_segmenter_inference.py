"""Inference: a study goes in, an Anatomy in our label convention on the sag T2 grid comes out,
with vertebrae and discs named by ordering along the spine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reporter.anatomy import segmenter_data as sd
from reporter.anatomy.segmenter import (
    SegmenterConfig,
    build_network,
    load_segmenter,
    save_weights,
    segment_study,
)
from reporter.anatomy.segmenter_instances import anatomy_from_generic
from reporter.contracts import labels as lab
from reporter.contracts.study import Study
from reporter.errors import InputDataError
from tests.segmenter_factory import fake_phantom

TINY = SegmenterConfig(channels=(4, 8, 16), strides=(2, 2), num_res_units=1)


def test_anatomy_from_true_classes_names_levels_from_the_sacrum_up() -> None:
    ph = fake_phantom()
    series = ph.study.get("sag_t2")
    anatomy = anatomy_from_generic(sd.to_generic(ph.anatomy.labels), series)
    assert anatomy.vertebrae == ["L2", "L3", "L4", "L5", "S1"]
    assert anatomy.levels == ["L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    assert not anatomy.naming_uncertain
    for name in anatomy.vertebrae:
        v = lab.vertebra_label(name)
        assert np.array_equal(anatomy.labels == v, ph.anatomy.labels == v)


def test_foramina_get_their_side_from_the_slice_position() -> None:
    ph = fake_phantom()
    anatomy = anatomy_from_generic(sd.to_generic(ph.anatomy.labels), ph.study.get("sag_t2"))
    for value in (lab.FORAMEN_LEFT, lab.FORAMEN_RIGHT):
        assert np.array_equal(anatomy.labels == value, ph.anatomy.labels == value)


def test_without_a_sacrum_naming_is_uncertain() -> None:
    ph = fake_phantom()
    generic = sd.to_generic(ph.anatomy.labels)
    generic[generic == sd.SACRUM] = 0
    anatomy = anatomy_from_generic(generic, ph.study.get("sag_t2"))
    assert anatomy.naming_uncertain
    assert "S1" in anatomy.missing


def test_segment_study_returns_labels_on_the_sagittal_t2_grid(tmp_path: Path) -> None:
    torch.manual_seed(0)
    save_weights(build_network(TINY), TINY, tmp_path)
    ph = fake_phantom()
    anatomy = segment_study(ph.study, weights=load_segmenter(tmp_path))
    series = ph.study.get("sag_t2")
    assert anatomy.labels.shape == series.pixels.shape
    assert anatomy.source == "builtin_segmenter"
    assert anatomy.reference_series_uid == series.series_uid
    assert set(np.unique(anatomy.labels).tolist()) <= {0, *lab.ALL_LABELS}


def test_study_without_sagittal_series_is_rejected() -> None:
    ph = fake_phantom()
    empty = Study(study_uid=ph.study.study_uid, series=[])
    with pytest.raises(InputDataError, match="no sagittal"):
        segment_study(empty, weights=load_segmenter_tiny())


def test_a_map_without_spine_structures_is_named_uncertain() -> None:
    ph = fake_phantom()
    generic = np.zeros(ph.anatomy.labels.shape, dtype=np.uint8)
    anatomy = anatomy_from_generic(generic, ph.study.get("sag_t2"))
    assert anatomy.naming_uncertain and anatomy.vertebrae == [] and "L5" in anatomy.missing


def load_segmenter_tiny():  # type: ignore[no-untyped-def]
    from reporter.anatomy.segmenter import Segmenter

    return Segmenter(build_network(TINY), TINY, "0" * 64)


def test_shipped_segmenter_finds_lumbar_spine_on_a_phantom() -> None:
    synth = pytest.importorskip("reporter.synth")
    ph = synth.generate_study(1_000_000, site="site-a")
    anatomy = segment_study(ph.study)
    truth = sd.to_generic(ph.anatomy.labels)
    pred = sd.to_generic(anatomy.labels)
    for cls in (sd.VERTEBRA, sd.DISC, sd.CANAL):
        inter = int(((pred == cls) & (truth == cls)).sum())
        dice = 2 * inter / max(1, int((pred == cls).sum() + (truth == cls).sum()))
        assert dice > 0.7, (sd.CLASS_NAMES[cls], dice)
    assert {"L3", "L4", "L5", "S1"} <= set(anatomy.vertebrae)
