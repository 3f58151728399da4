"""The SPIDER layout (../shared/data/real/spider): images/<patient>_<t1|t2|t2_SPACE>.png (one
mid-sagittal slice per series, no pixel spacing, orientation not guaranteed),
radiological_gradings.csv (per patient and disc; IVD label 1 = L5-S1 counting cranially) and
overview.csv (per series: sex, vendor, field strength, pixel spacing, ...).

Each patient is one case; its Study holds one single-slice sagittal series per image, each read
through reporter.ingest.image2d exactly as a user's PNG would be (orientation detected, spacing
estimated from anatomy). The scanner's PixelSpacing from overview.csv is kept in
``meta["pixel_spacing_mm"]`` for checking that estimate; it is never given to the models.
Findings convert through reporter.conversions.from_spider_rows. Licence: CC BY 4.0,
van der Graaf et al., Scientific Data 2024.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from reporter.datasets.case import Case
from reporter.errors import InputDataError, InputMissingError

SERIES_WEIGHTING = {"t1": "T1", "t2": "T2", "t2_SPACE": "T2"}
_NAME = re.compile(r"^(?P<patient>[^_]+)_(?P<series>t1|t2|t2_SPACE)$")


def is_spider(path: Path) -> bool:
    return (path / "images").is_dir() and (
        (path / "radiological_gradings.csv").is_file() or (path / "overview.csv").is_file()
    )


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def _spacing(text: str) -> float | None:
    parts = [p for p in re.split(r"[\[\]\(\),\\\s]+", text) if p]
    try:
        return float(parts[0]) if parts else None
    except ValueError:
        return None


def spider_cases(root: Path) -> list[Case]:
    images = root / "images"
    if not images.is_dir():
        raise InputMissingError(f"{root}: no images/ folder (SPIDER layout)")
    by_patient: dict[str, dict[str, Path]] = defaultdict(dict)
    for p in sorted(images.iterdir()):
        m = _NAME.match(p.stem)
        if m and p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
            by_patient[m["patient"]][m["series"]] = p
    gradings, skipped = _valid_gradings(root / "radiological_gradings.csv")
    overview = {
        r["new_file_name"]: r for r in _read_csv(root / "overview.csv") if "new_file_name" in r
    }
    cases = []
    for patient in sorted(by_patient, key=lambda s: (len(s), s)):
        series = by_patient[patient]
        rows = gradings.get(patient, [])
        meta: dict[str, Any] = {"images": {k: str(v) for k, v in series.items()}}
        ov = [overview[f"{patient}_{s}"] for s in series if f"{patient}_{s}" in overview]
        if ov:
            meta["sex"] = ov[0].get("sex", "").strip() or None
            meta["vendor"] = ov[0].get("Manufacturer", "").strip()
            meta["field_strength"] = ov[0].get("MagneticFieldStrength", "").strip()
            meta["site"] = meta["vendor"] or "unknown"
            meta["num_discs"] = ov[0].get("num_discs")
        meta["pixel_spacing_mm"] = {
            s: _spacing(overview[f"{patient}_{s}"].get("PixelSpacing", ""))
            for s in series
            if f"{patient}_{s}" in overview
        }
        meta["gradings"] = _raw_gradings(rows)
        if skipped.get(patient):
            meta["data_warnings"] = skipped[patient]
        cases.append(
            Case(
                case_id=patient,
                patient_id=f"spider-{patient}",
                fmt="spider",
                source=root,
                meta=meta,
                load_study=lambda series=series, patient=patient: _load(series, patient),
                load_findings=(lambda rows=rows: _findings(rows)) if rows else None,
            )
        )
    return cases


def _valid_gradings(
    path: Path,
) -> tuple[dict[str, list[dict[str, str]]], dict[str, list[str]]]:
    """Grading rows by patient, and the rows skipped (by patient) with a warning naming the file,
    the line and why: one unexpected row (an `IVD label` outside 1-9, a missing grade) never
    loses a run or the patient's other discs."""
    from reporter.conversions import from_spider_row

    gradings: dict[str, list[dict[str, str]]] = defaultdict(list)
    skipped: dict[str, list[str]] = defaultdict(list)
    for line, r in enumerate(_read_csv(path), start=2):  # line 1 is the header
        if "Patient" not in r:
            raise InputDataError(f"{path}: no Patient column")
        patient = str(r["Patient"]).strip()
        try:
            from_spider_row(r)
        except ValueError as exc:
            skipped[patient].append(f"{path.name} line {line}: {exc}; row skipped")
            continue
        gradings[patient].append(r)
    return gradings, skipped


def _raw_gradings(rows: list[dict[str, str]]) -> dict[str, dict[str, int]]:
    from reporter.conversions import SPIDER_LEVELS

    out = {}
    for r in rows:
        try:
            level = SPIDER_LEVELS[int(r["IVD label"])]
            out[level] = {k: int(v) for k, v in r.items() if k not in ("Patient", "IVD label")}
        except (KeyError, ValueError):
            continue
    return out


def _load(series: dict[str, Path], patient: str) -> Any:
    from reporter.ingest.image2d import load_image2d, merge_studies

    # T2 first: the reference series of a SPIDER case is its T2 image when there is one.
    order = [s for s in ("t2", "t2_SPACE", "t1") if s in series]
    studies = [load_image2d(series[s], weighting=SERIES_WEIGHTING[s]) for s in order]
    from pydicom.uid import generate_uid

    return merge_studies(studies, study_uid=generate_uid(entropy_srcs=["spider", patient]))


def _findings(rows: list[dict[str, str]]) -> Any:
    from reporter.conversions import from_spider_rows

    return from_spider_rows(rows)
