"""Truth-vs-output comparison of one study, and the metrics.json key set."""

from __future__ import annotations

import numpy as np
import pytest
from eval_factory import example_record

from reporter.contracts import labels as L
from reporter.contracts.anatomy import Anatomy
from reporter.evaluation.scoring import (
    CONDITIONS,
    StudyRecord,
    compute_metrics,
    dice_scores,
    level_naming,
)


@pytest.fixture
def record() -> StudyRecord:
    return example_record()


def test_positive_statements_are_judged_against_truth_and_the_report(record):
    # raw positives: L3-L4 canal (no such level, flagged), L4-L5 canal (true),
    # L5-S1 canal severe (truth none, flagged), L5-S1 modic 1 (truth 0, not flagged).
    assert sorted(map(tuple, record.raw_positives)) == [
        (False, False),
        (True, False),
        (True, True),
        (True, True),
    ]
    # the report still asserts L4-L5 canal (true) and L5-S1 modic (hallucinated)
    assert sorted(record.rendered_positives) == [False, True]
    # true statements: the 14 fields of L4-L5 and 12 of L5-S1 (all but canal and modic_upper)
    assert len(record.true_flagged) == 14 + 12 and not any(record.true_flagged)


def test_condition_pairs_pool_sides_and_skip_missing_levels(record):
    assert record.pairs["canal_stenosis"] == [["moderate", "moderate"], ["none", "severe"]]
    assert len(record.pairs["foraminal_stenosis"]) == 4  # 2 levels x left/right
    assert len(record.pairs["modic"]) == 4  # 2 levels x upper/lower


def test_rsna_rows_cover_every_graded_cell_at_the_rsna_levels(record):
    # L4-L5 and L5-S1 x (canal, 2 foraminal, 2 subarticular)
    assert len(record.rsna_rows) == 10
    group, label, probs = record.rsna_rows[0]
    assert (group, label) == ("spinal", "moderate")
    # p = .8 on moderate, .2 spread over none/mild/severe -> normal_mild gets 2 * .2/3
    assert probs == pytest.approx([0.4 / 3, 0.8, 0.2 / 3])


def test_metrics_json_has_the_contract_keys(record):
    m = compute_metrics([record], peak_rss_mb=123.0)
    for key in (
        "n_studies",
        "schema_valid_rate",
        "rsna_weighted_log_loss",
        "level_naming_accuracy",
        "peak_rss_mb",
    ):
        assert key in m
    assert set(CONDITIONS) <= set(m["conditions"])
    for block in m["conditions"].values():
        assert {"qwk", "balanced_accuracy", "accuracy"} <= set(block)
    assert {"raw_rate", "after_grounding_rate", "flag_recall", "false_flag_rate"} <= set(
        m["hallucination"]
    )
    assert {"flag_recall", "false_flag_rate"} <= set(m["injected"])
    assert "ece" in m["calibration"]
    assert {"median", "p95"} <= set(m["latency_s_per_study"])
    assert set(m["by_site"]) == {"site-a"} and set(m["by_sex"]) == {"F"}
    assert set(m["by_age"]) == {"40-59"}
    assert set(CONDITIONS) <= set(m["by_site"]["site-a"]["conditions"])
    assert m["hallucination"]["raw_rate"] == pytest.approx(3 / 4)
    assert m["hallucination"]["after_grounding_rate"] == pytest.approx(1 / 2)
    assert m["hallucination"]["flag_recall"] == pytest.approx(2 / 3)
    assert m["hallucination"]["false_flag_rate"] == 0.0


def test_failed_studies_count_but_do_not_score():
    m = compute_metrics([StudyRecord(case_id="x", error="boom")], peak_rss_mb=None)
    assert m["n_studies"] == 1 and m["n_failed"] == 1 and m["schema_valid_rate"] == 0.0
    assert m["conditions"]["canal_stenosis"]["qwk"] is None


def _anatomy(label_map: np.ndarray, shift: float = 0.0) -> Anatomy:
    aff = np.eye(4)
    aff[0, 3] = shift
    return Anatomy(
        reference_series_uid="1.2",
        labels=label_map,
        affine=aff,
        source="ground_truth",
    )


def test_level_naming_counts_discs_named_as_in_truth_across_grids():
    gt = np.zeros((4, 10, 10), dtype=np.int16)
    gt[:, 2:4, :] = L.disc_label("L4-L5")
    gt[:, 6:8, :] = L.disc_label("L5-S1")
    assert level_naming(_anatomy(gt), _anatomy(gt.copy())) == [2, 2]
    wrong = gt.copy()
    wrong[wrong == L.disc_label("L4-L5")] = L.disc_label("L3-L4")
    assert level_naming(_anatomy(gt), _anatomy(wrong)) == [1, 2]
    # the same map on a grid shifted by one slice: still found through patient coordinates
    shifted = np.zeros((5, 10, 10), dtype=np.int16)
    shifted[1:] = gt
    assert level_naming(_anatomy(gt), _anatomy(shifted, shift=-1.0)) == [2, 2]
    assert level_naming(_anatomy(gt), None) == [0, 2]


