"""Single 2-D sagittal images: measurements on masks of known geometry, the checker's verdicts
and their reasons (reporter.grounding.measures.sagittal2d, reporter.grounding.image2d_evidence)."""

from __future__ import annotations

import numpy as np
import pytest

from reporter.contracts import labels as L
from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import field_values
from reporter.contracts.verdicts import Measurement
from reporter.grounding import check, image2d_evidence, measure
from reporter.grounding.measures.endplate import depth_inside
from reporter.grounding.measures.sagittal2d import is_single_image, keep_largest_parts
from tests.grounding_factory import findings, sagittal_series, study_with

SPACING = 0.5  # mm per pixel
BODY_ROWS, DISC_ROWS, DEPTH_COLS = 40, 10, 50  # 20 mm bodies, 5 mm discs, 25 mm deep


def _image(slip_px: int = 0, bulge_px: int = 0, band: float | None = None):
    """One sagittal slice: L3 above L4 with the L3-L4 disc between (plus L2-L3 and L4-L5 to
    give the frame its neighbours), L3 shifted `slip_px` anteriorly, the L3-L4 disc reaching
    `bulge_px` behind the posterior walls at its mid-height; `band`: the marrow within 3 mm of
    L3's inferior endplate is that many times brighter than the rest of the body."""
    series = sagittal_series((1, 330, 140), spacing=(4.0, SPACING, SPACING))
    lab = np.zeros(series.shape, np.int16)
    c0 = 30
    rows = {"L2": 10, "L3": 60, "L4": 110, "L5": 160}
    for name, r in rows.items():
        shift = -slip_px if name in ("L2", "L3") else 0
        lab[0, r : r + BODY_ROWS, c0 + shift : c0 + DEPTH_COLS + shift] = L.vertebra_label(name)
    for up, lo in (("L2", "L3"), ("L3", "L4"), ("L4", "L5")):
        r = rows[up] + BODY_ROWS
        shift = -slip_px if up in ("L2",) else 0
        lab[0, r : r + DISC_ROWS, c0 + 1 + shift : c0 + DEPTH_COLS - 1 + shift] = L.disc_label(
            f"{up}-{lo}"
        )
    if bulge_px:
        r = rows["L3"] + BODY_ROWS
        lab[0, r + 3 : r + 7, c0 + DEPTH_COLS - 1 : c0 + DEPTH_COLS + bulge_px] = L.disc_label(
            "L3-L4"
        )
    lab[0, 0:220, c0 + DEPTH_COLS + 8 : c0 + DEPTH_COLS + 24] = L.CANAL
    pixels = np.full(series.shape, 100.0, np.float32)
    if band is not None:
        r = rows["L3"] + BODY_ROWS
        pixels[0, r - 6 : r, :] = 100.0 * band  # 3 mm above L3's inferior endplate
    series = series.model_copy(update={"pixels": pixels})
    names = ["L2", "L3", "L4", "L5"]
    anatomy = Anatomy(
        reference_series_uid=series.series_uid,
        labels=lab,
        affine=series.affine,
        source="builtin_segmenter",
        vertebrae=names,
        levels=["L2-L3", "L3-L4", "L4-L5"],
        naming_uncertain=True,  # as every single image's names
    )
    return study_with([series]), anatomy


def test_a_one_slice_label_map_is_a_single_image() -> None:
    _, anatomy = _image()
    assert is_single_image(anatomy.labels)
    assert not is_single_image(np.zeros((9, 20, 20), np.int16))


def test_a_disc_of_known_height_gives_its_ratio_to_the_body_heights() -> None:
    study, anatomy = _image()
    m = measure(study, anatomy)["L3-L4"]
    # 5 mm of disc between 20 mm bodies.
    assert m["disc_body_height_ratio"].value == pytest.approx(5.0 / 20.0, abs=0.01)
    assert m["disc_body_height_ratio"].read_on == "sagittal"


