"""Evidence-weighted verdicts: error models (file, residuals), likelihoods from measurements,
the posterior and the posterior report policy, and the scripts that derive their data."""

from __future__ import annotations

import itertools
import json
from importlib import resources
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from reporter.contracts.findings import LevelFindings
from reporter.contracts.verdicts import Evidence, Measurement, Verdict, WeighedValue
from reporter.grounding import error_model, evidence, policy
from reporter.grounding.error_model import ErrorModelFile, Residual, family, read_role
from reporter.render.statements import build_statements
from reporter.training import error_models as fit
from reporter.training import evidence_policy as tune
from tests.grounding_factory import findings


def _doc(name: str) -> dict[str, Any]:
    return json.loads((resources.files("reporter.grounding") / name).read_text())


def test_error_model_file_loads_and_rejects_unknown_keys() -> None:
    doc = error_model.document()
    assert "builtin_segmenter" in doc.sources
    assert doc.sources["builtin_segmenter"]["canal_ap_mm"].truth_scale == "canal_ap_from_area"
    raw = _doc("error_models.json")
    raw["sources"]["builtin_segmenter"]["canal_ap_mm"]["surprise"] = 1
    with pytest.raises(ValidationError):
        ErrorModelFile.model_validate(raw)


def test_policy_file_loads_and_names_a_known_default() -> None:
    t = policy.thresholds()
    assert t.default_policy in policy.POLICIES
    assert 0.5 < t.probability_clip < 1
    # Derived under the error models shipped beside it.
    assert t.error_models_sha256 == error_model.sha256()
    # Every condition has thresholds for both evidence states; the default follows held-out.
    assert set(t.conditions) == set(policy.CONDITIONS)
    assert (t.default_policy == "posterior") == t.targets_met_on_heldout


def test_conditions_group_sides_and_endplates() -> None:
    assert policy.condition("foraminal_stenosis_left") == "foraminal_stenosis"
    assert policy.condition("subarticular_stenosis_right") == "subarticular_stenosis"
    assert policy.condition("modic_upper") == "modic"
    assert policy.condition("endplate_defect_lower") == "endplate_defect"
    assert policy.condition("pfirrmann") == "pfirrmann"
    assert len(policy.CONDITIONS) == 10


def _bad(edit: Any) -> None:
    raw = _doc("evidence_policy.json")
    edit(raw)
    with pytest.raises(ValidationError):
        policy.PolicyFile.model_validate(raw)


def test_policy_loader_rejects_bad_files() -> None:
    policy.PolicyFile.model_validate(_doc("evidence_policy.json"))  # the shipped one is fine
    _bad(lambda d: d["conditions"].pop("modic"))  # a condition missing
    _bad(lambda d: d["conditions"].__setitem__("gout", d["conditions"]["modic"]))  # unknown
    _bad(lambda d: d["conditions"]["modic"]["measured"].__setitem__("assert_at", 1.5))
    _bad(lambda d: d["conditions"]["modic"]["measured"].__setitem__("assert_at", "sometimes"))
    _bad(lambda d: d["conditions"]["modic"]["measured"].__setitem__("contradict_below", -0.1))
    _bad(lambda d: d["conditions"]["modic"]["measured"].pop("contradict_below"))
    _bad(lambda d: d["conditions"]["modic"]["unverifiable"].__setitem__("contradict_below", 0.1))
    _bad(lambda d: d["conditions"]["modic"].pop("unverifiable"))
    _bad(lambda d: d.__setitem__("assert_at", 0.9))  # the old global threshold
    _bad(lambda d: d.__setitem__("version", "1"))
    _bad(lambda d: d["validation"]["heldout"].pop("posterior"))

    def claim_success(d: dict[str, Any]) -> None:
        d["default_policy"] = "posterior"
        d["targets_met_on_heldout"] = False

    _bad(claim_success)