def test_dice_per_structure_matches_hand_computation():
    gt = np.zeros((2, 10, 10), dtype=np.int16)
    gt[:, 0:4, :] = L.vertebra_label("L5")  # 80 voxels
    gt[:, 5:7, :] = L.disc_label("L5-S1")  # 40 voxels
    pred = gt.copy()
    pred[:, 0, :] = 0  # vertebra: 60 of 80 found -> 2*60/(80+60)
    pred[pred == L.disc_label("L5-S1")] = L.disc_label("L4-L5")  # misnamed disc -> 0
    out = dice_scores(_anatomy(gt), _anatomy(pred))
    assert out["vertebra"] == [pytest.approx(120 / 140)]
    assert out["disc"] == [0.0] and out["canal"] == []
    shifted = np.zeros((3, 10, 10), dtype=np.int16)
    shifted[1:] = gt
    assert dice_scores(_anatomy(gt), _anatomy(shifted, shift=-1.0))["vertebra"] == [1.0]


def _hallucination(truth, raw, rendered, verdicts) -> dict:
    """The hallucination block of metrics.json for one scored study."""
    from reporter.evaluation.scoring import compare_findings

    rec = StudyRecord(case_id="h", site="site-a", sex="F", age=50)
    compare_findings(rec, truth, raw, rendered, verdicts)
    rec.schema_valid = True
    rec.latency_s = 1.0
    return compute_metrics([rec], peak_rss_mb=None)["hallucination"]


def test_after_grounding_counts_what_the_report_asserts_and_keeps_the_older_policy_rate():
    """The example's L5-S1 Modic 1 is hallucinated and only unverifiable: a report that does not
    assert unverifiable positives drops it; the contradicted-only rate still counts it."""
    from eval_factory import findings, level, verdict

    truth = findings(level("L4-L5", canal_stenosis="moderate"), level("L5-S1"))
    raw = findings(
        level("L4-L5", 0.8, canal_stenosis="moderate"),
        level("L5-S1", 0.6, canal_stenosis="severe", modic_upper=1),
    )
    gone = {"not_assessable": "withheld"}
    rendered = findings(
        level("L4-L5", 0.8, canal_stenosis="moderate"),
        level("L5-S1", 0.6, canal_stenosis=gone, modic_upper=gone),
    )
    verdicts = [
        verdict("L4-L5", "canal_stenosis", "supported"),
        verdict("L5-S1", "canal_stenosis", "contradicted"),
        verdict("L5-S1", "modic_upper", "unverifiable"),
    ]
    hall = _hallucination(truth, raw, rendered, verdicts)
    assert hall["raw_rate"] == pytest.approx(2 / 3)
    assert hall["after_grounding_rate"] == 0.0  # only the true L4-L5 canal is asserted
    assert hall["n_positive_after_grounding"] == 1
    assert hall["after_grounding_rate_contradicted_only"] == pytest.approx(1 / 2)
    assert hall["n_positive_after_grounding_contradicted_only"] == 2


def test_true_positive_retention_is_reported_beside_the_rate():
    """Truth: L4-L5 moderate canal and Lee 1 left foramen. The model says both (true) plus a
    severe canal at L5-S1 (truth none, contradicted). The foramen is unverifiable, so the report
    does not assert it: 1 of 2 true positives kept; a contradicted-only report keeps 2 of 2."""
    from eval_factory import findings, level, verdict

    truth = findings(
        level("L4-L5", canal_stenosis="moderate", foraminal_stenosis_left=1), level("L5-S1")
    )
    raw = findings(
        level("L4-L5", 0.8, canal_stenosis="moderate", foraminal_stenosis_left=1),
        level("L5-S1", 0.6, canal_stenosis="severe"),
    )
    gone = {"not_assessable": "withheld"}
    rendered = findings(
        level("L4-L5", 0.8, canal_stenosis="moderate", foraminal_stenosis_left=gone),
        level("L5-S1", 0.6, canal_stenosis=gone),
    )
    verdicts = [
        verdict("L4-L5", "canal_stenosis", "supported"),
        verdict("L4-L5", "foraminal_stenosis_left", "unverifiable"),
        verdict("L5-S1", "canal_stenosis", "contradicted"),
    ]
    hall = _hallucination(truth, raw, rendered, verdicts)
    assert hall["n_true_positive_raw"] == 2
    assert hall["n_true_positive_after_grounding"] == 1
    assert hall["true_positive_retention"] == pytest.approx(1 / 2)
    assert hall["n_true_positive_after_grounding_contradicted_only"] == 2
    assert hall["true_positive_retention_contradicted_only"] == pytest.approx(1.0)
    assert hall["after_grounding_rate"] == 0.0
    assert hall["after_grounding_rate_contradicted_only"] == 0.0
