"""The verdict logic: one verdict per statement, contradictions as results, never an exception."""

from __future__ import annotations

from grounding_factory import (
    anatomy_for,
    findings,
    measures_normal,
    sagittal_series,
    spine_labels,
    study_with,
)

from reporter.contracts.findings import LEVEL_FIELDS
from reporter.contracts.verdicts import Measurement
from reporter.grounding import check

NAMES = ["T12", "L1", "L2", "L3", "L4", "L5", "S1"]


def _setup(n_lumbar: int = 5, uncertain: bool = False):
    names = NAMES if n_lumbar == 5 else ["T12", "L1", "L2", "L3", "L4", "L5", "L6", "S1"]
    s = sagittal_series((9, 200, 80))
    lab = spine_labels(s.shape, names)
    anatomy = anatomy_for(s, lab, names, n_lumbar=n_lumbar, uncertain=uncertain)
    measures = {lv: measures_normal(lv) for lv in anatomy.levels}
    return study_with([s]), anatomy, measures


def _set(measures, level: str, **values: float) -> None:
    for name, v in values.items():
        measures[level][name] = Measurement(name=name, value=v, level=level, series_uid="1.2.3")


def test_every_statement_gets_exactly_one_verdict() -> None:
    study, anatomy, measures = _setup()
    result = check(findings(), study, anatomy, measurements=measures)
    level_verdicts = [v for v in result.verdicts if v.level is not None]
    assert len(level_verdicts) == 6 * len(LEVEL_FIELDS)
    assert len({(v.level, v.field) for v in level_verdicts}) == len(level_verdicts)
    assert result.contradicted == []


def test_severe_stenosis_where_the_canal_measures_normal_is_contradicted() -> None:
    study, anatomy, measures = _setup()
    claim = findings(levels={"L4-L5": {"canal_stenosis": "severe"}})
    v = check(claim, study, anatomy, measurements=measures).verdict_for("L4-L5", "canal_stenosis")
    assert v is not None and v.verdict == "contradicted"
    assert v.rule == "canal_stenosis"
    assert "none" in v.supported_values
    assert v.evidence and v.evidence[0].series_uid
    assert v.evidence[0].position_lps is not None


def test_narrow_canal_supports_the_stenosis_claim() -> None:
    study, anatomy, measures = _setup()
    _set(measures, "L4-L5", dural_sac_area_mm2=40.0)
    claim = findings(levels={"L4-L5": {"canal_stenosis": "severe"}})
    v = check(claim, study, anatomy, measurements=measures).verdict_for("L4-L5", "canal_stenosis")
    assert v.verdict == "supported"


def test_a_positive_claim_is_verified_only_when_the_numbers_rule_out_normal() -> None:
    study, anatomy, measures = _setup()
    claim = findings(levels={"L4-L5": {"canal_stenosis": "mild"}})
    # 97 mm2 is mild by the cut (< 100) but within the rule's tolerance of normal.
    _set(measures, "L4-L5", dural_sac_area_mm2=97.0)
    v = check(claim, study, anatomy, measurements=measures).verdict_for("L4-L5", "canal_stenosis")
    assert v.verdict == "unverifiable"
    assert "none" in v.supported_values and "mild" in v.supported_values
    assert "rule out normal" in v.reason
    _set(measures, "L4-L5", dural_sac_area_mm2=85.0)  # clearly mild
    v = check(claim, study, anatomy, measurements=measures).verdict_for("L4-L5", "canal_stenosis")
    assert v.verdict == "supported"
    # a normal claim with the same borderline numbers is still supported
    _set(measures, "L4-L5", dural_sac_area_mm2=97.0)
    normal = findings(levels={"L4-L5": {"canal_stenosis": "none"}})
    v = check(normal, study, anatomy, measurements=measures).verdict_for("L4-L5", "canal_stenosis")
    assert v.verdict == "supported"


def test_modic_type_whose_signal_pattern_is_absent_is_contradicted() -> None:
    study, anatomy, measures = _setup()
    _set(measures, "L4-L5", modic_t1_ratio_upper=0.6, modic_t2_ratio_upper=1.5)  # type 1
    ok = findings(levels={"L4-L5": {"modic_upper": 1}})
    wrong = findings(levels={"L4-L5": {"modic_upper": 2}})
    assert (
        check(ok, study, anatomy, measurements=measures).verdict_for("L4-L5", "modic_upper").verdict
        == "supported"
    )
    assert (
        check(wrong, study, anatomy, measurements=measures)
        .verdict_for("L4-L5", "modic_upper")
        .verdict
        == "contradicted"
    )


