"""The v2 engine's randomisation ranges (`params.json` beside this module), validated on import.

Tissue classes are fixed here (their ids are indices into CLASS_NAMES); the file says how each may
look. A missing, unknown or inverted range is an error naming it.
"""

from __future__ import annotations

import json
from importlib import resources

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from reporter.errors import ModelFileError

_FILE = "params.json"

# Every class the v2 tissue map can hold; ids are the positions in this tuple.
CLASS_NAMES: tuple[str, ...] = (
    "air", "subcut_fat", "paraspinal_muscle", "psoas", "cortex", "marrow", "posterior_bone",
    "annulus", "nucleus", "csf", "cord", "cauda_equina", "epidural_fat", "ligamentum_flavum",
    "ligament", "facet_fluid", "metal", "ivc", "aorta", "mesentery", "liver", "bowel_wall",
    "bowel_fluid", "bowel_content", "bowel_gas", "bladder", "thoracic_marrow",
)  # fmt: skip
CLASS_ID: dict[str, int] = {n: i for i, n in enumerate(CLASS_NAMES)}

Range = tuple[float, float]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _ranges_ordered(self) -> _Strict:
        for name, value in self:
            if isinstance(value, tuple) and len(value) == 2 and value[0] > value[1]:
                raise ValueError(f"range {name!r} has its low end above its high end: {value}")
        return self


class ClassPrior(_Strict):
    t1: Range
    t2: Range
    std: Range
    texture: float
    subcluster: float


class SequenceRanges(_Strict):
    tr: Range
    te: Range


class FovRanges(_Strict):
    si_mm: Range
    ap_over_si: Range
    square_p: float  # share of square fields of view (most sagittal protocols)
    centre_si_over_fov: Range
    posterior_margin_mm: Range
    lateral_sd_mm: float
    inplane_tilt_deg: Range
    pixel_mm: Range
    thickness_mm: Range
    gap_mm: Range
    stack_slices: tuple[int, int]


class ArtefactRanges(_Strict):
    kspace_keep: Range
    blur_sigma_px: Range
    snr: Range
    bias_log_sd: Range
    coil_p: float
    coil_depth_mm: Range
    coil_power: Range
    wrap_p: float
    wrap_fraction: Range
    ghost_p: float
    ghost_amplitude: Range
    ghost_count: tuple[int, int]
    export_p: float
    export_floor_pct: Range
    export_ceiling_pct: Range


class AnatomyRanges(_Strict):
    bowel_loops: tuple[int, int]
    bowel_radius_mm: Range
    bowel_wall_mm: Range
    bowel_kind_p: dict[str, float]
    bladder_p: float
    liver_p: float
    thoracic_vertebra_mm: Range
    thoracic_disc_mm: Range
    all_pll_mm: Range
    belly_sag_mm: Range
    texture_scale_mm: Range
    subcluster_scale_mm: Range
    cortex_rim_mm: Range
    deform_coarse_mm: Range
    deform_fine_mm: Range

    @field_validator("bowel_kind_p")
    @classmethod
    def _kinds(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [k for k in v if k not in CLASS_ID]
        if bad:
            raise ValueError(f"bowel_kind_p names unknown classes: {bad}")
        return v


class EngineParams(_Strict):
    version: str
    note: str
    classes: dict[str, ClassPrior]
    random_contrast_p: float
    gamma_log_sd: float
    sequences: dict[str, SequenceRanges]
    fov: FovRanges
    artefacts: ArtefactRanges
    anatomy: AnatomyRanges

    @field_validator("classes")
    @classmethod
    def _all_classes(cls, v: dict[str, ClassPrior]) -> dict[str, ClassPrior]:
        missing = [n for n in CLASS_NAMES if n not in v]
        unknown = [n for n in v if n not in CLASS_ID]
        if missing or unknown:
            raise ValueError(f"classes missing {missing}, unknown {unknown}")
        return v


def load_params(text: str | None = None) -> EngineParams:
    """Parse and validate the engine's parameter file (or `text`, for tests)."""
    if text is None:
        text = (resources.files("reporter.synth.v2") / _FILE).read_text(encoding="utf-8")
    try:
        return EngineParams.model_validate(json.loads(text))
    except (ValueError, ValidationError) as exc:
        first = " ".join(str(exc).split())[:300]
        raise ModelFileError(f"reporter/synth/v2/{_FILE} is invalid: {first}") from None


PARAMS = load_params()
