"""Clinical weight of a statement, read from templates/clinical_weight.json.

The weights are data beside the report templates (not code constants) so that the order a
radiologist sees can be reviewed and changed without touching the renderer. The file is
validated on first use: an unknown field, a value the finding schema does not allow, a weight
on a normal value or a negative weight is an error naming it, never silently ignored.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from reporter.contracts.findings import (
    LEVEL_FIELDS,
    STUDY_FIELDS,
    field_values,
    is_abnormal,
    study_field_values,
)
from reporter.errors import ModelFileError
from reporter.resources import resource_dir

FILE = "clinical_weight.json"


def value_key(value: Any) -> str:
    """How a field value is written as a JSON key: booleans as `true` / `false`, the rest as str."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _allowed(field: str) -> tuple[Any, ...]:
    return study_field_values(field) if field in STUDY_FIELDS else field_values(field)


class ApartList(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    about: str
    text_max_items: int = Field(ge=1)


class WeightFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    about: str
    weights: dict[str, dict[str, float]]
    apart_list: ApartList

    @model_validator(mode="after")
    def _known_fields_and_values(self) -> WeightFile:
        known = set(LEVEL_FIELDS) | set(STUDY_FIELDS)
        for field, by_value in self.weights.items():
            if field not in known:
                raise ValueError(f"weights.{field}: not a field of the finding schema")
            allowed = {value_key(v): v for v in _allowed(field)}
            for key, weight in by_value.items():
                if key not in allowed:
                    raise ValueError(
                        f"weights.{field}.{key}: not a value of the field "
                        f"(one of {', '.join(allowed)})"
                    )
                if not is_abnormal(field, allowed[key]):
                    # A normal value never ranks: a weight on it would be a typo.
                    raise ValueError(f"weights.{field}.{key}: a normal value has no weight")
                if weight < 0:
                    raise ValueError(f"weights.{field}.{key}: a weight must not be negative")
        return self


@cache
def weight_file() -> WeightFile:
    path = resource_dir("templates") / FILE
    try:
        return WeightFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError) as exc:  # JSONDecodeError is a ValueError
        first = " ".join(str(exc).split())[:300]
        raise ModelFileError(f"templates/{FILE} is invalid: {first}") from None


def weight(field: str, value: Any) -> float:
    """The weight of `field` stating `value` (0 for a value without one, e.g. a normal one)."""
    return float(weight_file().weights.get(field, {}).get(value_key(value), 0.0))


def mildest_weight(field: str) -> float:
    """The smallest weight the field gives an abnormal value: what a contradicted *normal*
    claim implies at least (the images show some of the finding the model denied)."""
    weights = weight_file().weights.get(field, {})
    return float(min(weights.values())) if weights else 0.0


def text_max_items() -> int:
    return weight_file().apart_list.text_max_items
