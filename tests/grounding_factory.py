"""Small hand-built inputs for the anatomy and grounding tests (no phantom engine needed)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from reporter.contracts import labels as L
from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import LEVEL_FIELDS, TYPICAL_NORMAL, StudyFindings, lumbar_levels
from reporter.contracts.study import Series, Study
from reporter.contracts.verdicts import Measurement

NORMAL: dict[str, Any] = TYPICAL_NORMAL


def findings(n_lumbar: int = 5, levels: dict[str, dict[str, Any]] | None = None) -> StudyFindings:
    """Truth-like findings (no probabilities): every level normal unless `levels` says else."""
    out = []
    for lv in lumbar_levels(n_lumbar):
        vals = {**NORMAL, **(levels or {}).get(lv, {})}
        entry: dict[str, Any] = {"level": lv}
        for f in LEVEL_FIELDS:
            v = vals[f]
            entry[f] = v if isinstance(v, dict) else {"value": v}
        out.append(entry)
    transitional = {4: "sacralized_L5", 6: "L6"}.get(n_lumbar, "none")
    return StudyFindings.model_validate(
        {
            "study": {
                "lumbar_vertebrae": n_lumbar,
                "transitional": {"value": transitional},
                "alignment": {"value": "normal"},
            },
            "levels": out,
        }
    )


def sagittal_series(
    shape: tuple[int, int, int] = (9, 120, 80),
    spacing=(4.0, 1.0, 1.0),
    uid: str = "1.2.826.0.1.1",
    role: str = "sag_t2",
) -> Series:
    """Sagittal grid: slices step left (+x), rows run inferior (-z), columns posterior (+y)."""
    aff = np.eye(4)
    aff[:3, 0] = [spacing[0], 0, 0]
    aff[:3, 1] = [0, 0, -spacing[1]]
    aff[:3, 2] = [0, spacing[2], 0]
    aff[:3, 3] = [-spacing[0] * (shape[0] - 1) / 2, -40.0, 60.0]
    return Series(
        series_uid=uid,
        study_uid="1.2.826.0.1",
        plane="sagittal",
        weighting="T2" if role == "sag_t2" else "T1",
        role=role,  # type: ignore[arg-type]
        pixels=np.zeros(shape, np.float32),
        affine=aff,
    )


def spine_labels(
    shape: tuple[int, int, int],
    names: list[str],
    body_rows: int = 14,
    disc_rows: int = 5,
    top: int = 4,
) -> np.ndarray:
    """Boxes stacked head-to-foot on every slice: vertebral bodies and the discs between them
    (rows = superior->inferior), canal behind them."""
    lab = np.zeros(shape, np.int16)
    r = top
    for n, name in enumerate(names):
        lab[:, r : r + body_rows, 20:50] = L.vertebra_label(name)
        r += body_rows
        if n + 1 < len(names):
            lab[:, r : r + disc_rows, 21:49] = L.disc_label(f"{name}-{names[n + 1]}")
            r += disc_rows
    lab[2:7, top:r, 52:66] = L.CANAL
    return lab


def study_with(series: list[Series]) -> Study:
    return Study(study_uid="1.2.826.0.1", series=series)


def anatomy_for(
    series: Series, labels: np.ndarray, names: list[str], n_lumbar: int = 5, uncertain: bool = False
) -> Anatomy:
    levels = [f"{a}-{b}" for a, b in itertools.pairwise(names)]
    return Anatomy(
        reference_series_uid=series.series_uid,
        labels=labels,
        affine=series.affine,
        source="ground_truth",
        vertebrae=names,
        levels=levels,
        lumbar_vertebrae=n_lumbar,
        transitional={4: "sacralized_L5", 6: "L6"}.get(n_lumbar, "none"),
        naming_uncertain=uncertain,
    )


def measures_normal(level: str) -> dict[str, Measurement]:
    """Measurements of a healthy level, in the names `reporter.grounding.measure` produces."""
    vals = {
        "canal_ap_mm": 15.0,
        "dural_sac_area_mm2": 160.0,
        "disc_height_index": 1.0,
        "disc_csf_t2_ratio": 0.7,
        "posterior_extension_mm": 0.5,
        "herniation_base_mm": 0.0,
        "herniation_circumference_deg": 0.0,
        "herniation_lateral_mm": 0.0,
        "slip_percent": 1.0,
        "lateral_recess_depth_mm_left": 6.5,
        "lateral_recess_depth_mm_right": 6.5,
        "root_area_ratio_left": 1.0,
        "root_area_ratio_right": 1.0,
    }
    for side in ("upper", "lower"):
        vals[f"modic_t1_ratio_{side}"] = 1.0
        vals[f"modic_t2_ratio_{side}"] = 1.0
    for s in ("cranial", "caudal", "anterior", "posterior"):
        for side in ("left", "right"):
            vals[f"foraminal_fat_{s}_{side}"] = 0.9
    return {
        k: Measurement(
            name=k,
            value=v,
            level=level,
            series_uid="1.2.826.0.1.1",
            slice_index=4,
            position_lps=[0.0, 0.0, 0.0],
        )
        for k, v in vals.items()
    }
