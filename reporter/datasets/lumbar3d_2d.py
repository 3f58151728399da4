"""The lumbar3d-2d format: the lumbar3d folder (reporter.datasets.lumbar3d) read as one 2-D image
per volume, to measure the 2-D image path where the truth is known pixel by pixel.

Each volume's mid-sagittal slice (the middle index along voxel axis 2, left-right; axes 0 and 1
run superior -> inferior and anterior -> posterior, so the slice is already in the standard
display) is scaled to 8 bits by its 1st-99th percentiles, turned into one of the eight
orientations (reporter.ingest.image2d_nets.apply_orientation), drawn from the case id by
`orientation_of` so every run sees the same images, and read by
reporter.ingest.image2d.study_from_image exactly as a user's PNG would be: orientation detected,
pixel spacing withheld and estimated from anatomy. The truth is the slice of the label map in our
label convention (the volume's JSON map), on the slice before it was turned, with the true 1 mm
spacing (reporter.datasets.image_truth.ImageMask); the evaluation undoes the detected orientation
and the known one to compare the two. No findings (healthy volunteers without gradings).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from reporter.datasets.case import Case, CaseList
from reporter.datasets.image_truth import ImageMask
from reporter.datasets.lumbar3d import SEG_SUFFIX, stem_of
from reporter.errors import InputDataError, InputMissingError

# Salt of the per-case orientation draw; changing it changes every lumbar3d-2d number.
ORIENTATION_SALT = "spine-reporter-lumbar3d-2d-v1"
SPACING_MM = 1.0  # the lumbar3d volumes are resampled to 1 mm isotropic (README)


def orientation_of(case_id: str) -> int:
    """The orientation code (0..7) the case's slice is written in: a pure function of its id."""
    from reporter.ingest.image2d_nets import N_ORIENTATIONS

    digest = hashlib.sha256(f"{ORIENTATION_SALT}:{case_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % N_ORIENTATIONS


def to_8bit(img: np.ndarray) -> np.ndarray:
    """Robust 1st-99th percentile scaling to 0..255 (what an export to PNG would store)."""
    img = np.asarray(img, dtype=np.float64)
    lo, hi = np.percentile(img, [1.0, 99.0])
    if hi <= lo:
        hi = lo + 1.0
    return np.rint(np.clip((img - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.uint8)


def lumbar3d_2d_cases(root: Path) -> CaseList:
    segs = sorted(root.glob(f"*{SEG_SUFFIX}"))
    if not segs:
        raise InputMissingError(f"{root}: no <name>{SEG_SUFFIX} label maps (lumbar3d layout)")
    cases, warnings = [], []
    for seg in segs:
        stem = stem_of(seg)
        vol = root / f"{stem}.nii.gz"
        side = root / f"{stem}_seg.json"
        if not vol.is_file() or not side.is_file():
            missing = vol.name if not vol.is_file() else side.name
            warnings.append(f"{seg.name}: no {missing} beside it; volume skipped")
            continue
        code = orientation_of(stem)
        cases.append(
            Case(
                case_id=stem,
                # The same patient id as the 3-D format: a volume is in one split whatever its view.
                patient_id=f"lumbar3d-{stem}",
                fmt="lumbar3d-2d",
                source=vol,
                meta={"orientation_written": code, "seg_path": str(seg)},
                load_study=lambda vol=vol, side=side, code=code: _study(vol, side, code),
                load_image_truth=lambda seg=seg, vol=vol, side=side, code=code: _truth(
                    seg, vol, side, code
                ),
            )
        )
    return CaseList(cases, warnings)


def _mid(volume: np.ndarray, name: str) -> np.ndarray:
    if volume.ndim != 3:
        raise InputDataError(f"{name}: expected a 3-D volume, got shape {volume.shape}")
    return volume[:, :, volume.shape[2] // 2]


def _weighting(side: Path) -> str:
    import json

    contrast = str(json.loads(side.read_text("utf-8")).get("contrast", ""))
    return "T1" if "T1" in contrast else "T2"


def _study(vol: Path, side: Path, code: int) -> Any:
    import nibabel as nib

    from reporter.ingest.image2d import study_from_image
    from reporter.ingest.image2d_nets import apply_orientation

    try:
        data = np.asarray(nib.load(str(vol)).dataobj, dtype=np.float32)
    except Exception as exc:  # nibabel raises many types for damaged files
        raise InputDataError(f"{vol.name}: not a readable NIfTI volume ({exc})") from None
    written = apply_orientation(to_8bit(_mid(data, vol.name)), code)
    return study_from_image(
        written.astype(np.float32),
        source=f"{vol} (mid-sagittal slice, orientation {code})",
        kind="8-bit image",
        weighting=_weighting(side),
    )


def _truth(seg: Path, vol: Path, side: Path, code: int) -> ImageMask:
    import nibabel as nib

    from reporter.anatomy.importers import load_convention, read_label_file, translate

    volume = read_label_file(seg)
    try:
        shape = tuple(nib.load(str(vol)).shape)
    except Exception as exc:  # nibabel raises many types for damaged files
        raise InputDataError(f"{vol.name}: not a readable NIfTI volume ({exc})") from None
    if shape != volume.array.shape:
        # The mid slice of each must be the same slice.
        raise InputDataError(
            f"{seg.name}: shape {volume.array.shape} differs from {vol.name} {shape}"
        )
    ours, _ = translate(volume, load_convention(side))
    return ImageMask(
        mask=_mid(ours, seg.name).astype(np.int16),
        series_index=0,
        labels="named",
        orientation=code,
        spacing_mm=SPACING_MM,
        source=seg.name,
    )
