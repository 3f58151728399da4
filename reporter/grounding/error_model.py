"""Measurement error models (error_models.json beside rules.json): how far each grounding
measurement lies from the exact truth, as a Student-t residual whose location (bias), scale and
degrees of freedom depend on what affects it (the label map's source, the slice thickness of the
series it was read on, the plane it was read on).

The file is data, re-derived by `python -m reporter.training.error_models` on validation phantoms
(the fit's seeds and its held-out coverage are recorded in it) and validated here on first use: a
missing or unknown key is an error naming it.

Residual = measured - truth on the measurement's own scale. For most measurements the truth is the
same quantity on the phantom's exact geometry; `truth_scale` says when it is not (the canal's
sagittal AP diameter stands for the dural sac area, whose grade defines stenosis: its truth is the
area mapped onto the AP scale through the grade cut-offs, so the residual also holds how well AP
tells the area's grade).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import stats

from reporter.errors import ModelFileError

_FILE = "error_models.json"
FALLBACK_SOURCE = "builtin_segmenter"  # label-map sources without their own models use these


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bin(_Strict):
    """One condition cell: measurements read on slices of `thickness_mm` [lo, hi) (mm) and, when
    set, on the plane `read_on`."""

    thickness_mm: tuple[float, float]
    read_on: Literal["sagittal", "axial"] | None = None
    n: int = Field(ge=0)
    bias: float
    scale: float = Field(gt=0)
    df: float = Field(gt=0)


class MeasurementModel(_Strict):
    unit: str
    truth_scale: Literal["same", "canal_ap_from_area"] = "same"
    scale_floor: float = Field(gt=0)
    n_missing: int = Field(ge=0)
    bins: list[Bin] = Field(min_length=1)


class Coverage(_Strict):
    nominal: float
    observed: float
    n: int


class ErrorModelFile(_Strict):
    version: str
    note: str
    derived_with: str
    fit_seeds: str
    heldout_seeds: str
    sources: dict[str, dict[str, MeasurementModel]]
    # source -> measurement -> coverage of the stated central intervals on held-out phantoms
    heldout_coverage: dict[str, dict[str, list[Coverage]]]

    @model_validator(mode="after")
    def _fallback_present(self) -> ErrorModelFile:
        if FALLBACK_SOURCE not in self.sources:
            raise ValueError(f"sources must hold {FALLBACK_SOURCE!r} (the fallback)")
        return self


@dataclass(frozen=True)
class Residual:
    """The error model that applies to one measurement: measured = truth + bias + scale * t(df)."""

    model_id: str
    bias: float
    scale: float
    df: float

    def truth_interval(self, measured: float, level: float = 0.9) -> tuple[float, float]:
        """The central `level` interval of the truth given the measured value."""
        q = float(stats.t.ppf(0.5 + level / 2, self.df)) * self.scale
        centre = measured - self.bias
        return centre - q, centre + q

    def half_width(self, level: float = 0.9) -> float:
        return float(stats.t.ppf(0.5 + level / 2, self.df)) * self.scale

    def truth_draws(self, measured: float, unit_draws: np.ndarray) -> np.ndarray:
        """Truth values consistent with `measured`: measured - bias - scale * t draws, where
        `unit_draws` are standard uniform numbers (mapped through the t quantile function)."""
        return measured - self.bias - self.scale * stats.t.ppf(unit_draws, self.df)

    def prob_truth_in(self, measured: float, lo: float | None, hi: float | None) -> float:
        """P(lo <= truth < hi | measured) under a flat prior on the truth."""
        centre = measured - self.bias
        upper = 1.0 if hi is None else float(stats.t.cdf((hi - centre) / self.scale, self.df))
        lower = 0.0 if lo is None else float(stats.t.cdf((lo - centre) / self.scale, self.df))
        return max(upper - lower, 0.0)


@cache
def _document() -> ErrorModelFile:
    text = (resources.files("reporter.grounding") / _FILE).read_text(encoding="utf-8")
    try:
        return ErrorModelFile.model_validate(json.loads(text))
    except ValueError as exc:
        first = " ".join(str(exc).split())[:300]
        raise ModelFileError(f"reporter/grounding/{_FILE} is invalid: {first}") from None


def document() -> ErrorModelFile:
    return _document()


@cache
def sha256() -> str:
    return hashlib.sha256((resources.files("reporter.grounding") / _FILE).read_bytes()).hexdigest()


def model_for(source: str, name: str) -> tuple[str, MeasurementModel] | None:
    """The measurement's model for label maps of `source` (the fallback source's when `source`
    has none), with the source it came from; None when the measurement has no model."""
    doc = _document()
    for src in (source, FALLBACK_SOURCE):
        m = doc.sources.get(src, {}).get(name)
        if m is not None:
            return src, m
    return None


def residual(
    source: str, name: str, thickness_mm: float | None, read_on: str | None = None
) -> Residual | None:
    """The residual model for measurement `name` read on slices `thickness_mm` thick (the
    nearest bin when no bin covers it; the pooled first bin when the thickness is unknown)."""
    found = model_for(source, family(name))
    if found is None:
        return None
    src, m = found
    bins = [b for b in m.bins if b.read_on in (None, read_on)] or list(m.bins)
    if thickness_mm is None:
        b = bins[0]
    else:
        inside = [b for b in bins if b.thickness_mm[0] <= thickness_mm < b.thickness_mm[1]]
        b = (
            inside[0]
            if inside
            else min(
                bins,
                key=lambda b: min(
                    abs(thickness_mm - b.thickness_mm[0]), abs(thickness_mm - b.thickness_mm[1])
                ),
            )
        )
    where = f"{b.thickness_mm[0]:g}-{b.thickness_mm[1]:g} mm" + (
        f", {b.read_on}" if b.read_on else ""
    )
    doc = _document()
    return Residual(
        model_id=f"error_models v{doc.version} {src}/{family(name)} [{where}]",
        bias=b.bias,
        scale=max(b.scale, m.scale_floor),
        df=b.df,
    )


# --- which model a measurement uses ---------------------------------------------------------------
_SUFFIXES = ("_left", "_right", "_upper", "_lower")
_SECTORS = ("cranial", "caudal", "anterior", "posterior")


def family(name: str) -> str:
    """The model a measurement shares with its siblings: sides, endplates and foraminal sectors
    are one model each ('foraminal_fat_cranial_left' -> 'foraminal_fat')."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    for sector in _SECTORS:
        if name.endswith(f"_{sector}"):
            return name[: -len(sector) - 1]
    return name


def read_role(name: str, read_on: str | None = None) -> str:
    """The series role a measurement is read on (its slice thickness selects the bin)."""
    if name.startswith("modic_t1"):
        return "sag_t1"
    if name == "dural_sac_area_mm2" or (name.startswith("lateral_recess") and read_on == "axial"):
        return "ax_t2"
    return "sag_t2"
