"""The SPIDER slices layout (../shared/data/real/spider_slices):
images/<patient>_t2_SPACE_slice<NN>.png (sagittal slices of SPIDER T2 SPACE volumes, 8-bit, no
pixel spacing) and masks/<same name> (8-bit labels: 0 background, 1 vertebra, 2 intervertebral
disc, 3 spinal canal; no level names).

Each slice is one case (patient id ``spider-<patient>``, so a patient lands in the same split as
in the SPIDER format), read through reporter.ingest.image2d.load_image2d as a user's PNG would be:
the images are stored in the standard display, but the orientation is detected, not given. The
truth is the mask on the image's own pixels (reporter.datasets.image_truth.ImageMask, "classes").
Licence: CC BY 4.0, SPIDER (van der Graaf et al., Scientific Data 2024), 2-D masks derived by the
public repository istiak769/Lumbar-Spine-MRI-Segementation.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from reporter.datasets.case import Case, CaseList
from reporter.datasets.image_truth import CLASS_VALUES, ImageMask
from reporter.errors import InputDataError, InputMissingError

_NAME = re.compile(r"^(?P<patient>[^_]+)_(?P<series>t1|t2|t2_SPACE)_slice(?P<slice>\d+)$")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
SERIES_WEIGHTING = {"t1": "T1", "t2": "T2", "t2_SPACE": "T2"}


def is_spider_slices(path: Path) -> bool:
    return (path / "images").is_dir() and (path / "masks").is_dir()


def spider_slices_cases(root: Path) -> CaseList:
    images, masks = root / "images", root / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise InputMissingError(f"{root}: no images/ and masks/ folders (SPIDER slices layout)")
    warnings: list[str] = []
    mask_names = {p.name for p in masks.iterdir()}
    cases = []
    for p in sorted(images.iterdir()):
        m = _NAME.match(p.stem)
        if m is None or p.suffix.lower() not in IMAGE_SUFFIXES:
            warnings.append(f"images/{p.name}: not <patient>_t2_SPACE_slice<NN>.png; file skipped")
            continue
        if p.name not in mask_names:
            warnings.append(f"images/{p.name}: no masks/{p.name}; slice skipped")
            continue
        mask = masks / p.name
        cases.append(
            Case(
                case_id=p.stem,
                patient_id=f"spider-{m['patient']}",
                fmt="spider-slices",
                source=p,
                meta={"patient": m["patient"], "slice": int(m["slice"]), "mask": str(mask)},
                load_study=lambda p=p, s=m["series"]: _load(p, SERIES_WEIGHTING[s]),
                load_image_truth=lambda mask=mask: _truth(mask),
            )
        )
    for name in sorted(mask_names - {p.name for p in images.iterdir()}):
        warnings.append(f"masks/{name}: no images/{name}; mask skipped")
    return CaseList(cases, warnings)


def _load(path: Path, weighting: str) -> Any:
    from reporter.ingest.image2d import load_image2d

    return load_image2d(path, weighting=weighting)


def _truth(mask_path: Path) -> ImageMask:
    """The mask alone (not its image: a slice whose image cannot be read still has its discs
    counted, as not detected); that it matches the image's size is checked when scoring."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(mask_path) as im:
            mask = np.asarray(im)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputDataError(f"masks/{mask_path.name}: not a readable mask ({exc})") from None
    if mask.ndim != 2:
        raise InputDataError(f"masks/{mask_path.name}: shape {mask.shape} is not one 2-D mask")
    values = {int(v) for v in np.unique(mask)}
    if not values <= {0, *CLASS_VALUES.values()}:
        raise InputDataError(
            f"masks/{mask_path.name}: values {sorted(values)}; expected 0 background, "
            "1 vertebra, 2 disc, 3 canal"
        )
    return ImageMask(
        mask=mask.astype(np.int16), series_index=0, labels="classes", source=mask_path.name
    )
