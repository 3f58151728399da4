"""The RSNA 2024 Lumbar Spine Degenerative Classification layout: train.csv (one row per study),
train_series_descriptions.csv, train_label_coordinates.csv, train_images/<study>/<series>/*.dcm.

Labels convert through reporter.conversions.from_rsna_row. RSNA has no patient ids; each study
is one patient (``rsna-<study_id>``), which is how the challenge was split too."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Any

from reporter.datasets.case import Case
from reporter.errors import InputDataError, InputMissingError


def is_rsna2024(path: Path) -> bool:
    return (path / "train.csv").is_file() and (path / "train_images").is_dir()


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def rsna2024_cases(root: Path) -> list[Case]:
    if not is_rsna2024(root):
        raise InputMissingError(f"{root}: not an RSNA 2024 folder (train.csv, train_images/)")
    rows = _read_csv(root / "train.csv")
    if rows and "study_id" not in rows[0]:
        raise InputDataError(f"{root / 'train.csv'}: has no study_id column")
    series: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in _read_csv(root / "train_series_descriptions.csv"):
        series[r["study_id"]].append(
            {"series_id": r["series_id"], "description": r.get("series_description", "")}
        )
    coords: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in _read_csv(root / "train_label_coordinates.csv"):
        coords[r["study_id"]].append(r)
    cases = []
    for row in rows:
        sid = str(row["study_id"]).strip()
        folder = root / "train_images" / sid
        if not folder.is_dir():
            continue  # a labelled study whose images were not shipped
        cases.append(
            Case(
                case_id=sid,
                patient_id=f"rsna-{sid}",
                fmt="rsna2024",
                source=folder,
                meta={
                    "series_descriptions": series.get(sid, []),
                    "label_coordinates": coords.get(sid, []),
                },
                load_study=lambda folder=folder: _load(folder),
                load_findings=lambda row=row: _findings(row),
            )
        )
    return cases


def _load(folder: Path) -> Any:
    from reporter.ingest import load_study

    return load_study(folder)


def _findings(row: dict[str, str]) -> Any:
    from reporter.conversions import from_rsna_row

    return from_rsna_row(row)