@pytest.mark.parametrize("slip_px", [0, 6, 12])
def test_a_known_slip_gives_its_millimetres(slip_px: int) -> None:
    study, anatomy = _image(slip_px=slip_px)
    m = measure(study, anatomy)["L3-L4"]
    # L3 moved forward on L4: anterolisthesis, positive, slip_px x 0.5 mm.
    assert m["slip_mm"].value == pytest.approx(slip_px * SPACING, abs=0.6)
    assert m["slip_percent"].value == pytest.approx(100 * slip_px / DEPTH_COLS, abs=2.5)


def test_disc_material_behind_the_wall_line_gives_its_reach() -> None:
    study, anatomy = _image(bulge_px=8)
    flat = measure(*_image())["L3-L4"]["wall_line_extension_mm"].value
    reach = measure(study, anatomy)["L3-L4"]["wall_line_extension_mm"].value
    assert flat == pytest.approx(-SPACING, abs=0.2)  # the disc ends one pixel in front
    assert reach == pytest.approx(8 * SPACING, abs=0.3)


def test_a_bright_endplate_band_reads_above_one_and_a_plain_body_at_one() -> None:
    plain = measure(*_image(band=1.0))["L3-L4"]["endplate_band_t2_upper"].value
    bright = measure(*_image(band=1.6))["L3-L4"]["endplate_band_t2_upper"].value
    assert plain == pytest.approx(1.0, abs=1e-6)
    assert bright == pytest.approx(1.6, abs=1e-6)


def test_stray_islands_of_a_label_are_dropped() -> None:
    lab = np.zeros((1, 40, 40), np.int16)
    lab[0, 5:20, 5:20] = L.vertebra_label("L3")
    lab[0, 30:32, 30:32] = L.vertebra_label("L3")
    lab[0, 30:32, 5:7] = L.CANAL
    out = keep_largest_parts(lab)
    assert (out == L.vertebra_label("L3")).sum() == 15 * 15
    assert (out == L.CANAL).sum() == 4  # other tissues untouched


def test_depth_inside_matches_the_whole_slice_transform() -> None:
    from scipy import ndimage

    mask = np.zeros((30, 30), bool)
    mask[0:12, 4:20] = True  # touching the image's edge
    mask[5, 25] = True
    got = depth_inside(mask, (0.7, 0.9))
    want = ndimage.distance_transform_edt(mask, sampling=(0.7, 0.9))
    assert np.allclose(got[mask], want[mask])


def test_single_image_statements_are_judged_though_names_are_uncertain() -> None:
    study, anatomy = _image(slip_px=12)
    result = check(findings(), study, anatomy)
    verdicts = [v for v in result.verdicts if v.level == "L3-L4"]
    assert verdicts, "the L3-L4 statements must be judged"
    assert all(v.unverified_because != "level_name_uncertain" for v in verdicts)
    slip = result.verdict_for("L3-L4", "spondylolisthesis")
    assert slip is not None and slip.rule == "image2d:spondylolisthesis"
    assert slip.weight is not None and slip.weight.models == "image2d_evidence"
    assert "name is not verified" in slip.reason


def test_every_unverifiable_single_image_verdict_says_why() -> None:
    study, anatomy = _image()
    result = check(findings(), study, anatomy)
    unverifiable = [v for v in result.verdicts if v.verdict == "unverifiable"]
    assert unverifiable
    assert all(v.unverified_because is not None for v in unverifiable)
    canal = result.verdict_for("L3-L4", "canal_stenosis")
    assert canal.unverified_because == "no_image_model"
    endplate = result.verdict_for("L3-L4", "endplate_defect_upper")
    assert endplate.unverified_because == "not_measured"


def test_volume_levels_with_uncertain_names_stay_unverifiable_with_their_reason() -> None:
    from tests.grounding_factory import anatomy_for, spine_labels

    names = ["T12", "L1", "L2", "L3", "L4", "L5", "S1"]
    s = sagittal_series((9, 200, 80))
    anatomy = anatomy_for(s, spine_labels(s.shape, names), names, uncertain=True)
    result = check(findings(), study_with([s]), anatomy)
    assert {v.unverified_because for v in result.verdicts if v.level} == {"level_name_uncertain"}


