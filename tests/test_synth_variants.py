"""Enumeration, field-of-view, post-operative and domain-randomized phantoms."""

from __future__ import annotations

import numpy as np
import pytest

from reporter.contracts import labels as lb
from reporter.contracts.findings import lumbar_levels
from reporter.synth import generate_study


@pytest.mark.parametrize(
    ("overrides", "n_lumbar", "transitional", "last_level"),
    [
        ({"n_lumbar": 4, "transitional": "none"}, 4, "none", "L4-S1"),
        ({"transitional": "L6"}, 6, "L6", "L6-S1"),
        ({"transitional": "sacralized_L5", "n_lumbar": 5}, 5, "sacralized_L5", "L5-S1"),
        ({"transitional": "lumbarized_S1", "n_lumbar": 5}, 5, "lumbarized_S1", "L5-S1"),
    ],
)
def test_enumeration_variants_name_levels_and_labels(overrides, n_lumbar, transitional, last_level):
    ph = generate_study(1_000_400, fov="standard", **overrides)
    f = ph.findings
    assert f.study.lumbar_vertebrae == n_lumbar
    assert f.study.transitional.value == transitional
    assert [lf.level for lf in f.levels] == lumbar_levels(n_lumbar)
    assert f.levels[-1].level == last_level and f.levels[-1].pfirrmann.assessed
    an = ph.anatomy
    assert an.lumbar_vertebrae == n_lumbar and an.transitional == transitional
    present = set(np.unique(an.labels).tolist())
    assert lb.disc_label(last_level) in present
    assert lb.vertebra_label(f"L{n_lumbar}") in present
    if n_lumbar == 6:
        assert "L6" in an.vertebrae


def test_missing_t12_l1_fov_makes_that_level_not_assessable():
    ph = generate_study(1_000_401, fov="missing_t12_l1")
    lf = ph.findings.level("T12-L1")
    assert lf is not None and not lf.canal_stenosis.assessed
    assert "T12-L1" in ph.anatomy.missing
    assert ph.findings.level("L1-L2").canal_stenosis.assessed


def test_cut_sacrum_fov_keeps_the_lumbosacral_disc_but_not_the_sacrum_below():
    ph = generate_study(1_000_402, fov="cut_sacrum")
    assert ph.findings.level("L5-S1").pfirrmann.assessed
    sac = ph.anatomy.labels == lb.vertebra_label("S1")
    assert sac.any()
    # The sacrum reaches the bottom edge of the image: it is cut, not shown whole.
    assert sac[:, -1, :].any()


def test_postoperative_study_has_screw_voids_in_the_image_only():
    ph = generate_study(1_000_403, postoperative=True, site="site-b")
    assert ph.model is not None and len(ph.model.screws) == 4
    t1 = ph.study.get("sag_t1")
    vt = ph.model.vertebrae[ph.model.screws[0][0]]
    mask = ph.anatomy.labels == lb.vertebra_label(vt.name)
    # Labels keep the vertebra; the screw region is a signal void inside it.
    assert mask.any()
    inside = t1.pixels[mask]
    assert np.percentile(inside, 2) < 0.25 * np.median(inside)


def test_random_site_randomizes_contrast_but_keeps_geometry_and_truth():
    a = generate_study(1_000_404, site="random")
    b = generate_study(1_000_404, site="site-a")
    assert a.meta["site"] == "random"
    assert a.findings.study == b.findings.study
    assert [lf.herniation for lf in a.findings.levels] == [
        lf.herniation for lf in b.findings.levels
    ]