def test_a_level_the_spine_does_not_have_is_contradicted() -> None:
    study, anatomy, measures = _setup(n_lumbar=5)
    claim = findings(n_lumbar=6)  # claims L5-L6 and L6-S1 in a spine with five lumbar vertebrae
    result = check(claim, study, anatomy, measurements=measures)
    l56 = [v for v in result.verdicts if v.level == "L5-L6"]
    assert l56 and all(v.verdict == "contradicted" and v.rule == "level_exists" for v in l56)
    count = result.verdict_for(None, "lumbar_vertebrae")
    assert count.verdict == "contradicted"


def test_foraminal_stenosis_on_the_wrong_side_is_contradicted() -> None:
    study, anatomy, measures = _setup()
    for sector in ("cranial", "caudal", "anterior", "posterior"):
        _set(measures, "L5-S1", **{f"foraminal_fat_{sector}_left": 0.05})
    claim = findings(levels={"L5-S1": {"foraminal_stenosis_right": 2}})
    result = check(claim, study, anatomy, measurements=measures)
    assert result.verdict_for("L5-S1", "foraminal_stenosis_right").verdict == "contradicted"
    assert result.verdict_for("L5-S1", "foraminal_stenosis_left").verdict == "contradicted"


def test_herniation_on_the_wrong_side_is_contradicted() -> None:
    study, anatomy, measures = _setup()
    _set(measures, "L4-L5", posterior_extension_mm=4.5, herniation_base_mm=12.0,
         herniation_circumference_deg=45.0, herniation_lateral_mm=-7.0)  # fmt: skip
    right = {"herniation": {"value": "protrusion", "zone": "paracentral_right"}}
    left = {"herniation": {"value": "protrusion", "zone": "paracentral_left"}}
    ok = check(findings(levels={"L4-L5": right}), study, anatomy, measurements=measures)
    bad = check(findings(levels={"L4-L5": left}), study, anatomy, measurements=measures)
    assert ok.verdict_for("L4-L5", "herniation").verdict == "supported"
    assert bad.verdict_for("L4-L5", "herniation").verdict == "contradicted"


def test_uncertain_naming_makes_level_claims_unverifiable_not_contradicted() -> None:
    study, anatomy, measures = _setup(uncertain=True)
    claim = findings(levels={"L4-L5": {"canal_stenosis": "severe"}})
    result = check(claim, study, anatomy, measurements=measures)
    assert {v.verdict for v in result.verdicts if v.level} == {"unverifiable"}


def test_missing_evidence_is_unverifiable() -> None:
    study, anatomy, measures = _setup()
    del measures["L3-L4"]["dural_sac_area_mm2"], measures["L3-L4"]["canal_ap_mm"]
    claim = findings(levels={"L3-L4": {"canal_stenosis": "moderate"}})
    v = check(claim, study, anatomy, measurements=measures).verdict_for("L3-L4", "canal_stenosis")
    assert v.verdict == "unverifiable"


def test_not_assessable_fields_are_not_statements() -> None:
    study, anatomy, measures = _setup()
    claim = findings(levels={"L3-L4": {"canal_stenosis": {"not_assessable": "artefact"}}})
    result = check(claim, study, anatomy, measurements=measures)
    assert result.verdict_for("L3-L4", "canal_stenosis") is None


def test_check_measures_the_study_itself_without_raising() -> None:
    study, anatomy, _ = _setup()
    # No measurements passed: the checker measures the (blank) images and never raises.
    result = check(findings(levels={"L4-L5": {"canal_stenosis": "severe"}}), study, anatomy)
    assert len(result.verdicts) > 0
    assert result.rules_sha256


def test_measurement_a_segmentation_cannot_have_is_unverifiable_not_contradicted() -> None:
    """A broken mask gives numbers outside anatomy: the claim is unverifiable, with the reason."""
    study, anatomy, measures = _setup()
    _set(measures, "L3-L4", modic_t1_ratio_upper=0.12, modic_t2_ratio_upper=0.1)  # 'type 3'?
    _set(measures, "L4-L5", disc_height_index=2.4, slip_percent=-230.0)
    claim = findings(levels={"L4-L5": {"disc_narrowing": "mild", "spondylolisthesis": 1}})
    result = check(claim, study, anatomy, measurements=measures)
    for level, field in (
        ("L3-L4", "modic_upper"),
        ("L4-L5", "disc_narrowing"),
        ("L4-L5", "spondylolisthesis"),
    ):
        v = result.verdict_for(level, field)
        assert v.verdict == "unverifiable", (field, v.reason)
        assert "implausible" in v.reason and "segmentation" in v.reason and v.evidence


