"""Anatomy: segmentation of a study (built-in segmenter or an imported label map) and level naming.

`segment(study)` runs the built-in segmenter; `segment(study, seg_path=...)` imports a NIfTI or
DICOM SEG label map made by another tool, translates its label convention into ours
(`reporter.contracts.labels`), resamples it into the study's reference grid and names the levels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reporter.anatomy.importers import (
    ORDINAL_VERTEBRA_BASE,
    Convention,
    load_convention,
    read_label_file,
    reference_series,
    resample_nearest,
    sidecar_json,
    stack_key,
    translate,
)
from reporter.anatomy.naming import Naming, name_labels, resolve_ordinals
from reporter.contracts import labels
from reporter.contracts.anatomy import Anatomy
from reporter.contracts.study import Study
from reporter.errors import ModelFileError

__all__ = ["Anatomy", "import_label_map", "labels", "segment"]


def segment(
    study: Study,
    seg_path: str | Path | None = None,
    model: Any = None,
    convention: str | Path | None = None,
) -> Anatomy:
    """Anatomy of `study`: from the label map at `seg_path` if given, else the built-in segmenter.

    `convention` names the label convention of an imported map (`spider`, `totalspineseg`,
    `totalsegmentator`, `spine_reporter` or a JSON map file); by default a JSON map beside the
    file is used, then DICOM SEG segment labels, then the values the map holds.
    """
    if seg_path is not None:
        return import_label_map(study, seg_path, convention=convention)
    try:
        from reporter.anatomy.segmenter import segment_study
    except ModuleNotFoundError as exc:
        if exc.name != "reporter.anatomy.segmenter":
            raise
        raise ModelFileError(
            "the built-in segmenter is not part of this build (reporter.anatomy.segmenter is "
            "missing); pass a label map with --seg"
        ) from None
    return segment_study(study) if model is None else segment_study(study, model)


def import_label_map(
    study: Study, seg_path: str | Path, convention: str | Path | Convention | None = None
) -> Anatomy:
    """Import a NIfTI / DICOM SEG label map into `study`'s reference geometry, levels named."""
    path = Path(seg_path)
    volume = read_label_file(path)
    conv: Convention | None
    if isinstance(convention, Convention):
        conv = convention
    elif convention is not None:
        conv = load_convention(convention)
    elif (side := sidecar_json(path)) is not None:
        conv = load_convention(side)
    else:
        conv = None
    ours, conv_name = translate(volume, conv)
    has_ordinals = bool((ours >= ORDINAL_VERTEBRA_BASE).any())
    if has_ordinals:
        ours = resolve_ordinals(ours)
    ours = ours.astype(np.int16)
    ref = reference_series(study)
    on_ref = resample_nearest(ours, volume.affine, ref.shape, ref.affine)
    names_from = (
        f"counted upward from the lumbosacral junction as numbered in the {conv_name} map"
        if has_ordinals
        else f"names as labelled in {path.name} ({conv_name})"
    )
    naming = name_labels(on_ref, ref.affine, names_from)
    extra: dict[str, np.ndarray] = {}
    for series in study.series:
        if series is ref or series.role not in ("sag_t1", "ax_t2", "sag_stir", "ax_t1"):
            continue
        extra[stack_key(series)] = resample_nearest(
            ours, volume.affine, series.shape, series.affine
        )
    return _anatomy(
        ref.series_uid,
        ref.stack_index,
        on_ref,
        ref.affine,
        naming,
        source="dicom_seg" if volume.segment_names else "nifti",
        detail=f"{path.name} ({conv_name})",
        extra=extra,
    )


def _anatomy(
    uid: str,
    stack_index: int,
    label_map: np.ndarray,
    affine: np.ndarray,
    naming: Naming,
    source: str,
    detail: str,
    extra: dict[str, np.ndarray],
) -> Anatomy:
    return Anatomy(
        reference_series_uid=uid,
        reference_stack_index=stack_index,
        labels=label_map,
        affine=np.asarray(affine, dtype=float),
        source=source,  # type: ignore[arg-type]
        source_detail=detail,
        vertebrae=naming.vertebrae,
        levels=naming.levels,
        lumbar_vertebrae=naming.lumbar_vertebrae,
        transitional=naming.transitional,
        enumeration_confidence=naming.confidence,
        naming_uncertain=naming.naming_uncertain,
        naming_convention=naming.convention,
        missing=naming.missing,
        extra_labels=extra,
    )
