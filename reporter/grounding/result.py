"""`GroundingResult`: every verdict of one check, and the measurements they rest on."""

from __future__ import annotations

from pydantic import BaseModel, Field

from reporter.contracts.verdicts import Measurement, Verdict


class GroundingResult(BaseModel):
    verdicts: list[Verdict] = Field(default_factory=list)  # one per statement
    measurements: list[Measurement] = Field(default_factory=list)
    rules_sha256: str = ""
    anatomy_source: str = ""
    naming_uncertain: bool = False
    notes: list[str] = Field(default_factory=list)

    def verdict_for(self, level: str | None, field: str) -> Verdict | None:
        return next((v for v in self.verdicts if v.level == level and v.field == field), None)

    @property
    def contradicted(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.verdict == "contradicted"]

    def counts(self) -> dict[str, int]:
        out = {"supported": 0, "contradicted": 0, "unverifiable": 0}
        for v in self.verdicts:
            out[v.verdict] += 1
        return out
