"""The `Report` contract: what a reader sees, what the model said, and how we got there."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from reporter.contracts.findings import StudyFindings
from reporter.contracts.verdicts import Measurement, Verdict


class Provenance(BaseModel):
    code_version: str
    schema_version: str
    model_sha256: str | None = None
    model_name: str | None = None
    adapter_sha256: str | None = None
    segmenter_sha256: str | None = None
    prompt_version: str | None = None
    prompt_sha256: str | None = None
    rules_sha256: str | None = None
    study_uid: str
    input_series_uids: list[str] = Field(default_factory=list)
    input_sop_instance_uids: list[str] = Field(default_factory=list)
    started_at: str  # ISO 8601 UTC
    finished_at: str | None = None
    timings_s: dict[str, float] = Field(default_factory=dict)


class Report(BaseModel):
    raw_findings: StudyFindings  # what the model (or other source) said, for audit
    findings: StudyFindings  # as rendered: contradicted statements withheld, low confidence marked
    verdicts: list[Verdict]
    measurements: list[Measurement] = Field(default_factory=list)
    withheld: list[Verdict] = Field(default_factory=list)
    indeterminate: list[dict[str, Any]] = Field(default_factory=list)
    provenance: Provenance
    technique: dict[str, Any] = Field(default_factory=dict)
    # Shown before any finding: a key series unusable or used in part (Study.limitations).
    limitations: list[str] = Field(default_factory=list)
    outputs: dict[str, str] = Field(default_factory=dict)  # kind -> path
