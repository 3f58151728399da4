"""findings.json: raw and final findings, every statement with its verdict, measurements."""

from __future__ import annotations

import json
from typing import Any

from reporter.contracts.report import Report
from reporter.render.statements import Statement


def findings_document(report: Report, statements: list[Statement]) -> dict[str, Any]:
    return {
        "schema_version": report.findings.schema_version,
        "disclaimer": "preliminary AI draft, not for clinical use",
        "study_uid": report.provenance.study_uid,
        "limitations": list(report.limitations),
        "raw_findings": report.raw_findings.model_dump(mode="json", exclude_none=True),
        "findings": report.findings.model_dump(mode="json", exclude_none=True),
        "statements": [s.as_dict() for s in statements],
        "verdicts": [v.model_dump(mode="json") for v in report.verdicts],
        "measurements": [m.model_dump(mode="json") for m in report.measurements],
        "withheld": [v.model_dump(mode="json") for v in report.withheld],
        # Positive statements the images could not verify: kept with their verdicts, not asserted.
        "unconfirmed": [s.as_dict() for s in statements if s.status == "unconfirmed"],
        "indeterminate": report.indeterminate,
    }


def render_json(report: Report, statements: list[Statement]) -> str:
    return json.dumps(findings_document(report, statements), indent=2, default=str) + "\n"
