"""Views: harmonized resolution, presence of series, crops placed at their level."""

from __future__ import annotations

import numpy as np
from vlm_toy import toy_study

from reporter.contracts.findings import LEVEL_FIELDS
from reporter.vlm.config import ViewConfig
from reporter.vlm.views import (
    LEVEL_VIEWS,
    build_views,
    not_assessable_fields,
    presence_of_level,
)


def test_every_labelled_level_gets_its_views_at_the_configured_size():
    study, anatomy = toy_study()
    v = build_views(study, anatomy, ViewConfig(size=48))
    assert v.levels == anatomy.levels
    assert v.level_images.shape == (6, len(LEVEL_VIEWS), 3, 48, 48)
    assert v.global_present[:, :2].all()  # T2 and T1 present, no STIR
    assert not v.global_present[:, 2].any()


def test_axial_view_exists_only_where_an_axial_stack_covers_the_disc():
    study, anatomy = toy_study()
    v = build_views(study, anatomy, ViewConfig())
    axial = v.level_present[:, LEVEL_VIEWS.index("level_axial")].any(-1)
    assert axial.tolist() == [lv == "L4-L5" for lv in v.levels]
    na = not_assessable_fields(LEVEL_FIELDS, presence_of_level(v, 0))
    assert set(na) == {"subarticular_stenosis_left", "subarticular_stenosis_right"}


def test_missing_t1_makes_modic_not_assessable_but_not_pfirrmann():
    study, anatomy = toy_study(t1=False)
    v = build_views(study, anatomy, ViewConfig())
    na = not_assessable_fields(LEVEL_FIELDS, presence_of_level(v, 4))
    assert "modic_upper" in na and "modic_lower" in na
    assert "pfirrmann" not in na and "canal_stenosis" not in na


def test_view_is_independent_of_acquisition_pixel_spacing():
    study, anatomy = toy_study()
    v1 = build_views(study, anatomy, ViewConfig())
    # The same anatomy acquired at half the in-plane resolution (every other pixel).
    s2 = study.model_copy(deep=True)
    for s in s2.series:
        if s.plane == "sagittal":
            s.pixels = s.pixels[:, ::2, ::2].copy()
            s.affine = s.affine.copy()
            s.affine[:3, 1:3] *= 2.0
    v2 = build_views(s2, anatomy, ViewConfig())
    a = v1.level_images[:, 0, 0]
    b = v2.level_images[:, 0, 0]
    corr = np.corrcoef(a.ravel(), b.ravel())[0, 1]
    assert corr > 0.8
