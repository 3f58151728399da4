"""Grounding: measure the images per level and judge every statement against the measurements.

`measure(study, anatomy)` -> {level: {name: Measurement}}; `check(findings, study, anatomy)` ->
`GroundingResult` with one `Verdict` per statement. Thresholds live in `rules.json` (with their
published sources) and are applied through `grading`, the same functions the phantom generator
uses for its ground truth.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reporter.grounding.verdicts import Measurement, Verdict

if TYPE_CHECKING:
    from reporter.anatomy.anatomy import Anatomy
    from reporter.grounding.result import GroundingResult
    from reporter.schema import StudyFindings
    from reporter.study import Study


# Imported lazily: the phantom generator imports `reporter.grounding.grading` and must not pull
# in the measuring code (scipy, anatomy) with it.
def check(
    findings: StudyFindings, study: Study, anatomy: Anatomy, **kwargs: Any
) -> GroundingResult:
    from reporter.grounding.check import check as _check

    return _check(findings, study, anatomy, **kwargs)


def measure(study: Study, anatomy: Anatomy) -> dict[str, dict[str, Measurement]]:
    from reporter.grounding.measure import measure as _measure

    return _measure(study, anatomy)


def __getattr__(name: str) -> Any:
    if name == "GroundingResult":
        from reporter.grounding.result import GroundingResult

        return GroundingResult
    raise AttributeError(name)


__all__ = ["GroundingResult", "Measurement", "Verdict", "check", "measure"]
