"""Level naming: order along the spine, from the sacrum upward, transitional anatomy."""

from __future__ import annotations

import itertools

import numpy as np
from grounding_factory import sagittal_series, spine_labels

from reporter.anatomy.importers import ORDINAL_DISC_BASE, ORDINAL_VERTEBRA_BASE
from reporter.anatomy.naming import name_instances, name_labels, resolve_ordinals
from reporter.contracts import labels as L


def _instances(names: list[str], with_sacrum: bool = True):
    s = sagittal_series((9, 200, 80))
    lab = spine_labels(s.shape, names)
    verts = [lab == L.vertebra_label(n) for n in names if n != "S1"]
    discs = [lab == L.disc_label(f"{a}-{b}") for a, b in itertools.pairwise(names)]
    sacrum = (lab == L.vertebra_label("S1")) if with_sacrum else None
    return s, verts, discs, sacrum


def test_five_lumbar_vertebrae_are_named_from_the_sacrum_up() -> None:
    s, verts, discs, sacrum = _instances(["T12", "L1", "L2", "L3", "L4", "L5", "S1"])
    out, naming = name_instances(verts[::-1], discs, sacrum, s.affine)  # input order irrelevant
    assert naming.vertebrae == ["T12", "L1", "L2", "L3", "L4", "L5", "S1"]
    assert naming.levels[-1] == "L5-S1"
    assert naming.transitional == "none" and not naming.naming_uncertain
    assert (out == L.disc_label("L4-L5")).sum() == discs[-2].sum()


def test_six_lumbar_type_vertebrae_are_reported_as_l6_with_the_convention() -> None:
    names = ["L1", "L2", "L3", "L4", "L5", "L6", "S1"]
    s, verts, discs, sacrum = _instances(names)
    _, naming = name_instances(verts, discs, sacrum, s.affine, n_lumbar=6)
    assert naming.vertebrae == names
    assert naming.levels[-2:] == ["L5-L6", "L6-S1"]
    assert naming.transitional == "L6" and naming.lumbar_vertebrae == 6
    assert "L6" in naming.convention


def test_four_lumbar_type_vertebrae_make_the_lumbosacral_disc_l4_s1() -> None:
    names = ["T12", "L1", "L2", "L3", "L4", "S1"]
    s, verts, discs, sacrum = _instances(names)
    _, naming = name_instances(verts, discs, sacrum, s.affine, n_lumbar=4)
    assert naming.levels[-1] == "L4-S1"
    assert naming.transitional == "sacralized_L5"


def test_without_the_sacrum_naming_is_uncertain() -> None:
    s, verts, discs, _ = _instances(["L1", "L2", "L3", "L4", "L5", "S1"])
    _, naming = name_instances(verts, discs, None, s.affine)
    assert naming.naming_uncertain
    assert naming.confidence < 0.5


def test_named_map_out_of_order_is_uncertain() -> None:
    s = sagittal_series((9, 200, 80))
    lab = spine_labels(s.shape, ["L1", "L2", "L3", "L4", "L5", "S1"])
    swapped = lab.copy()
    swapped[lab == L.vertebra_label("L3")] = L.vertebra_label("L4")
    swapped[lab == L.vertebra_label("L4")] = L.vertebra_label("L3")
    assert not name_labels(lab, s.affine).naming_uncertain
    naming = name_labels(swapped, s.affine)
    assert naming.naming_uncertain
    assert any("out of order" in n for n in naming.notes)


def test_named_map_reports_enumeration_from_its_names() -> None:
    s = sagittal_series((9, 200, 80))
    lab = spine_labels(s.shape, ["L3", "L4", "L5", "L6", "S1"])
    naming = name_labels(lab, s.affine)
    assert naming.lumbar_vertebrae == 6 and naming.transitional == "L6"
    assert naming.levels == ["L3-L4", "L4-L5", "L5-L6", "L6-S1"]


def test_ordinals_count_up_from_the_lumbosacral_junction() -> None:
    lab = np.array(
        [
            ORDINAL_VERTEBRA_BASE + 1,
            ORDINAL_VERTEBRA_BASE + 6,
            ORDINAL_DISC_BASE + 1,
            ORDINAL_DISC_BASE + 2,
            0,
        ],
        dtype=np.int32,
    ).reshape(1, 1, 5)
    out = resolve_ordinals(lab).ravel().tolist()
    assert out == [
        L.vertebra_label("L5"),
        L.vertebra_label("T12"),
        L.disc_label("L5-S1"),
        L.disc_label("L4-L5"),
        0,
    ]
