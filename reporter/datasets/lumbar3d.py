"""The lumbar3d layout (../shared/data/real/lumbar3d): ``<stem>.nii.gz`` + ``<stem>_seg.nii.gz``
+ ``<stem>_seg.json`` (label value -> level name, contrast). The volume is read by
reporter.ingest.nifti.load_nifti; the mask is imported by reporter.anatomy.import_label_map with
the JSON map. No findings (the volumes are healthy volunteers without gradings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reporter.datasets.case import Case
from reporter.errors import InputMissingError

SEG_SUFFIX = "_seg.nii.gz"


def stem_of(seg: Path) -> str:
    """``vb3_01_seg.nii.gz`` -> ``vb3_01``."""
    return seg.name[: -len(SEG_SUFFIX)]


def is_lumbar3d(path: Path) -> bool:
    return path.is_dir() and any(path.glob(f"*{SEG_SUFFIX}"))


def lumbar3d_cases(root: Path) -> list[Case]:
    segs = sorted(root.glob(f"*{SEG_SUFFIX}"))
    if not segs:
        raise InputMissingError(f"{root}: no <name>_seg.nii.gz label maps (lumbar3d layout)")
    cases = []
    for seg in segs:
        stem = stem_of(seg)
        vol = root / f"{stem}.nii.gz"
        if not vol.is_file():
            raise InputMissingError(f"{seg.name} has no image volume {vol.name} beside it")
        side = root / f"{stem}_seg.json"
        info: dict[str, Any] = json.loads(side.read_text("utf-8")) if side.is_file() else {}
        contrast = str(info.get("contrast", ""))
        weighting = "T1" if "T1" in contrast else "T2"
        cases.append(
            Case(
                case_id=stem,
                patient_id=f"lumbar3d-{stem}",
                fmt="lumbar3d",
                source=vol,
                meta={
                    "contrast": contrast,
                    "structures": info.get("structures", ""),
                    "labels": info.get("labels", {}),
                    "weighting": weighting,
                    "seg_path": str(seg),
                },
                load_study=lambda vol=vol, w=weighting: _load(vol, w),
                load_anatomy=lambda study, seg=seg: _anatomy(study, seg),
                load_findings=None,
            )
        )
    return cases


def _load(vol: Path, weighting: str) -> Any:
    from reporter.ingest.nifti import load_nifti

    study, _ = load_nifti(vol, weighting=weighting)  # type: ignore[arg-type]
    return study


def _anatomy(study: Any, seg: Path) -> Any:
    from reporter.anatomy import import_label_map

    return import_label_map(study, seg)
