"""The enumeration calibration of a segmenter's weights: versioned data beside the weights
(`enumeration.json`), validated when the segmenter loads, and bound to the weights it was measured
on by their sha256 (a calibration of other weights is an error, not a silent mismatch).

The constants are those of reporter.anatomy.segmenter_instances.estimate_lumbar_count, measured on
validation phantoms with `python eval/bench_segmenter.py --calibrate-enumeration PREDS`. Weights
without the file are uncalibrated: the lumbar count stays five at low confidence (documented in
the segmenter's model card).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from reporter.errors import ModelFileError

ENUMERATION_FILE = "enumeration.json"


class EnumerationCalibration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    conus_offset_mm: float
    conus_sd_mm: float
    reach_lumbar_mm: float
    reach_thoracic_mm: float
    reach_sd_mm: float
    # The transverse-process sign, where the weights segment posterior elements well enough.
    transverse_lumbar: float | None = None
    transverse_thoracic: float | None = None
    transverse_sd: float | None = None


class EnumerationFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str  # the weights' name and stage, as their model card gives it
    weights_sha256: str
    derived: str  # command, seeds and what the validation showed
    calibration: EnumerationCalibration


def load_enumeration(folder: Path, weights_sha256: str) -> dict[str, float] | None:
    """The calibration in `folder` for the weights with `weights_sha256` (None when the folder
    has none); ModelFileError when the file is invalid or belongs to other weights."""
    path = folder / ENUMERATION_FILE
    if not path.is_file():
        return None
    try:
        doc = EnumerationFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, ValidationError) as exc:
        first = " ".join(str(exc).split())[:300]
        raise ModelFileError(f"{path} is invalid: {first}") from None
    if doc.weights_sha256 != weights_sha256:
        raise ModelFileError(
            f"{path} calibrates other weights ({doc.weights_sha256[:12]}..., not "
            f"{weights_sha256[:12]}...); recalibrate with eval/bench_segmenter.py "
            "--calibrate-enumeration"
        )
    return doc.calibration.model_dump(exclude_none=True)