def _measures(**values: float) -> dict[str, Measurement]:
    return {k: Measurement(name=k, value=v, level="L4-L5") for k, v in values.items()}


def test_grade_likelihoods_cover_every_value_and_favour_the_fitted_class() -> None:
    _, cond = image2d_evidence.model_of("disc_narrowing")
    name = cond.measurements[0]
    refs = cond.level_reference.get(name, {})
    ref = refs.get("L4-L5", refs.get("default", 1.0))
    none_loc = cond.classes[0].densities[name].loc
    narrowed_loc = cond.classes[1].densities[name].loc
    lik_normal, used = image2d_evidence.likelihood(
        "disc_narrowing", _measures(**{name: none_loc * ref})
    )
    lik_thin, _ = image2d_evidence.likelihood(
        "disc_narrowing", _measures(**{name: narrowed_loc * ref})
    )
    assert set(lik_normal) == set(field_values("disc_narrowing"))
    assert sum(lik_normal.values()) == pytest.approx(1.0)
    assert lik_normal["none"] > lik_normal["moderate"]
    assert lik_thin["moderate"] > lik_thin["none"]
    assert used[0].name == name


def test_a_level_without_the_measurement_has_no_single_image_likelihood() -> None:
    assert image2d_evidence.likelihood("disc_narrowing", {}) is None
    assert image2d_evidence.likelihood("canal_stenosis", _measures(canal_ap_mm=12.0)) is None


def test_the_band_verdict_follows_the_likelihood_ratios() -> None:
    _, cond = image2d_evidence.model_of("disc_bulging")
    r = cond.bands.contradict_ratio
    # The claim's likelihood far below its rival's: contradicted, when the condition contradicts
    # at all.
    lik = {False: 0.999, True: 0.001}
    kind, allowed, _ = image2d_evidence.judge("disc_bulging", True, lik)
    assert kind == ("contradicted" if r > 0.001 else "unverifiable")
    assert False in allowed
    kind, _, why = image2d_evidence.judge("disc_bulging", False, {False: 0.5, True: 0.5})
    assert kind == "unverifiable" and why == "abnormal_not_excluded"


def test_findings_json_statements_carry_why_they_could_not_be_verified() -> None:
    from reporter.render.statements import build_statements

    study, anatomy = _image()
    claims = findings()
    result = check(claims, study, anatomy)
    rows = [s.as_dict() for s in build_statements(claims, result.verdicts, None)]
    canal = next(r for r in rows if r["level"] == "L3-L4" and r["field"] == "canal_stenosis")
    assert canal["verdict"] == "unverifiable"
    assert canal["unverified_because"] == "no_image_model"
    assert all("unverified_because" not in r for r in rows if r["verdict"] == "supported")


def test_single_image_statements_take_the_single_image_posterior_thresholds() -> None:
    from reporter.contracts.verdicts import Evidence
    from reporter.grounding import policy

    _, cond = image2d_evidence.model_of("disc_narrowing")
    cell = cond.posterior
    unmeasured = Evidence(
        prior=0.9,
        likelihood_ratio=1.0,
        posterior=0.9,
        posterior_abnormal=0.95,
        models="image2d_evidence",
    )
    want = None if cell.assert_at_unmeasured == "never" else float(cell.assert_at_unmeasured)
    assert policy.assert_threshold("disc_narrowing", unmeasured) == want
    # A field single images have no model for keeps the volume file's threshold.
    volume = unmeasured.model_copy(update={"models": "error_models"})
    assert policy.assert_threshold("canal_stenosis", unmeasured) == policy.assert_threshold(
        "canal_stenosis", volume
    )
    study, anatomy = _image()
    v = check(findings(), study, anatomy).verdict_for("L3-L4", "canal_stenosis")
    assert v.weight is not None and v.weight.models == "image2d_evidence" and not v.weight.measured
