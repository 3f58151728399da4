"""rules.json is validated against its model: the shipped file passes, and a missing or unknown
key is an error that names it (never a threshold silently taken from code)."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import pytest
from pydantic import ValidationError

from reporter.grounding.rules_file import RulesFile


def _shipped() -> dict[str, Any]:
    text = (resources.files("reporter.grounding") / "rules.json").read_text(encoding="utf-8")
    return json.loads(text)


def test_shipped_rules_file_is_valid() -> None:
    RulesFile.model_validate(_shipped())


def test_missing_rule_key_is_an_error_naming_it() -> None:
    doc = copy.deepcopy(_shipped())
    del doc["rules"]["subarticular_stenosis"]["sagittal_tolerance"]
    with pytest.raises(ValidationError, match="sagittal_tolerance"):
        RulesFile.model_validate(doc)


def test_unknown_rule_key_is_an_error_naming_it() -> None:
    doc = copy.deepcopy(_shipped())
    doc["rules"]["herniation"]["tolerence_mm"] = 0.8  # a typo must not be ignored
    with pytest.raises(ValidationError, match="tolerence_mm"):
        RulesFile.model_validate(doc)


def test_noise_override_of_an_unknown_key_is_an_error() -> None:
    doc = copy.deepcopy(_shipped())
    doc["measurement_noise"]["builtin_segmenter"]["rules"]["disc_narrowing"]["tol"] = 0.1
    with pytest.raises(ValidationError, match="unknown key"):
        RulesFile.model_validate(doc)
