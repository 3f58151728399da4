"""The statements listed apart from the report: withheld (contradicted) and unconfirmed.

They are not part of the report, so they come once, at the end, the clinically weightiest first
(templates/clinical_weight.json): a withheld "severe canal stenosis" or "grade 4
anterolisthesis" must not sit below a list of Pfirrmann grades. A reason every item shares
(e.g. level names uncertain on a 2-D image) is said once for the list, not on every line.
"""

from __future__ import annotations

from typing import Any

from reporter.render.clinical_weight import mildest_weight, text_max_items
from reporter.render.statements import Statement, Status, redundant


def apart_weight(s: Statement) -> float:
    """A positive claim weighs what it states; a contradicted *normal* claim ('no canal
    stenosis' where the canal measures narrow) at least the field's mildest finding."""
    return s.significance if s.abnormal else mildest_weight(s.field)


def ordered(statements: list[Statement], status: Status) -> list[Statement]:
    """Statements of `status`, weightiest first, then the likelier claim; ties keep the
    statements' order (study, then cranio-caudal, then schema order). A bulge is said once."""
    skip = redundant(statements, (status,))
    items = [s for s in statements if s.status == status and s.key not in skip]
    return sorted(items, key=lambda s: (-apart_weight(s), -(s.probability or 0.0)))  # stable


def shared_reason(items: list[Statement]) -> str | None:
    """The reason of every item, when two or more items share one."""
    reasons = {s.reason for s in items}
    return reasons.pop() if len(items) > 1 and len(reasons) == 1 else None


def apart_section(statements: list[Statement], status: Status) -> dict[str, Any]:
    """What the templates need for one list: every item (HTML), the first few (text), how many
    the text leaves out, the shared reason and the levels involved."""
    items = ordered(statements, status)
    keys = {s.key for s in items}
    limit = text_max_items()
    return {
        "all": items,
        "text_items": items[:limit],
        "text_more": max(0, len(items) - limit),
        "shared_reason": shared_reason(items),
        # Cranio-caudal, as the impression names levels.
        "levels": list(dict.fromkeys(s.level or "study" for s in statements if s.key in keys)),
    }
