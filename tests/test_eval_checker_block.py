"""metrics.json "checker_by_condition": the checker against the truth per condition and policy
(reporter.evaluation.checker_block)."""

from __future__ import annotations

import math

import pytest
from eval_factory import example_record, findings, level, verdict

from reporter.contracts.verdicts import Evidence, WeighedValue
from reporter.evaluation import checker_block
from reporter.evaluation.scoring import StudyRecord, compare_findings, compute_metrics


def test_every_graded_statement_becomes_one_row() -> None:
    rec = example_record()
    # L4-L5 and L5-S1 are graded: 14 fields each; L3-L4 (no such level) is not in the block.
    assert len(rec.checked_statements) == 2 * 14
    conditions = {r[0] for r in rec.checked_statements}
    assert {"canal_stenosis", "modic", "foraminal_stenosis", "endplate_defect"} <= conditions


def test_the_block_counts_flags_verifiability_and_assertion_per_condition() -> None:
    m = compute_metrics([example_record()], peak_rss_mb=None)
    canal = m["checker_by_condition"]["canal_stenosis"]
    # L4-L5 moderate (true, supported) and L5-S1 severe (truth none, contradicted).
    assert canal["n_statements"] == 2 and canal["n_hallucinated"] == 1
    assert canal["verifiable_share"] == 1.0
    assert canal["measured_share"] == 0.0  # the hand-made verdicts weigh nothing
    bands = canal["policies"]["bands"]
    assert bands["false_flag_rate"] == 0.0 and bands["flag_recall"] == 1.0
    assert bands["n_asserted_positive"] == 1 and bands["retention"] == 1.0
    assert bands["hallucinated_asserted"] == 0.0
    assert canal["policies"]["contradicted-only"]["n_asserted_positive"] == 1
    modic = m["checker_by_condition"]["modic"]
    # L5-S1 Modic 1 where the truth is 0: hallucinated, unverifiable, asserted only by the
    # contradicted-only policy.
    assert modic["policies"]["bands"]["flag_recall"] == 0.0
    assert modic["policies"]["contradicted-only"]["hallucinated_asserted"] == 1.0
    assert modic["policies"]["bands"]["n_asserted_positive"] == 0
    assert modic["verifiable_share"] == 0.0
    # L5-S1's upper endplate was judged unverifiable (no reason given); the other three
    # endplates have no verdict at all.
    assert modic["unverified_because"] == {"unknown": 1, "no_verdict": 3}
    pooled = m["checker_by_condition"]["all"]
    assert pooled["n_statements"] == 28
    assert set(pooled["policies"]) == {"bands", "contradicted-only", "posterior"}


def test_a_posterior_run_keeps_band_flags_apart_from_its_own() -> None:
    truth = findings(level("L4-L5", disc_narrowing="none"))
    raw = findings(level("L4-L5", 0.7, disc_narrowing="moderate"))
    weight = Evidence(
        measured=[
            WeighedValue(name="disc_height_index", value=1.0, half_width_90=0.1, error_model="x")
        ],
        prior=0.7,
        likelihood_ratio=0.01,
        posterior=0.02,
        posterior_abnormal=0.03,
    )
    # The bands left it unverifiable; the posterior contradicted it.
    v = verdict("L4-L5", "disc_narrowing", "contradicted").model_copy(
        update={"band_verdict": "unverifiable", "weight": weight}
    )
    rec = StudyRecord(case_id="p")
    compare_findings(rec, truth, raw, raw, [v])
    (row,) = [r for r in rec.checked_statements if r[0] == "narrowing"]
    assert row[1:6] == [False, True, True, "unverifiable", "contradicted"]
    block = checker_block.block(rec.checked_statements)["narrowing"]["policies"]
    assert block["bands"]["flag_recall"] == 0.0
    assert block["posterior"]["flag_recall"] == 1.0
    assert block["contradicted-only"]["hallucinated_asserted"] == 1.0


def test_no_statements_make_no_block_and_no_table() -> None:
    assert checker_block.block([]) == {}
    assert checker_block.table({"checker_by_condition": {}}) == []


def test_the_table_names_every_condition_and_the_reasons() -> None:
    m = compute_metrics([example_record()], peak_rss_mb=None)
    text = "\n".join(checker_block.table(m))
    for cond in m["checker_by_condition"]:
        assert f"| {cond} |" in text
    assert "Unverifiable, why:" in text


def test_rates_without_a_denominator_are_nan() -> None:
    numbers = checker_block.condition_numbers(
        [["x", True, False, False, "supported", "supported", False, False, False, None, True]]
    )
    assert math.isnan(numbers["policies"]["bands"]["flag_recall"])
    assert numbers["measured_share"] == 1.0 and numbers["verifiable_share"] == 1.0
    assert numbers["policies"]["bands"]["false_flag_rate"] == pytest.approx(0.0)
