"""Every metric against an example computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reporter.evaluation.metrics import (
    ECE_BINS,
    RsnaRow,
    StatementOutcome,
    accuracy,
    balanced_accuracy,
    condition_metrics,
    confusion_matrix,
    expected_calibration_error,
    false_flag_rate,
    flag_recall,
    hallucination_rates,
    nan_to_none,
    quadratic_weighted_kappa,
    reliability_bins,
    roc_auc,
    rsna_weighted_log_loss,
)

Y_TRUE = [0, 0, 1, 1, 2]
Y_PRED = [0, 1, 1, 2, 2]


def test_confusion_matrix_rows_are_truth_columns_prediction():
    cm = confusion_matrix(Y_TRUE, Y_PRED, labels=[0, 1, 2])
    assert cm.tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_quadratic_weighted_kappa_matches_hand_computation():
    # O = [[1,1,0],[0,1,1],[0,0,1]], marginals rows (2,2,1), cols (1,2,2), n = 5,
    # E = outer/5, w_ij = (i-j)^2/4.  sum(w*O) = 0.25 + 0.25 = 0.5;
    # sum(w*E) = .8*.25 + .8*1 + .4*.25 + .8*.25 + .2*1 + .4*.25 = 1.6;  kappa = 1 - .5/1.6.
    assert quadratic_weighted_kappa(Y_TRUE, Y_PRED, [0, 1, 2]) == pytest.approx(0.6875)


def test_qwk_is_one_for_perfect_agreement_and_negative_for_reversal():
    assert quadratic_weighted_kappa([1, 2, 3], [1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    # Reversed: O = anti-diagonal, sum(w*O) = 1 + 0 + 1 = 2; E = 1/3 everywhere and the weights
    # sum to 0+.25+1 + .25+0+.25 + 1+.25+0 = 3, so sum(w*E) = 1 -> kappa = 1 - 2/1 = -1.
    assert quadratic_weighted_kappa([1, 2, 3], [3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)


def test_qwk_uses_the_ordinal_label_order_not_alphabetical():
    labels = ["none", "mild", "moderate", "severe"]
    near = quadratic_weighted_kappa(["none", "severe"], ["mild", "severe"], labels)
    far = quadratic_weighted_kappa(["none", "severe"], ["severe", "severe"], labels)
    assert near > far


def test_qwk_of_a_single_shared_class_is_one():
    assert quadratic_weighted_kappa(["none", "none"], ["none", "none"], ["none", "mild"]) == 1.0


def test_balanced_accuracy_and_accuracy_match_hand_computation():
    # recalls: class 0 1/2, class 1 1/2, class 2 1/1 -> mean 2/3; accuracy 3/5.
    assert balanced_accuracy(Y_TRUE, Y_PRED, [0, 1, 2]) == pytest.approx(2 / 3)
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(0.6)


def test_balanced_accuracy_ignores_classes_absent_from_truth():
    # class 2 never occurs in truth: recalls 1/1 (class 0) and 0/1 (class 1) -> 0.5.
    assert balanced_accuracy([0, 1], [0, 2], [0, 1, 2]) == pytest.approx(0.5)


def test_metrics_of_nothing_are_nan_not_errors():
    assert math.isnan(accuracy([], []))
    assert math.isnan(quadratic_weighted_kappa([], [], [0, 1]))
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))
    assert math.isnan(expected_calibration_error([], []))


def test_unknown_value_is_rejected_with_its_name():
    with pytest.raises(ValueError, match="not in argument 'labels'"):
        quadratic_weighted_kappa([0, 7], [0, 1], [0, 1])


def test_roc_auc_counts_ties_as_half():
    # pairs (pos, neg): (.9,.4)=1 (.9,.1)=1 (.4,.4)=.5 (.4,.1)=1 -> 3.5/4.
    assert roc_auc([1, 1, 0, 0], [0.9, 0.4, 0.4, 0.1]) == pytest.approx(0.875)


def test_ece_with_equal_width_bins_matches_hand_computation():
    assert ECE_BINS == 10
    # bins (10): .95 correct -> |1-.95| = .05; .85 wrong -> .85; .15 wrong -> .15;
    # .55 correct -> .45; each bin holds 1 of 4 -> (.05+.85+.15+.45)/4 = .375.
    ece = expected_calibration_error([0.95, 0.85, 0.15, 0.55], [True, False, False, True])
    assert ece == pytest.approx(0.375)


def test_ece_pools_a_bin_before_taking_the_gap():
    # both in bin [.7,.8): mean conf .75, accuracy .5 -> |.5-.75| = .25.
    assert expected_calibration_error([0.7, 0.8 - 1e-9], [True, False]) == pytest.approx(0.25)


def test_confidence_of_one_falls_in_the_last_bin():
    bins = reliability_bins([1.0, 0.0], [True, False], n_bins=4)
    assert [b.count for b in bins] == [1, 0, 0, 1]


def test_rsna_weighted_log_loss_matches_hand_computation():
    rows = [
        RsnaRow("A", "spinal", "severe", (0.2, 0.3, 0.5)),
        RsnaRow("A", "spinal", "normal_mild", (0.8, 0.1, 0.1)),
        RsnaRow("B", "spinal", "moderate", (0.1, 0.6, 0.3)),
        RsnaRow("A", "foraminal", "moderate", (0.25, 0.5, 0.25)),
        # unnormalised (2, 1, 1) is scored as (.5, .25, .25)
        RsnaRow("A", "subarticular", "normal_mild", (2.0, 1.0, 1.0)),
    ]
    out = rsna_weighted_log_loss(rows)
    # spinal: weights 4, 1, 2 on p(true) .5, .8, .6
    spinal = (4 * -math.log(0.5) + 1 * -math.log(0.8) + 2 * -math.log(0.6)) / 7
    assert spinal == pytest.approx(0.573912, abs=1e-6)
    assert out["spinal"] == pytest.approx(spinal)
    assert out["foraminal"] == pytest.approx(-math.log(0.5))
    assert out["subarticular"] == pytest.approx(-math.log(0.5))
    # any severe spinal: A true, p = max(.5, .1) = .5, w = max(4, 1) = 4;
    # B false, p = .3 -> p(no) = .7, w = 2.
    any_severe = (4 * -math.log(0.5) + 2 * -math.log(0.7)) / 6
    assert any_severe == pytest.approx(0.580990, abs=1e-6)
    assert out["any_severe_spinal"] == pytest.approx(any_severe)
    expected = (spinal + 2 * -math.log(0.5) + any_severe) / 4
    assert expected == pytest.approx(0.635299, abs=1e-6)
    assert out["score"] == pytest.approx(expected)


def test_rsna_loss_skips_absent_conditions_and_clips_zero_probabilities():
    out = rsna_weighted_log_loss([RsnaRow("A", "foraminal", "severe", (1.0, 0.0, 0.0))])
    assert set(out) == {"foraminal", "score"}
    assert out["score"] == pytest.approx(-math.log(1e-15))


def test_rsna_loss_rejects_an_unknown_label():
    with pytest.raises(ValueError, match="label"):
        rsna_weighted_log_loss([RsnaRow("A", "spinal", "mild", (1, 0, 0))])


def test_hallucination_rates_follow_the_architecture_definitions():
    raw = [
        StatementOutcome(hallucinated=True, flagged=True),
        StatementOutcome(hallucinated=True, flagged=False),
        StatementOutcome(hallucinated=False, flagged=False),
        StatementOutcome(hallucinated=False, flagged=True),
        StatementOutcome(hallucinated=False, flagged=False),
    ]
    # The report still asserts 3 positives (the two unflagged true ones and the missed
    # hallucination); 4 true statements overall (3 true positives + 1 true normal), 1 flagged.
    out = hallucination_rates(raw, [True, False, False], [False, True, False, False])
    assert out["raw_rate"] == pytest.approx(2 / 5)
    assert out["after_grounding_rate"] == pytest.approx(1 / 3)
    assert out["flag_recall"] == pytest.approx(1 / 2)
    assert out["false_flag_rate"] == pytest.approx(1 / 4)
    assert out["n_positive_after_grounding"] == 3


def test_planted_error_recall_and_false_flag_rate():
    assert flag_recall([True, True, False, True]) == pytest.approx(0.75)
    assert false_flag_rate([False] * 9 + [True]) == pytest.approx(0.1)
    assert math.isnan(flag_recall([]))


def test_condition_metrics_block_has_the_contract_keys():
    block = condition_metrics(Y_TRUE, Y_PRED, [0, 1, 2])
    assert {"qwk", "balanced_accuracy", "accuracy"} <= set(block)


def test_nan_becomes_null_for_json():
    assert nan_to_none({"a": math.nan, "b": [np.float64(1.5), np.int64(2)]}) == {
        "a": None,
        "b": [1.5, 2],
    }


def test_bootstrap_by_patient_brackets_the_estimate_and_widens_with_fewer_patients():
    from reporter.evaluation.metrics import balanced_accuracy, bootstrap_by_group

    rng = np.random.default_rng(3)
    truth = list(rng.integers(1, 6, size=400))
    pred = [t if rng.random() < 0.6 else int(rng.integers(1, 6)) for t in truth]
    many = [i // 4 for i in range(400)]  # 100 patients of 4 discs
    few = [i // 40 for i in range(400)]  # 10 patients of 40 discs
    point = balanced_accuracy(truth, pred)
    lo, hi = bootstrap_by_group(many, truth, pred, balanced_accuracy)
    assert lo < point < hi
    lo2, hi2 = bootstrap_by_group(few, truth, pred, balanced_accuracy)
    assert hi2 - lo2 > hi - lo
    assert all(
        math.isnan(v) for v in bootstrap_by_group([0] * 4, [1] * 4, [1] * 4, balanced_accuracy)
    )


def test_unassessed_truth_counts_as_wrong_in_balanced_accuracy_all():
    from reporter.evaluation.scoring import StudyRecord, condition_block

    rec = StudyRecord(case_id="a")
    rec.pairs["pfirrmann"] = [[2, 2], [3, 3]]
    rec.unassessed["pfirrmann"] = [2, 3]
    block = condition_block([rec], "pfirrmann")
    assert block["balanced_accuracy"] == 1.0
    assert block["balanced_accuracy_all"] == pytest.approx(0.5)
    assert block["n_unassessed"] == 2
