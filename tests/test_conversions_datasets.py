"""RSNA 2024 and SPIDER label converters."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from reporter.contracts.findings import StudyFindings
from reporter.conversions import (
    RSNA_COLUMNS,
    SPIDER_LEVELS,
    from_rsna_row,
    from_spider_row,
    from_spider_rows,
    read_spider_gradings,
    to_rsna_probabilities,
    to_rsna_row,
    to_spider_rows,
)

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
SPIDER_CSV = REAL / "spider" / "radiological_gradings.csv"


def _spider_row(label: int, **overrides: str) -> dict[str, str]:
    row = {
        "Patient": "7", "IVD label": str(label), "Modic": "2", "UP endplate": "1",
        "LOW endplate": "0", "Spondylolisthesis": "1", "Disc herniation": "0",
        "Disc narrowing": "1", "Disc bulging": "1", "Pfirrman grade": "4",
    }  # fmt: skip
    row.update(overrides)
    return row


def test_spider_labels_count_up_from_the_lumbosacral_disc() -> None:
    assert [SPIDER_LEVELS[k] for k in range(1, 10)] == [
        "L5-S1", "L4-L5", "L3-L4", "L2-L3", "L1-L2", "T12-L1", "T11-T12", "T10-T11", "T9-T10",
    ]  # fmt: skip


def test_spider_row_maps_to_the_documented_fields() -> None:
    lf = from_spider_row(_spider_row(2))
    assert lf.level == "L4-L5"
    assert lf.modic_upper.value == lf.modic_lower.value == 2
    assert lf.endplate_defect_upper.value is True and lf.endplate_defect_lower.value is False
    assert lf.disc_narrowing.value == "moderate"
    assert lf.herniation.value == "bulge" and lf.disc_bulging.value is True
    assert lf.spondylolisthesis.value == 1
    assert lf.pfirrmann.value == 4
    assert not lf.canal_stenosis.assessed


def test_spider_herniation_is_a_protrusion_and_keeps_bulging_apart() -> None:
    lf = from_spider_row(_spider_row(1, **{"Disc herniation": "1", "Disc bulging": "0"}))
    assert lf.herniation.value == "protrusion" and lf.disc_bulging.value is False


def test_spider_patient_levels_come_out_cranio_caudal() -> None:
    findings = from_spider_rows([_spider_row(k) for k in (1, 6, 3, 7, 2, 5, 4)])
    assert [lf.level for lf in findings.levels] == [
        "T11-T12", "T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1",
    ]  # fmt: skip


def test_spider_modic_converts_back_as_the_larger_endplate() -> None:
    findings = from_spider_rows([_spider_row(1, Modic="0")])
    findings.levels[0].modic_lower.value = 3
    assert to_spider_rows(findings, "7")[0]["Modic"] == "3"


def test_spider_rejects_out_of_range_values_naming_the_column() -> None:
    with pytest.raises(ValueError, match="Pfirrman grade"):
        from_spider_row(_spider_row(1, **{"Pfirrman grade": "6"}))
    with pytest.raises(ValueError, match="IVD label"):
        from_spider_row(_spider_row(10))


@pytest.mark.real
@pytest.mark.skipif(not SPIDER_CSV.is_file(), reason="../shared/data/real/spider is absent")
def test_every_real_spider_row_converts_and_back_exactly() -> None:
    by_patient: dict[str, list[dict[str, str]]] = defaultdict(list)
    with SPIDER_CSV.open(newline="") as fh:
        for row in csv.DictReader(fh):
            by_patient[row["Patient"]].append({k: v.strip() for k, v in row.items()})
    converted = read_spider_gradings(SPIDER_CSV)
    assert set(converted) == set(by_patient)
    n = 0
    for patient, rows in by_patient.items():
        findings = converted[patient]
        # The findings also survive their own JSON round trip.
        findings = StudyFindings.model_validate_json(findings.to_json())
        back = to_spider_rows(findings, patient)
        assert back == sorted(rows, key=lambda r: int(r["IVD label"])), patient
        n += len(back)
    assert n == sum(len(r) for r in by_patient.values()) > 1000


def _rsna_row() -> dict[str, str]:
    labels = ["Normal/Mild", "Moderate", "Severe"]
    return {"study_id": "4003253", **{c: labels[i % 3] for i, c in enumerate(RSNA_COLUMNS)}}


def test_rsna_row_converts_and_back_exactly() -> None:
    row = _rsna_row()
    findings = from_rsna_row(row)
    assert [lf.level for lf in findings.levels] == ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    assert to_rsna_row(findings, "4003253") == row


def test_rsna_normal_mild_maps_to_normal_values_and_missing_cells_to_not_assessable() -> None:
    row = _rsna_row()
    row["spinal_canal_stenosis_l1_l2"] = "Normal/Mild"
    row["left_neural_foraminal_narrowing_l1_l2"] = "normal_mild"
    row["right_neural_foraminal_narrowing_l4_l5"] = ""
    findings = from_rsna_row(row)
    l1 = findings.level("L1-L2")
    assert l1 is not None
    assert l1.canal_stenosis.value == "none" and l1.foraminal_stenosis_left.value == 0
    l4 = findings.level("L4-L5")
    assert l4 is not None and not l4.foraminal_stenosis_right.assessed
    assert to_rsna_row(findings)["right_neural_foraminal_narrowing_l4_l5"] == ""


def test_our_grades_map_onto_the_three_rsna_classes() -> None:
    findings = from_rsna_row(_rsna_row())
    lf = findings.levels[0]
    lf.canal_stenosis.value = "mild"
    lf.foraminal_stenosis_left.value = 1
    row = to_rsna_row(findings)
    assert row["spinal_canal_stenosis_l1_l2"] == "Normal/Mild"
    assert row["left_neural_foraminal_narrowing_l1_l2"] == "Normal/Mild"


def test_rsna_probabilities_put_the_stated_probability_on_the_stated_class() -> None:
    findings = from_rsna_row(_rsna_row())
    lf = findings.levels[0]
    lf.canal_stenosis.value, lf.canal_stenosis.probability = "severe", 0.7
    probs = to_rsna_probabilities(findings)
    assert probs["spinal_canal_stenosis_l1_l2"] == pytest.approx((0.15, 0.15, 0.7))
    assert all(abs(sum(p) - 1) < 1e-9 for p in probs.values())
    assert len(probs) == 25