def test_measurement_set_aside_by_measure_says_why_in_the_verdict() -> None:
    study, anatomy, measures = _setup()
    why = "not measured: the label map does not delineate the ligamentum flavum"
    measures["L4-L5"]["lateral_recess_depth_mm_left"] = Measurement(
        name="lateral_recess_depth_mm_left", value=None, method=why
    )
    claim = findings(levels={"L4-L5": {"subarticular_stenosis_left": "severe"}})
    v = check(claim, study, anatomy, measurements=measures).verdict_for(
        "L4-L5", "subarticular_stenosis_left"
    )
    assert v.verdict == "unverifiable" and why in v.reason


def _noisy_source(monkeypatch, rules: dict, bias: dict | None = None):
    """Pretend the built-in segmenter's noise profile is `rules` / `bias` (the shipped one is
    tuned to the current weights; these tests check the mechanism, not the numbers)."""
    from reporter.grounding import grading

    real_rules, real_bias = grading.rules_for, grading.bias_for

    def rules_for(source: str) -> dict:
        return (
            grading._merge(grading.rules(), rules)
            if source == "builtin_segmenter"
            else (real_rules(source))
        )

    def bias_for(source: str) -> dict:
        return dict(bias or {}) if source == "builtin_segmenter" else real_bias(source)

    monkeypatch.setattr(grading, "rules_for", rules_for)
    monkeypatch.setattr(grading, "bias_for", bias_for)


def test_segmenter_anatomy_is_judged_with_its_measurement_noise(monkeypatch) -> None:
    """The same canal AP contradicts 'none' on a ground-truth map but not on a source whose AP
    error is wider (rules.json measurement_noise)."""
    _noisy_source(monkeypatch, {"canal_stenosis": {"fallback": {"tolerance": 3.0}}})
    study, anatomy, measures = _setup()
    del measures["L4-L5"]["dural_sac_area_mm2"]
    _set(measures, "L4-L5", canal_ap_mm=10.0)
    claim = findings(levels={"L4-L5": {"canal_stenosis": "none"}})
    gt = check(claim, study, anatomy, measurements=measures).verdict_for("L4-L5", "canal_stenosis")
    seg_anatomy = anatomy.model_copy(update={"source": "builtin_segmenter"})
    seg = check(claim, study, seg_anatomy, measurements=measures)
    assert gt.verdict == "contradicted"
    assert seg.verdict_for("L4-L5", "canal_stenosis").verdict == "supported"


def test_numbers_that_allow_every_value_verify_nothing(monkeypatch) -> None:
    """Where a small posterior reach allows none, bulge and both herniation types within the
    source's noise, the claim is unverifiable (a positive one is not asserted), not supported."""
    _noisy_source(
        monkeypatch, {"herniation": {"tolerance_mm": 2.0, "circumference_tolerance_deg": 100}}
    )
    study, anatomy, measures = _setup()
    _set(measures, "L4-L5", posterior_extension_mm=1.0, herniation_base_mm=3.0)
    claim = findings(levels={"L4-L5": {"herniation": "bulge", "disc_bulging": True}})
    seg_anatomy = anatomy.model_copy(update={"source": "builtin_segmenter"})
    result = check(claim, study, seg_anatomy, measurements=measures)
    for field in ("herniation", "disc_bulging"):
        v = result.verdict_for("L4-L5", field)
        assert v.verdict == "unverifiable" and "allow every value" in v.reason, v.reason
    gt = check(claim, study, anatomy, measurements=measures).verdict_for("L4-L5", "herniation")
    assert gt.verdict == "contradicted"


def test_segmenter_measurements_are_corrected_for_its_known_bias_and_say_so(monkeypatch) -> None:
    from reporter.grounding import grading

    _noisy_source(monkeypatch, {}, {"disc_height_index": -0.09})
    study, anatomy, measures = _setup()
    _set(measures, "L4-L5", disc_height_index=0.9)
    claim = findings(levels={"L4-L5": {"disc_narrowing": "none"}})
    seg_anatomy = anatomy.model_copy(update={"source": "builtin_segmenter"})
    v = check(claim, study, seg_anatomy, measurements=measures).verdict_for(
        "L4-L5", "disc_narrowing"
    )
    [ev] = v.evidence
    assert ev.value == 0.99 and "corrected" in ev.method
    assert measures["L4-L5"]["disc_height_index"].value == 0.9  # the caller's copy is untouched
    assert grading.bias_for("ground_truth") == {}


def test_shipped_noise_profile_only_widens_tolerances() -> None:
    """A noise profile may make the checker more lenient, never stricter than the base rules."""
    from reporter.grounding import grading

    base, seg = grading.rules(), grading.rules_for("builtin_segmenter")
    for name, rule in base.items():
        for key in ("tolerance", "tolerance_mm", "circumference_tolerance_deg", "margin"):
            if key in rule:
                assert seg[name][key] >= rule[key], (name, key)
    assert (
        seg["canal_stenosis"]["fallback"]["tolerance"]
        >= base["canal_stenosis"]["fallback"]["tolerance"]
    )