def test_families_and_roles() -> None:
    assert family("foraminal_fat_cranial_left") == "foraminal_fat"
    assert family("modic_t1_ratio_upper") == "modic_t1_ratio"
    assert family("lateral_recess_depth_mm_right") == "lateral_recess_depth_mm"
    assert family("canal_ap_mm") == "canal_ap_mm"
    assert read_role("modic_t1_ratio_lower") == "sag_t1"
    assert read_role("lateral_recess_depth_mm_left", "axial") == "ax_t2"
    assert read_role("canal_ap_mm") == "sag_t2"


def test_residual_interval_and_grade_probabilities() -> None:
    r = Residual("test", bias=0.5, scale=1.0, df=5.0)
    lo, hi = r.truth_interval(10.0, 0.9)
    assert lo < 9.5 < hi and hi - 9.5 == pytest.approx(9.5 - lo)
    cuts = [None, 7.0, 10.0, 12.0, None]
    total = sum(r.prob_truth_in(9.0, a, b) for a, b in itertools.pairwise(cuts))
    assert total == pytest.approx(1.0)


def _level(canal: str, p: float) -> LevelFindings:
    lf = findings().level("L4-L5")
    assert lf is not None
    data = lf.model_dump(mode="json", exclude_none=True)
    data["canal_stenosis"] = {"value": canal, "probability": p}
    return LevelFindings.model_validate(data)


def _ap(value: float) -> dict[str, Measurement]:
    return {"canal_ap_mm": Measurement(name="canal_ap_mm", value=value, unit="mm")}


WHERE = evidence.Weighing(source="builtin_segmenter", thickness={"sag_t2": 4.0})


def test_narrow_canal_supports_severe_and_argues_against_none() -> None:
    lik, used = evidence.likelihood("canal_stenosis", _level("severe", 0.6), _ap(4.0), WHERE)  # type: ignore[misc]
    assert max(lik, key=lik.get) == "severe"  # type: ignore[arg-type]
    assert used and used[0].name == "canal_ap_mm" and used[0].half_width_90 > 0
    severe = evidence.weigh(
        "canal_stenosis", "severe", _level("severe", 0.6), 0.6, _ap(4.0), WHERE, clip=0.999
    )
    none = evidence.weigh(
        "canal_stenosis", "none", _level("none", 0.6), 0.6, _ap(4.0), WHERE, clip=0.999
    )
    assert severe is not None and none is not None
    assert severe.likelihood_ratio > 1 and severe.posterior > 0.6
    assert none.likelihood_ratio < 1 and none.posterior < 0.6
    assert severe.posterior_abnormal > none.posterior_abnormal or none.posterior_abnormal > 0.4


def test_no_measurement_no_evidence_and_prior_only_is_the_clipped_prior() -> None:
    assert (
        evidence.weigh("canal_stenosis", "mild", _level("mild", 0.9), 0.9, {}, WHERE, 0.99) is None
    )
    post, abn = evidence.prior_only("canal_stenosis", "mild", 1.0, clip=0.99)
    assert post == pytest.approx(0.99)
    assert abn == pytest.approx(0.99 + 2 * 0.01 / 3)
    # A field the checker does not measure has no likelihood at all.
    assert evidence.likelihood("endplate_defect_upper", None, _ap(9.0), WHERE) is None


def test_likelihood_is_deterministic_and_smoothed() -> None:
    ms = {
        f"foraminal_fat_{s}_left": Measurement(name=f"foraminal_fat_{s}_left", value=0.05)
        for s in evidence.SECTORS
    }
    ms["root_area_ratio_left"] = Measurement(name="root_area_ratio_left", value=1.0)
    a = evidence.likelihood("foraminal_stenosis_left", None, ms, WHERE)
    b = evidence.likelihood("foraminal_stenosis_left", None, ms, WHERE)
    assert a is not None and b is not None and a[0] == b[0]
    assert all(v > 0 for v in a[0].values())
    roomy = {k: m.model_copy(update={"value": 0.9}) for k, m in ms.items()}
    roomy["root_area_ratio_left"] = ms["root_area_ratio_left"]
    c = evidence.likelihood("foraminal_stenosis_left", None, roomy, WHERE)
    assert c is not None and c[0][0] > a[0][0] and c[0][2] < a[0][2]


