"""Grounding: measure the images per level and judge every statement against the measurements.

`measure(study, anatomy)` -> {level: {name: Measurement}}; `check(findings, study, anatomy)` ->
`GroundingResult` with one `Verdict` per statement. Thresholds live in `rules.json` (with their
published sources) and are applied through `grading`, the same functions the phantom generator
uses for its ground truth.

The functions share their modules' names (`check.py`, `measure.py`); importing them here, after
the submodules, keeps `reporter.grounding.measure` the function (use `importlib.import_module`
for the modules themselves).
"""

from __future__ import annotations

from reporter.contracts.verdicts import Measurement, Verdict
from reporter.grounding.check import check
from reporter.grounding.measure import measure
from reporter.grounding.result import GroundingResult

__all__ = ["GroundingResult", "Measurement", "Verdict", "check", "measure"]
