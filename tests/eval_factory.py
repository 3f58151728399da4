"""Hand-built findings, verdicts and records for the evaluation tests."""

from __future__ import annotations

from typing import Any

from reporter.contracts.findings import TYPICAL_NORMAL, LevelFindings, StudyFindings
from reporter.contracts.verdicts import Verdict
from reporter.evaluation.scoring import StudyRecord, compare_findings

NORMAL: dict[str, Any] = TYPICAL_NORMAL


def level(name: str, probability: float | None = None, **changes: Any) -> LevelFindings:
    fields: dict[str, Any] = {}
    for f, v in {**NORMAL, **changes}.items():
        if isinstance(v, dict):
            fields[f] = v
        else:
            fields[f] = (
                {"value": v} if probability is None else {"value": v, "probability": probability}
            )
    return LevelFindings.model_validate({"level": name, **fields})


def findings(*levels: LevelFindings) -> StudyFindings:
    return StudyFindings.model_validate(
        {
            "study": {
                "lumbar_vertebrae": 5,
                "transitional": {"value": "none"},
                "alignment": {"value": "normal"},
            },
            "levels": [lf.model_dump() for lf in levels],
        }
    )


def verdict(lvl: str, field: str, kind: str) -> Verdict:
    return Verdict(level=lvl, field=field, claimed=None, verdict=kind, reason="test")  # type: ignore[arg-type]


WITHHELD = {"not_assessable": "withheld: contradicted by the images"}


def example_record(case_id: str = "s1", site: str = "site-a", sex: str = "F", age: float = 55):
    """Truth L4-L5 moderate canal + normal L5-S1; the model adds a level that does not exist, a
    severe canal and a Modic 1 at L5-S1; the checker contradicts both canal claims."""
    truth = findings(level("L4-L5", canal_stenosis="moderate"), level("L5-S1"))
    raw = findings(
        level("L3-L4", 0.9, canal_stenosis="mild"),
        level("L4-L5", 0.8, canal_stenosis="moderate"),
        level("L5-S1", 0.6, canal_stenosis="severe", modic_upper=1),
    )
    rendered = findings(
        level("L3-L4", 0.9, canal_stenosis=WITHHELD),
        level("L4-L5", 0.8, canal_stenosis="moderate"),
        level("L5-S1", 0.6, canal_stenosis=WITHHELD, modic_upper=1),
    )
    verdicts = [
        verdict("L3-L4", "canal_stenosis", "contradicted"),
        verdict("L4-L5", "canal_stenosis", "supported"),
        verdict("L5-S1", "canal_stenosis", "contradicted"),
        verdict("L5-S1", "modic_upper", "unverifiable"),
        verdict("L5-S1", "pfirrmann", "supported"),
    ]
    rec = StudyRecord(case_id=case_id, site=site, sex=sex, age=age)
    compare_findings(rec, truth, raw, rendered, verdicts)
    rec.schema_valid = True
    rec.latency_s = 1.0
    return rec