def _verdict(kind: str, weight: Evidence | None, rule: str = "canal_stenosis") -> Verdict:
    return Verdict(
        level="L4-L5",
        field="canal_stenosis",
        claimed="moderate",
        verdict=kind,  # type: ignore[arg-type]
        reason="r",
        rule=rule,
        weight=weight,
    )


def _weight(post: float, abn: float, measured: bool = True) -> Evidence:
    used = (
        [WeighedValue(name="canal_ap_mm", value=8.1, unit="mm", half_width_90=1.5, error_model="m")]
        if measured
        else []
    )
    return Evidence(
        measured=used, prior=0.8, likelihood_ratio=3.0, posterior=post, posterior_abnormal=abn
    )


def test_posterior_kind_and_assertion() -> None:
    assert policy.posterior_kind(_verdict("contradicted", None, "level_exists"), None, 0.1) == (
        "contradicted"
    )
    assert policy.posterior_kind(_verdict("supported", None), None, 0.1) == "unverifiable"
    assert (
        policy.posterior_kind(_verdict("supported", _weight(0.05, 0.5)), _weight(0.05, 0.5), 0.1)
        == "contradicted"
    )
    assert (
        policy.posterior_kind(_verdict("contradicted", _weight(0.5, 0.9)), _weight(0.5, 0.9), 0.1)
        == "supported"
    )
    assert policy.asserted("canal_stenosis", "none", "supported", None, 0.9)
    assert not policy.asserted("canal_stenosis", "mild", "supported", _weight(0.5, 0.8), 0.9)
    assert policy.asserted("canal_stenosis", "mild", "supported", _weight(0.5, 0.95), 0.9)
    assert not policy.asserted("canal_stenosis", "mild", "contradicted", _weight(0.5, 0.95), 0.9)
    # 'never' (None): a positive claim is not asserted whatever its posterior; normal ones are.
    assert not policy.asserted("canal_stenosis", "mild", "supported", _weight(1.0, 1.0), None)
    assert policy.asserted("canal_stenosis", "none", "supported", _weight(1.0, 0.0), None)
    with pytest.raises(Exception, match="unknown report policy"):
        policy.check_policy("lenient")


def test_statements_under_the_posterior_policy() -> None:
    raw = findings(levels={"L4-L5": {"canal_stenosis": {"value": "moderate", "probability": 0.8}}})
    sure = [_verdict("supported", _weight(0.7, 0.97))]
    unsure = [_verdict("supported", _weight(0.4, 0.6))]
    s_sure = next(
        s
        for s in build_statements(raw, sure, None, False, assert_at=0.9)
        if s.level == "L4-L5" and s.field == "canal_stenosis"
    )
    s_unsure = next(
        s
        for s in build_statements(raw, unsure, None, False, assert_at=0.9)
        if s.level == "L4-L5" and s.field == "canal_stenosis"
    )
    assert s_sure.status == "reported" and s_unsure.status == "unconfirmed"
    assert "canal ap mm 8.1 mm (+-1.5): supports moderate central canal stenosis" in (
        s_sure.evidence_line
    )
    assert s_sure.as_dict()["posterior"] == 0.7 and "evidence_line" in s_sure.as_dict()


def test_apply_posterior_keeps_the_band_verdict_and_weighs_every_level_statement() -> None:
    raw = findings(levels={"L4-L5": {"canal_stenosis": {"value": "moderate", "probability": 0.8}}})
    t = policy.thresholds()
    low = _weight(0.0, 0.0)
    out = policy.apply_posterior(raw, [_verdict("supported", low), _verdict("unverifiable", None)])
    expected = "contradicted" if t.contradict_below("canal_stenosis") > 0 else "supported"
    assert out[0].verdict == expected and out[0].band_verdict == "supported"
    assert out[1].verdict == "unverifiable" and out[1].weight is not None
    assert out[1].weight.likelihood_ratio == 1.0 and out[1].weight.measured == []


