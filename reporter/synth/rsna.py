"""Writer for the RSNA 2024 Lumbar Spine Degenerative Classification layout, so loaders for the
public format can be exercised on phantoms: train.csv, train_series_descriptions.csv,
train_label_coordinates.csv and train_images/<study_id>/<series_id>/<instance>.dcm."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from reporter.synth.instances import dicom_datasets
from reporter.synth.phantom import Phantom

RSNA_LEVELS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
CONDITIONS = (
    ("spinal_canal_stenosis", "Spinal Canal Stenosis", "canal_stenosis", "canal", "sag_t2"),
    ("left_neural_foraminal_narrowing", "Left Neural Foraminal Narrowing",
     "foraminal_stenosis_left", "foramen_left", "sag_t1"),
    ("right_neural_foraminal_narrowing", "Right Neural Foraminal Narrowing",
     "foraminal_stenosis_right", "foramen_right", "sag_t1"),
    ("left_subarticular_stenosis", "Left Subarticular Stenosis", "subarticular_stenosis_left",
     "subarticular_left", "ax_t2"),
    ("right_subarticular_stenosis", "Right Subarticular Stenosis", "subarticular_stenosis_right",
     "subarticular_right", "ax_t2"),
)  # fmt: skip
DESCRIPTIONS = {"sag_t1": "Sagittal T1", "sag_t2": "Sagittal T2/STIR", "ax_t2": "Axial T2"}
CSV_FILES = ("train.csv", "train_series_descriptions.csv", "train_label_coordinates.csv")


def _int_id(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def rsna_label(value: Any) -> str:
    """Our grade -> the RSNA three-class label (Lee 0-1 and none/mild are Normal/Mild)."""
    if value in ("none", "mild", 0, 1):
        return "Normal/Mild"
    if value in ("moderate", 2):
        return "Moderate"
    return "Severe"


def _rsna_level(level: str, lumbosacral: str) -> str | None:
    """The RSNA level a disc is reported under: the lumbosacral disc is always l5_s1."""
    if level == lumbosacral:
        return "L5-S1"
    return level if level in RSNA_LEVELS else None


def rsna_rows(phantom: Phantom) -> dict[str, list[dict[str, Any]]]:
    study_id = _int_id(phantom.study.study_uid)
    findings = {lf.level: lf for lf in phantom.findings.levels}
    lumbosacral = next(lv for lv in findings if lv.endswith("-S1"))
    train: dict[str, Any] = {"study_id": study_id}
    for key, *_ in CONDITIONS:
        for lv in RSNA_LEVELS:
            train[f"{key}_{lv.lower().replace('-', '_')}"] = ""
    coords = []
    lm = phantom.meta.get("landmarks", {})
    for level, lf in findings.items():
        rl = _rsna_level(level, lumbosacral)
        if rl is None:
            continue
        for key, name, field, point, role in CONDITIONS:
            f = getattr(lf, field)
            if not f.assessed:
                continue
            train[f"{key}_{rl.lower().replace('-', '_')}"] = rsna_label(f.value)
            p = lm.get(level, {}).get(point)
            hit = _locate(phantom, role, p) if p is not None else None
            if hit is None:
                continue
            series_uid, instance, x, y = hit
            coords.append(
                {
                    "study_id": study_id,
                    "series_id": _int_id(series_uid),
                    "instance_number": instance,
                    "condition": name,
                    "level": rl.replace("-", "/"),
                    "x": round(x, 3),
                    "y": round(y, 3),
                }
            )
    series_rows, seen = [], set()
    for s in phantom.study.series:
        if s.series_uid in seen:
            continue
        seen.add(s.series_uid)
        series_rows.append(
            {
                "study_id": study_id,
                "series_id": _int_id(s.series_uid),
                "series_description": DESCRIPTIONS.get(s.role, s.description),
            }
        )
    return {"train.csv": [train], "train_series_descriptions.csv": series_rows,
            "train_label_coordinates.csv": coords}  # fmt: skip


def _locate(phantom: Phantom, role: str, lps: list[float]) -> tuple[str, int, float, float] | None:
    """Nearest slice of the `role` series holding the point, and its (x = column, y = row)."""
    best = None
    for s in phantom.study.all(role):  # type: ignore[arg-type]
        k, j, i = s.lps_to_index(np.asarray(lps, dtype=float))
        nk, nj, ni = s.shape
        if not (-0.5 <= k <= nk - 0.5 and 0 <= j <= nj - 1 and 0 <= i <= ni - 1):
            continue
        kk = int(np.clip(round(k), 0, nk - 1))
        dist = abs(k - kk)
        if best is None or dist < best[0]:
            inst = int(s.headers[kk].InstanceNumber)
            best = (dist, (s.series_uid, inst, float(i), float(j)))
    return None if best is None else best[1]


def write_rsna_images(phantom: Phantom, root: Path) -> None:
    study_id = _int_id(phantom.study.study_uid)
    for s in phantom.study.series:
        folder = root / "train_images" / str(study_id) / str(_int_id(s.series_uid))
        folder.mkdir(parents=True, exist_ok=True)
        for ds in dicom_datasets(s):
            ds.save_as(folder / f"{int(ds.InstanceNumber)}.dcm", enforce_file_format=True)


def write_rsna_csvs(root: Path, rows: list[dict[str, list[dict[str, Any]]]]) -> None:
    """Merge per-study rows into the three CSV files (replacing rows of the same studies)."""
    new_ids = {r["train.csv"][0]["study_id"] for r in rows}
    for name in CSV_FILES:
        path = root / name
        existing: list[dict[str, Any]] = []
        if path.is_file():
            with path.open(newline="", encoding="utf-8") as fh:
                existing = [r for r in csv.DictReader(fh) if int(r["study_id"]) not in new_ids]
        merged = existing + [row for r in rows for row in r[name]]
        if not merged:
            continue
        merged.sort(key=lambda r: (int(r["study_id"]), *[str(v) for v in r.values()]))
        fields = list(rows[0][name][0].keys()) if rows and rows[0][name] else list(merged[0].keys())
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
            w.writeheader()
            w.writerows(merged)


def write_rsna_study(phantom: Phantom, root: Path) -> Path:
    write_rsna_images(phantom, root)
    write_rsna_csvs(root, [rsna_rows(phantom)])
    return root
