"""What could not be assessed: once for the whole input, or per level where it is level-specific.

A single sagittal image cannot show the foramina, the lateral recesses or (without T1) Modic
change at any level. Repeating that under every level buries what is specific to a level, so a
field that is not assessable at every (partly assessed) level for one and the same reason is a
limit of the input, stated once in the technique; per level only the rest is listed.
"""

from __future__ import annotations

from typing import Any

from reporter.contracts.findings import LEVEL_FIELDS
from reporter.render.statements import FIELD_TITLES, Statement

# Paired fields, said as one phrase when both are meant: stem -> (sides, both, one side).
_PAIRS: dict[str, tuple[tuple[str, str], str, str]] = {
    "foraminal_stenosis": (
        ("left", "right"),
        "left and right neural foramina",
        "{side} neural foramen",
    ),
    "subarticular_stenosis": (
        ("left", "right"),
        "left and right lateral recesses",
        "{side} lateral recess",
    ),
    "modic": (
        ("upper", "lower"),
        "upper and lower endplate marrow (Modic)",
        "{side} endplate marrow (Modic)",
    ),
    "endplate_defect": (("upper", "lower"), "upper and lower endplates", "{side} endplate"),
}

# Where the table title reads badly inside a sentence.
_WORDS = {"spondylolisthesis": "spondylolisthesis", "pfirrmann": "disc signal (Pfirrmann)"}


def field_words(fields: list[str]) -> str:
    """'foraminal_stenosis_left', 'foraminal_stenosis_right' -> 'left and right neural foramina';
    fields in schema order, pairs joined."""
    rest = [f for f in LEVEL_FIELDS if f in fields] + [f for f in fields if f not in LEVEL_FIELDS]
    words: list[str] = []
    for f in rest:
        stem = next((k for k, p in _PAIRS.items() if f in (f"{k}_{s}" for s in p[0])), None)
        if stem is None:
            title = _WORDS.get(f) or FIELD_TITLES.get(f, f.replace("_", " "))
            words.append(title[0].lower() + title[1:])
            continue
        sides, both, one = _PAIRS[stem]
        present = [s for s in sides if f"{stem}_{s}" in fields]
        if len(present) == 2:
            if f == f"{stem}_{sides[0]}":  # say the pair once, at its first field
                words.append(both)
        else:
            words.append(one.format(side=present[0]))
    return ", ".join(words)


def _by_level(statements: list[Statement]) -> dict[str, list[Statement]]:
    out: dict[str, list[Statement]] = {}
    for s in statements:
        if s.level is not None:
            out.setdefault(s.level, []).append(s)
    return out


def input_wide(statements: list[Statement], min_levels: int = 2) -> dict[str, str]:
    """{field: reason} for the fields not assessable at every partly assessed level, for one
    reason. A level where nothing could be assessed (outside the field of view) says so itself
    and does not decide what the input lacks; with fewer than `min_levels` partly assessed
    levels there is nothing to factor out."""
    partly = [
        here
        for here in _by_level(statements).values()
        if any(s.status != "not_assessable" for s in here)
    ]
    if len(partly) < min_levels:
        return {}
    out: dict[str, str] = {}
    for field in LEVEL_FIELDS:
        na = [s for here in partly for s in here if s.field == field]
        reasons = {s.reason for s in na}
        everywhere = len(na) == len(partly) and all(s.status == "not_assessable" for s in na)
        if everywhere and len(reasons) == 1:
            out[field] = reasons.pop()
    return out


def grouped(fields_reasons: dict[str, str]) -> list[dict[str, Any]]:
    """[{'what': 'left and right neural foramina', 'reason': ..., 'fields': [...]}], one entry
    per reason, in the schema order of each reason's first field."""
    by_reason: dict[str, list[str]] = {}
    for field in [f for f in LEVEL_FIELDS if f in fields_reasons]:
        by_reason.setdefault(fields_reasons[field], []).append(field)
    return [
        {"what": field_words(fields), "reason": reason, "fields": fields}
        for reason, fields in by_reason.items()
    ]


def input_limits(statements: list[Statement]) -> list[dict[str, Any]]:
    """The input-wide limits, for the technique section. A reason written for one level
    ('no axial T2 slice through this level') is said for all of them."""
    wide = {f: r.replace("this level", "any level") for f, r in input_wide(statements).items()}
    return grouped(wide)


def level_limits(here: list[Statement], wide: dict[str, str]) -> list[dict[str, Any]]:
    """A level's not-assessable fields that are not input-wide, grouped by reason."""
    return grouped(
        {s.field: s.reason for s in here if s.status == "not_assessable" and s.field not in wide}
    )