def _with_cell(monkeypatch: pytest.MonkeyPatch, cond: str, state: str, **cell: Any) -> None:
    """Patch one cell of the thresholds in force (earlier patches kept)."""
    raw = policy.thresholds().model_dump(mode="json")
    raw["conditions"][cond][state].update(cell)
    patched = policy.PolicyFile.model_validate(raw)
    monkeypatch.setattr(policy, "thresholds", lambda: patched)


def test_a_claim_whose_threshold_is_never_stays_unconfirmed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = findings(levels={"L4-L5": {"canal_stenosis": {"value": "moderate", "probability": 1.0}}})
    sure = [_verdict("supported", _weight(1.0, 1.0))]  # measured, as sure as it gets

    def status() -> str:
        out = build_statements(raw, sure, None, False, assert_at=policy.assert_threshold)
        s = next(s for s in out if s.level == "L4-L5" and s.field == "canal_stenosis")
        return s.status

    _with_cell(monkeypatch, "canal_stenosis", "measured", assert_at=0.5)
    assert status() == "reported"
    _with_cell(monkeypatch, "canal_stenosis", "measured", assert_at="never")
    assert status() == "unconfirmed"
    out = build_statements(raw, sure, None, False, assert_at=policy.assert_threshold)
    s = next(s for s in out if s.level == "L4-L5" and s.field == "canal_stenosis")
    assert "never asserted" in s.reason
    # The state matters: the unverifiable cell's threshold does not apply to a measured claim.
    _with_cell(monkeypatch, "canal_stenosis", "measured", assert_at=0.5)
    _with_cell(monkeypatch, "canal_stenosis", "unverifiable", assert_at="never")
    assert status() == "reported"


