"""The finding schema: round trips, JSON Schema validity, strictness with messages naming fields."""

from __future__ import annotations

import json
import random

import jsonschema
import pytest
from pydantic import ValidationError

from reporter.contracts.findings import (
    LEVEL_FIELDS,
    SCHEMA_VERSION,
    StudyFindings,
    field_values,
    json_schema,
    lumbar_levels,
    not_assessable_level,
)


def _random_level(level: str, rng: random.Random) -> dict:
    out: dict = {"level": level}
    for field in LEVEL_FIELDS:
        if rng.random() < 0.1:
            out[field] = {"not_assessable": "outside the field of view"}
            continue
        value = rng.choice(field_values(field))
        finding: dict = {"value": value, "probability": round(rng.random(), 3)}
        if field == "herniation" and value in ("protrusion", "extrusion"):
            finding["zone"] = rng.choice(["central", "foraminal_left", "paracentral_right"])
        if field == "spondylolisthesis" and value > 0:
            finding["direction"] = rng.choice(["antero", "retro"])
        out[field] = finding
    if out["herniation"].get("value") == "bulge":
        out["disc_bulging"] = {"value": True}
    return out


def random_findings(seed: int, n_lumbar: int = 5) -> StudyFindings:
    rng = random.Random(seed)
    return StudyFindings.model_validate(
        {
            "study": {
                "lumbar_vertebrae": n_lumbar,
                "transitional": {"value": "none", "probability": 0.9},
                "alignment": {"value": "normal"},
            },
            "levels": [_random_level(lv, rng) for lv in lumbar_levels(n_lumbar)],
        }
    )


@pytest.mark.parametrize("seed", range(20))
def test_findings_survive_a_json_round_trip_unchanged(seed: int) -> None:
    findings = random_findings(seed, n_lumbar=4 + seed % 3)
    again = StudyFindings.model_validate_json(findings.to_json())
    assert again == findings
    assert again.schema_version == SCHEMA_VERSION


@pytest.mark.parametrize("seed", range(20))
def test_dumped_findings_validate_against_the_exported_json_schema(seed: int) -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    document = json.loads(random_findings(seed).to_json())
    jsonschema.validate(document, schema)


def test_not_assessable_level_validates_against_the_json_schema() -> None:
    findings = StudyFindings.model_validate(
        {
            "study": {"transitional": {"not_assessable": "no sacrum"},
                      "alignment": {"not_assessable": "no sagittal"}},
            "levels": [not_assessable_level("L4-L5", "outside the field of view").model_dump()],
        }
    )  # fmt: skip
    jsonschema.validate(json.loads(findings.to_json()), json_schema())


def _valid_document() -> dict:
    return json.loads(random_findings(1).to_json())


def test_unknown_top_level_field_is_rejected_naming_it() -> None:
    doc = _valid_document()
    doc["impression"] = "all fine"
    with pytest.raises(ValidationError, match="impression"):
        StudyFindings.model_validate(doc)


def test_unknown_level_field_is_rejected_naming_it() -> None:
    doc = _valid_document()
    doc["levels"][2]["facet_arthropathy"] = {"value": "mild"}
    with pytest.raises(ValidationError, match="facet_arthropathy"):
        StudyFindings.model_validate(doc)


def test_duplicate_level_is_rejected_naming_the_field() -> None:
    doc = _valid_document()
    doc["levels"].insert(3, json.loads(json.dumps(doc["levels"][2])))
    with pytest.raises(ValidationError, match=r"levels\[3\]\.level: duplicate"):
        StudyFindings.model_validate(doc)


def test_out_of_order_levels_are_rejected_naming_the_field() -> None:
    doc = _valid_document()
    doc["levels"][1], doc["levels"][2] = doc["levels"][2], doc["levels"][1]
    with pytest.raises(ValidationError, match=r"levels\[2\]\.level: .* out of order"):
        StudyFindings.model_validate(doc)


def test_value_outside_the_vocabulary_is_rejected_naming_the_field() -> None:
    doc = _valid_document()
    doc["levels"][0]["foraminal_stenosis_left"] = {"value": 4}
    with pytest.raises(ValidationError, match="foraminal_stenosis_left"):
        StudyFindings.model_validate(doc)


def test_probability_outside_0_1_is_rejected() -> None:
    doc = _valid_document()
    doc["levels"][0]["pfirrmann"] = {"value": 3, "probability": 1.5}
    with pytest.raises(ValidationError, match="pfirrmann"):
        StudyFindings.model_validate(doc)


def test_a_finding_needs_a_value_or_a_reason() -> None:
    doc = _valid_document()
    doc["levels"][0]["canal_stenosis"] = {"probability": 0.4}
    with pytest.raises(ValidationError, match="canal_stenosis"):
        StudyFindings.model_validate(doc)


def test_the_json_schema_rejects_what_pydantic_rejects_structurally() -> None:
    doc = _valid_document()
    doc["levels"][0]["unknown_field"] = {"value": 1}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, json_schema())


def test_typical_normal_values_are_normal_and_cover_every_field():
    from reporter.contracts.findings import LEVEL_FIELDS, NORMAL_VALUES, TYPICAL_NORMAL, is_abnormal

    assert list(TYPICAL_NORMAL) == list(LEVEL_FIELDS)
    for field, value in TYPICAL_NORMAL.items():
        assert value in NORMAL_VALUES[field] and not is_abnormal(field, value)


def test_study_fields_values_and_normals_come_from_the_schema():
    from reporter.contracts.findings import (
        STUDY_FIELDS,
        STUDY_NORMAL_VALUES,
        is_abnormal,
        study_field_values,
    )

    assert set(STUDY_NORMAL_VALUES) == set(STUDY_FIELDS)
    assert study_field_values("lumbar_vertebrae") == (4, 5, 6)
    assert "sacralized_L5" in study_field_values("transitional")
    for field, normal in STUDY_NORMAL_VALUES.items():
        values = study_field_values(field)
        assert normal <= set(values)
        abnormal = [v for v in values if is_abnormal(field, v)]
        assert abnormal == [v for v in values if v not in normal]
        assert not is_abnormal(field, None)
