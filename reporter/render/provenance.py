"""provenance.json: code version, model / adapter / prompt / schema / rules hashes, UIDs, times."""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import SCHEMA_VERSION, json_schema_text
from reporter.contracts.report import Provenance
from reporter.contracts.study import Study
from reporter.grounding.grading import rules_sha256
from reporter.version import __version__


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@cache
def code_version() -> str:
    """The package version, plus the git commit when running from a source checkout."""
    root = Path(__file__).resolve().parent.parent.parent
    if (root / ".git").exists():
        try:
            sha = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout.strip()
            if sha:
                return f"{__version__}+g{sha}"
        except (OSError, subprocess.SubprocessError):
            pass
    return __version__


@cache
def schema_sha256() -> str:
    return hashlib.sha256(json_schema_text().encode("utf-8")).hexdigest()


def build_provenance(
    study: Study, model_info: dict[str, Any], anatomy: Anatomy | None, started_at: str
) -> Provenance:
    return Provenance(
        code_version=code_version(),
        schema_version=SCHEMA_VERSION,
        model_sha256=model_info.get("model_sha256"),
        model_name=model_info.get("model_name"),
        adapter_sha256=model_info.get("adapter_sha256"),
        segmenter_sha256=(
            anatomy.source_detail
            if anatomy is not None and anatomy.source == "builtin_segmenter"
            else None
        ),
        prompt_version=model_info.get("prompt_version"),
        prompt_sha256=model_info.get("prompt_sha256"),
        rules_sha256=rules_sha256(),
        study_uid=study.study_uid,
        input_series_uids=list(dict.fromkeys(s.series_uid for s in study.series)),
        input_sop_instance_uids=[u for s in study.series for u in s.sop_instance_uids],
        started_at=started_at,
    )


def provenance_document(prov: Provenance, anatomy: Anatomy | None) -> dict[str, Any]:
    doc = prov.model_dump(mode="json")
    doc["schema_sha256"] = schema_sha256()
    if anatomy is not None:
        doc["anatomy"] = {
            "source": anatomy.source,
            "source_detail": anatomy.source_detail,
            "reference_series_uid": anatomy.reference_series_uid,
        }
    return doc


def render_provenance(prov: Provenance, anatomy: Anatomy | None) -> str:
    return json.dumps(provenance_document(prov, anatomy), indent=2) + "\n"