def test_thresholds_are_per_condition_and_state(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_cell(monkeypatch, "subarticular_stenosis", "unverifiable", assert_at="never")
    t = policy.thresholds()
    assert t.assert_at("subarticular_stenosis_left", measured=False) is None
    assert t.assert_at("subarticular_stenosis_right", measured=False) is None
    _with_cell(monkeypatch, "modic", "measured", assert_at=0.93, contradict_below=0.25)
    t = policy.thresholds()
    assert t.assert_at("modic_lower", measured=True) == 0.93
    assert t.contradict_below("modic_upper") == 0.25
    assert policy.assert_threshold("modic_upper", _weight(0.9, 0.9)) == 0.93
    assert policy.assert_threshold("modic_upper", _weight(0.9, 0.9, measured=False)) == (
        t.assert_at("modic_upper", measured=False)
    )


# --- the scripts that derive the data -------------------------------------------------------------
def test_canal_ap_mapping_puts_area_cuts_on_ap_cuts() -> None:
    assert fit.canal_ap_from_area(100.0) == pytest.approx(12.0)
    assert fit.canal_ap_from_area(75.0) == pytest.approx(10.0)
    assert fit.canal_ap_from_area(50.0) == pytest.approx(7.0)
    assert fit.canal_ap_from_area(40.0) < 7.0


def test_fit_t_recovers_location_and_scale() -> None:
    rng = np.random.default_rng(0)
    r = 0.3 + 0.5 * rng.standard_t(5, size=4000)
    bias, scale, df = fit.fit_t(r, floor=0.01)
    assert bias == pytest.approx(0.3, abs=0.05)
    assert scale == pytest.approx(0.5, rel=0.15)
    assert df in fit.DF_GRID
    assert fit.fit_t(np.zeros(50), floor=0.2) == (0.0, 0.2, fit.DF_GRID[-1])


def _item(
    positive: bool,
    hallucinated: bool | None,
    correct: bool | None,
    p: float,
    lik: dict[Any, float] | None,
) -> tune.Item:
    claim = "mild" if positive else "none"
    return tune.Item(
        "canal_stenosis", claim, p, lik, False, "supported", positive, hallucinated, correct
    )


def _cell_items(field: str, n_true: int, n_false: int, p_true: float, p_false: float) -> list:
    abnormal = {"subarticular_stenosis_left": "moderate", "pfirrmann": 4}[field]
    normal = {"subarticular_stenosis_left": "none", "pfirrmann": 2}[field]
    out = [
        tune.Item(field, abnormal, p_true, None, False, "unverifiable", True, False, True)
        for _ in range(n_true)
    ]
    out += [
        tune.Item(field, abnormal, p_false, None, False, "unverifiable", True, True, False)
        for _ in range(n_false)
    ]
    out += [
        tune.Item(field, normal, 0.95, None, False, "unverifiable", False, None, True)
        for _ in range(n_true)
    ]
    return out


def test_per_condition_choice_keeps_inseparable_cells_never() -> None:
    # Pfirrmann claims separate (true at 0.95, false at 0.6); subarticular ones do not (0.9 both,
    # 12% false): the budget buys Pfirrmann and leaves subarticular claims unconfirmed.
    items = _cell_items("pfirrmann", 400, 20, 0.95, 0.6)
    items += _cell_items("subarticular_stenosis_left", 88, 12, 0.9, 0.9)
    _, conditions, curve, fitting = tune.choose(items)
    assert conditions["subarticular_stenosis"]["unverifiable"]["assert_at"] == tune.NEVER
    a = conditions["pfirrmann"]["unverifiable"]["assert_at"]
    assert a != tune.NEVER and 0.6 < a < 0.99  # between the false and the true claims
    assert fitting["hallucinated_after"] <= tune.FIT_HALLUCINATED
    assert fitting["true_positive_retention"] == pytest.approx(400 / 488)
    assert curve  # the allocation over the budget
    for cond in policy.CONDITIONS:
        assert set(conditions[cond]) == {"measured", "unverifiable"}
        assert "contradict_below" in conditions[cond]["measured"]


def test_contradiction_maximises_flag_recall_within_false_flags() -> None:
    # Measured canal claims: hallucinated ones have a low posterior of the claim; a threshold
    # of 0 (never contradict) must not win a tie against flagging them.
    for_mild = {"none": 0.05, "mild": 0.8, "moderate": 0.1, "severe": 0.05}
    for_none = {"none": 0.9, "mild": 0.05, "moderate": 0.03, "severe": 0.02}
    items = [_item(True, False, True, 0.9, for_mild) for _ in range(300)]
    items += [_item(True, True, False, 0.9, for_none) for _ in range(30)]
    items += [_item(False, None, True, 0.95, for_none) for _ in range(300)]
    _, conditions, _, best = tune.choose(items)
    assert conditions["canal_stenosis"]["measured"]["contradict_below"] > 0
    assert best["flag_recall"] == pytest.approx(1.0)
    assert best["false_flag_rate"] <= tune.FIT_FALSE_FLAGS
    assert best["hallucinated_after"] <= tune.FIT_HALLUCINATED
    assert best["true_positive_retention"] == pytest.approx(1.0)


def test_the_pipeline_applies_per_condition_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    from reporter.pipeline import assemble_report
    from reporter.render.provenance import now_iso
    from tests.report_factory import make_findings, make_study, make_verdicts

    study, anatomy = make_study()
    raw = make_findings({"L1-L2": {"canal_stenosis": "severe"}})
    verdicts = make_verdicts(raw, study, anatomy, set())
    measurements = [m for v in verdicts for m in v.evidence]

    def canal_status() -> str:
        _, statements = assemble_report(
            study, anatomy, raw, verdicts, measurements, {}, None, now_iso(), policy="posterior"
        )
        s = next(s for s in statements if s.level == "L1-L2" and s.field == "canal_stenosis")
        return s.status

    for state in ("measured", "unverifiable"):
        _with_cell(monkeypatch, "canal_stenosis", state, assert_at=0.0)
    assert canal_status() == "reported"
    for state in ("measured", "unverifiable"):
        _with_cell(monkeypatch, "canal_stenosis", state, assert_at="never")
    assert canal_status() == "unconfirmed"
