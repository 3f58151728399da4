"""Converters between `StudyFindings` and public dataset labels: RSNA 2024, SPIDER, Sudirman.

RSNA 2024 Lumbar Spine Degenerative Classification (train.csv): one row per study, 25 columns
`<condition>_<level>` for canal, left/right foraminal and left/right subarticular stenosis at
L1/L2 ... L5/S1, each "Normal/Mild", "Moderate" or "Severe". Ours -> RSNA is exact; RSNA -> ours
maps "Normal/Mild" to the normal value ("none", Lee 0) because the label does not say which.

SPIDER (van der Graaf et al., Sci Data 2024, radiological_gradings.csv): one row per patient and
disc, `IVD label` 1 = L5-S1 counting cranially (6 = T12-L1, 7..9 = T11-T12 .. T9-T10), with
Modic 0-3, UP / LOW endplate (0/1), Spondylolisthesis (0/1), Disc herniation (0/1),
Disc narrowing (0/1), Disc bulging (0/1) and Pfirrmann 1-5. SPIDER -> ours -> SPIDER is exact
for every row of the public file (tested); ours -> SPIDER keeps only what SPIDER can say.

Sudirman (pfirrmann.csv of the sudirman_sagittal set): one Pfirrmann grade per patient and disc
(L3-L4, L4-L5, L5-S1); nothing else is graded.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reporter.contracts.findings import LEVEL_FIELDS, LEVELS, LevelFindings, StudyFindings

# --- RSNA 2024 --------------------------------------------------------------------------------

RSNA_LEVELS: dict[str, str] = {
    "l1_l2": "L1-L2",
    "l2_l3": "L2-L3",
    "l3_l4": "L3-L4",
    "l4_l5": "L4-L5",
    "l5_s1": "L5-S1",
}
RSNA_CONDITIONS: dict[str, str] = {
    "spinal_canal_stenosis": "canal_stenosis",
    "left_neural_foraminal_narrowing": "foraminal_stenosis_left",
    "right_neural_foraminal_narrowing": "foraminal_stenosis_right",
    "left_subarticular_stenosis": "subarticular_stenosis_left",
    "right_subarticular_stenosis": "subarticular_stenosis_right",
}
# The condition group of reporter.evaluation.metrics.RsnaRow for each column prefix.
RSNA_CONDITION_GROUP: dict[str, str] = {
    "spinal_canal_stenosis": "spinal",
    "left_neural_foraminal_narrowing": "foraminal",
    "right_neural_foraminal_narrowing": "foraminal",
    "left_subarticular_stenosis": "subarticular",
    "right_subarticular_stenosis": "subarticular",
}
RSNA_CLASSES: tuple[str, str, str] = ("normal_mild", "moderate", "severe")
RSNA_CSV_SPELLING: dict[str, str] = {
    "normal_mild": "Normal/Mild",
    "moderate": "Moderate",
    "severe": "Severe",
}
RSNA_COLUMNS: tuple[str, ...] = tuple(
    f"{condition}_{level}" for condition in RSNA_CONDITIONS for level in RSNA_LEVELS
)
_FROM_RSNA_SEVERITY = {"normal_mild": "none", "moderate": "moderate", "severe": "severe"}
_FROM_RSNA_LEE = {"normal_mild": 0, "moderate": 2, "severe": 3}


def rsna_class(field: str, value: Any) -> str:
    """Our value of a stenosis field -> normal_mild / moderate / severe."""
    if field.startswith("foraminal"):
        return RSNA_CLASSES[max(0, int(value) - 1)]  # Lee 0, 1 -> normal_mild; 2; 3
    return {"none": "normal_mild", "mild": "normal_mild"}.get(value, value)


def parse_rsna_label(text: str) -> str:
    """ "Normal/Mild", "normal_mild", "Moderate", "severe" ... -> one of RSNA_CLASSES."""
    key = text.strip().lower().replace("/", "_").replace(" ", "_")
    if key not in RSNA_CLASSES:
        raise ValueError(f"unknown RSNA 2024 label {text!r}; expected one of {RSNA_CLASSES}")
    return key


def _not_assessable_study(reason: str) -> dict[str, Any]:
    return {
        "transitional": {"not_assessable": reason},
        "alignment": {"not_assessable": reason},
    }


def from_rsna_row(row: Mapping[str, Any]) -> StudyFindings:
    """One train.csv row -> StudyFindings (levels L1-L2 .. L5-S1; other fields not assessable).
    Missing or empty cells become not_assessable ("not labelled in RSNA 2024")."""
    levels = []
    for rsna_level, level in RSNA_LEVELS.items():
        values: dict[str, Any] = {
            f: {"not_assessable": "not graded in RSNA 2024"} for f in LEVEL_FIELDS
        }
        for condition, field in RSNA_CONDITIONS.items():
            cell = row.get(f"{condition}_{rsna_level}")
            if cell is None or str(cell).strip() in ("", "nan", "NaN"):
                values[field] = {"not_assessable": "not labelled in RSNA 2024"}
                continue
            cls = parse_rsna_label(str(cell))
            table = _FROM_RSNA_LEE if field.startswith("foraminal") else _FROM_RSNA_SEVERITY
            values[field] = {"value": table[cls]}
        levels.append({"level": level, **values})
    return StudyFindings.model_validate(
        {"study": _not_assessable_study("not graded in RSNA 2024"), "levels": levels}
    )


def to_rsna_row(findings: StudyFindings, study_id: Any = None) -> dict[str, str]:
    """StudyFindings -> a train.csv row ("Normal/Mild" / "Moderate" / "Severe"; "" when the
    field is not assessable or the level is absent)."""
    row: dict[str, str] = {} if study_id is None else {"study_id": str(study_id)}
    for condition, field in RSNA_CONDITIONS.items():
        for rsna_level, level in RSNA_LEVELS.items():
            lf = findings.level(level)
            finding = getattr(lf, field) if lf is not None else None
            if finding is None or not finding.assessed:
                row[f"{condition}_{rsna_level}"] = ""
            else:
                cls = rsna_class(field, finding.value)
                row[f"{condition}_{rsna_level}"] = RSNA_CSV_SPELLING[cls]
    return row


def to_rsna_probabilities(
    findings: StudyFindings,
) -> dict[str, tuple[float, float, float]]:
    """Per column (`<condition>_<level>`): (normal_mild, moderate, severe) probabilities.

    Our findings carry the probability of the stated value only; its RSNA class gets that
    probability (plus the share of any other of our values that maps to the same class, which
    is none here) and the remainder is split evenly over the other two classes. A finding
    without a probability is taken as certain. Not assessable -> omitted.
    """
    out: dict[str, tuple[float, float, float]] = {}
    for condition, field in RSNA_CONDITIONS.items():
        for rsna_level, level in RSNA_LEVELS.items():
            lf = findings.level(level)
            finding = getattr(lf, field) if lf is not None else None
            if finding is None or not finding.assessed:
                continue
            p = 1.0 if finding.probability is None else float(finding.probability)
            probs = [(1.0 - p) / 2.0] * 3
            probs[RSNA_CLASSES.index(rsna_class(field, finding.value))] = p
            out[f"{condition}_{rsna_level}"] = (probs[0], probs[1], probs[2])
    return out


# --- SPIDER -----------------------------------------------------------------------------------

SPIDER_COLUMNS: tuple[str, ...] = (
    "Patient", "IVD label", "Modic", "UP endplate", "LOW endplate", "Spondylolisthesis",
    "Disc herniation", "Disc narrowing", "Disc bulging", "Pfirrman grade",
)  # fmt: skip
SPIDER_LEVELS: dict[int, str] = {
    1: "L5-S1", 2: "L4-L5", 3: "L3-L4", 4: "L2-L3", 5: "L1-L2",
    6: "T12-L1", 7: "T11-T12", 8: "T10-T11", 9: "T9-T10",
}  # fmt: skip
SPIDER_LABELS: dict[str, int] = {v: k for k, v in SPIDER_LEVELS.items()}
# SPIDER records that a disc is herniated, not where: the zone stays None ("not recorded").
_SPIDER_NA = "not graded in SPIDER"


def _int(row: Mapping[str, Any], column: str, allowed: Iterable[int]) -> int:
    try:
        value = int(str(row[column]).strip())
    except (KeyError, ValueError):
        raise ValueError(
            f"SPIDER column {column!r}: {row.get(column)!r} is not an integer"
        ) from None
    if value not in allowed:
        raise ValueError(f"SPIDER column {column!r}: {value} is not one of {sorted(allowed)}")
    return value


def from_spider_row(row: Mapping[str, Any]) -> LevelFindings:
    """One SPIDER grading row (one disc) -> LevelFindings."""
    label = _int(row, "IVD label", SPIDER_LEVELS)
    modic = _int(row, "Modic", range(4))
    herniation = _int(row, "Disc herniation", (0, 1))
    bulging = _int(row, "Disc bulging", (0, 1))
    values: dict[str, Any] = {f: {"not_assessable": _SPIDER_NA} for f in LEVEL_FIELDS}
    values.update(
        pfirrmann={"value": _int(row, "Pfirrman grade", range(1, 6))},
        disc_narrowing={"value": ("none", "moderate")[_int(row, "Disc narrowing", (0, 1))]},
        disc_bulging={"value": bool(bulging)},
        herniation=(
            {"value": "protrusion"} if herniation else {"value": "bulge" if bulging else "none"}
        ),
        modic_upper={"value": modic},
        modic_lower={"value": modic},
        endplate_defect_upper={"value": bool(_int(row, "UP endplate", (0, 1)))},
        endplate_defect_lower={"value": bool(_int(row, "LOW endplate", (0, 1)))},
        spondylolisthesis={"value": _int(row, "Spondylolisthesis", (0, 1))},
    )
    return LevelFindings.model_validate({"level": SPIDER_LEVELS[label], **values})


def from_spider_rows(rows: Iterable[Mapping[str, Any]]) -> StudyFindings:
    """The rows of one patient -> StudyFindings, levels cranio-caudal."""
    levels = [from_spider_row(r) for r in rows]
    levels.sort(key=lambda lf: -SPIDER_LABELS[lf.level])
    return StudyFindings.model_validate(
        {"study": _not_assessable_study(_SPIDER_NA), "levels": [lf.model_dump() for lf in levels]}
    )


def _value(finding: Any, field: str, level: str) -> Any:
    if not finding.assessed:
        raise ValueError(f"{level}.{field} is not assessable; SPIDER has no such value")
    return finding.value


def to_spider_rows(findings: StudyFindings, patient: Any) -> list[dict[str, str]]:
    """StudyFindings -> SPIDER rows (IVD label ascending, as in the CSV). Levels SPIDER cannot
    name (L5-L6, L4-S1, L6-S1) are skipped; Modic is the larger of upper and lower; narrowing
    is 1 for mild or worse; spondylolisthesis is 1 for any Meyerding grade."""
    rows = []
    for lf in findings.levels:
        if lf.level not in SPIDER_LABELS:
            continue

        def v(field: str, lf: LevelFindings = lf) -> Any:
            return _value(getattr(lf, field), field, lf.level)

        herniated = v("herniation") in ("protrusion", "extrusion")
        bulging = bool(v("disc_bulging")) or v("herniation") == "bulge"
        rows.append(
            {
                "Patient": str(patient),
                "IVD label": str(SPIDER_LABELS[lf.level]),
                "Modic": str(max(v("modic_upper"), v("modic_lower"))),
                "UP endplate": str(int(bool(v("endplate_defect_upper")))),
                "LOW endplate": str(int(bool(v("endplate_defect_lower")))),
                "Spondylolisthesis": str(int(v("spondylolisthesis") > 0)),
                "Disc herniation": str(int(herniated)),
                "Disc narrowing": str(int(v("disc_narrowing") != "none")),
                "Disc bulging": str(int(bulging)),
                "Pfirrman grade": str(v("pfirrmann")),
            }
        )
    rows.sort(key=lambda r: int(r["IVD label"]))
    return rows


def read_spider_gradings(path: Path | str) -> dict[str, StudyFindings]:
    """radiological_gradings.csv -> {patient: StudyFindings}."""
    by_patient: dict[str, list[dict[str, str]]] = defaultdict(list)
    with Path(path).open(newline="") as fh:
        for row in csv.DictReader(fh):
            by_patient[row["Patient"].strip()].append(row)
    return {p: from_spider_rows(rows) for p, rows in by_patient.items()}


# --- Sudirman (Pfirrmann grades only) ---------------------------------------------------------

SUDIRMAN_NA = "not graded in the Sudirman set"


def from_pfirrmann_grades(grades: Mapping[str, int], reason: str = SUDIRMAN_NA) -> StudyFindings:
    """{level: Pfirrmann grade 1-5} of one patient (the Sudirman pfirrmann.csv) -> StudyFindings
    with those levels cranio-caudal; every other field not assessable (`reason`)."""
    levels = []
    for level in sorted(grades, key=LEVELS.index):
        values: dict[str, Any] = {f: {"not_assessable": reason} for f in LEVEL_FIELDS}
        values["pfirrmann"] = {"value": int(grades[level])}
        levels.append({"level": level, **values})
    return StudyFindings.model_validate({"study": _not_assessable_study(reason), "levels": levels})
