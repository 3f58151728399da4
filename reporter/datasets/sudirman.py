"""The Sudirman layout (../shared/data/real/sudirman_sagittal): images/<patient>_<t1|t2>.png (one
mid-sagittal slice per series, 8-bit, no pixel spacing; a second or third T2 series is
``<patient>_t2_2.png``), boxes.csv (``image, class, x0, y0, x1, y1`` in pixels, origin top-left,
y down), pfirrmann.csv (``patient, level, grade``: L3-L4, L4-L5, L5-S1) and images.csv (not
needed here).

Each patient is one case (patient id ``sudirman-<patient>``); its Study holds the T2 image, then
the T1 image, each read through reporter.ingest.image2d exactly as a user's PNG would be and merged
as the SPIDER reader does (image2d.merge_studies). Further T2 series of a patient (6 patients) are
not read. Truth: the Pfirrmann grades (reporter.conversions.from_pfirrmann_grades) and the disc
boxes of the T2 image, or of the T1 image when the T2 image has none
(reporter.datasets.image_truth.DiscBoxes).

Disc boxes are the classes Normal IVD, DDD, LDB and TDB; SS (a box in the canal) and
Spondylolisthesis boxes are not discs and are left out. Where one disc carries two boxes (58
images: DDD with LDB or TDB) they are merged into one group: two disc boxes of an image belong to
one disc when their intersection over union is at least `SAME_DISC_IOU` (such pairs overlap at
IoU >= 0.5 in this set; boxes of neighbouring discs touch at IoU < 0.2). A group is the box
enclosing its boxes; groups are ordered cranio-caudally by vertical centre (y0 + y1) / 2.

Research use; cite Sudirman et al., Mendeley Data 2019 (doi 10.17632/k57fr854j2), and the
annotations of Masood, Taj et al. (YOLOspine; doi 10.17632/9j9hmy8kbn.1).
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from reporter.datasets.case import Case, CaseList
from reporter.datasets.image_truth import Box, DiscBoxes
from reporter.errors import InputMissingError

_NAME = re.compile(r"^(?P<patient>[0-9A-Za-z-]+)_(?P<series>t1|t2(?:_(?P<n>\d+))?)$")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
# Class -> whether it is a disc box. The CSV spells classes out ("Lumbar Disc Bulge (LDB)");
# the short forms are accepted too.
CLASSES: dict[str, bool] = {
    "Normal IVD": True,
    "DDD": True,
    "LDB": True,
    "TDB": True,
    "SS": False,
    "Spondylolisthesis": False,
}
SAME_DISC_IOU = 0.3
GRADED_LEVELS: tuple[str, ...] = ("L3-L4", "L4-L5", "L5-S1")


def is_sudirman(path: Path) -> bool:
    return (
        (path / "images").is_dir()
        and (path / "boxes.csv").is_file()
        and (path / "pfirrmann.csv").is_file()
    )


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def class_key(text: str) -> str | None:
    """ "Lumbar Disc Bulge (LDB)" -> "LDB"; a class this reader does not know -> None."""
    text = text.strip()
    m = re.search(r"\(([^()]+)\)\s*$", text)
    key = m.group(1).strip() if m else text
    return key if key in CLASSES else None


def sudirman_cases(root: Path) -> CaseList:
    images = root / "images"
    if not images.is_dir():
        raise InputMissingError(f"{root}: no images/ folder (Sudirman layout)")
    warnings: list[str] = []
    by_patient: dict[str, dict[str, Path]] = defaultdict(dict)
    for p in sorted(images.iterdir()):
        m = _NAME.match(p.stem)
        if m is None or p.suffix.lower() not in IMAGE_SUFFIXES:
            warnings.append(f"images/{p.name}: not <patient>_<t1|t2>.png; file skipped")
            continue
        by_patient[m["patient"]][m["series"]] = p
    boxes = _disc_boxes(
        root / "boxes.csv", {p.name for s in by_patient.values() for p in s.values()}, warnings
    )
    grades = _grades(root / "pfirrmann.csv", warnings)
    for patient in sorted(set(grades) - set(by_patient), key=_order):
        warnings.append(f"pfirrmann.csv: patient {patient} has grades but no image; skipped")
    cases = []
    for patient in sorted(by_patient, key=_order):
        series = by_patient[patient]
        t2 = sorted((s for s in series if s.startswith("t2")), key=lambda s: (len(s), s))
        order = ([t2[0]] if t2 else []) + (["t1"] if "t1" in series else [])
        if not order:  # only extra T2 series, which are not read
            warnings.append(f"images: patient {patient} has no <patient>_t1 or _t2 image; skipped")
            continue
        paths = [series[s] for s in order]
        # The T2 image's boxes; the T1 image's when the T2 image has none.
        box_index = next((i for i, p in enumerate(paths) if boxes.get(p.name)), None)
        truth = (
            DiscBoxes(
                groups=group_disc_boxes(boxes[paths[box_index].name]),
                series_index=box_index,
                image=paths[box_index].name,
            )
            if box_index is not None
            else None
        )
        patient_grades = grades.get(patient, {})
        if truth is None and not patient_grades:
            warnings.append(f"images: patient {patient} has neither disc boxes nor grades; skipped")
            continue
        cases.append(
            Case(
                case_id=patient,
                patient_id=f"sudirman-{patient}",
                fmt="sudirman",
                source=root,
                meta={
                    "images": {s: str(series[s]) for s in order},
                    "unused_series": sorted(set(series) - set(order)),
                    "box_image": truth.image if truth is not None else None,
                    "site": "sudirman",
                },
                load_study=lambda order=order, paths=paths, patient=patient: _load(
                    order, paths, patient
                ),
                load_findings=(lambda g=patient_grades: _findings(g)) if patient_grades else None,
                load_image_truth=(lambda t=truth: t) if truth is not None else None,
            )
        )
    return CaseList(cases, warnings)


def _order(patient: str) -> tuple[int, str]:
    return (len(patient), patient)


def _disc_boxes(path: Path, image_names: set[str], warnings: list[str]) -> dict[str, list[Box]]:
    """Disc boxes by image name; each bad row and each image not in images/ gets one warning."""
    out: dict[str, list[Box]] = defaultdict(list)
    absent: dict[str, list[int]] = defaultdict(list)
    for line, r in enumerate(_rows(path), start=2):  # line 1 is the header
        name = str(r.get("image") or "").strip()
        key = class_key(str(r.get("class") or ""))
        try:
            x0, y0, x1, y1 = (float(str(r[k])) for k in ("x0", "y0", "x1", "y1"))
        except (KeyError, TypeError, ValueError):
            warnings.append(f"{path.name} line {line}: coordinates are not numbers; row skipped")
            continue
        if not name or key is None:
            warnings.append(
                f"{path.name} line {line}: no image or unknown class {r.get('class')!r}; "
                "row skipped"
            )
            continue
        if not (x1 > x0 and y1 > y0):
            warnings.append(f"{path.name} line {line}: an empty box; row skipped")
            continue
        if name not in image_names:
            absent[name].append(line)
            continue
        if CLASSES[key]:
            out[name].append((x0, y0, x1, y1))
    for name, lines in absent.items():
        warnings.append(
            f"{path.name} lines {lines[0]}-{lines[-1]}: image {name} is not in images/; "
            f"its {len(lines)} boxes skipped"
        )
    return out


def _grades(path: Path, warnings: list[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for line, r in enumerate(_rows(path), start=2):
        patient = str(r.get("patient") or "").strip()
        level = str(r.get("level") or "").strip()
        try:
            grade = int(str(r.get("grade") or "").strip())
        except ValueError:
            grade = 0
        if not patient or level not in GRADED_LEVELS or not 1 <= grade <= 5:
            warnings.append(
                f"{path.name} line {line}: expected a patient, a level of "
                f"{', '.join(GRADED_LEVELS)} and a grade 1-5; row skipped"
            )
            continue
        if level in out[patient]:
            warnings.append(
                f"{path.name} line {line}: a second grade for {patient} {level}; row skipped"
            )
            continue
        out[patient][level] = grade
    return out


def _iou(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def group_disc_boxes(boxes: list[Box]) -> list[Box]:
    """One enclosing box per disc (boxes overlapping at IoU >= SAME_DISC_IOU are one disc,
    transitively), ordered cranio-caudally by vertical centre."""
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            if _iou(boxes[i], boxes[j]) >= SAME_DISC_IOU:
                parent[root(j)] = root(i)
    members: dict[int, list[Box]] = defaultdict(list)
    for i, b in enumerate(boxes):
        members[root(i)].append(b)
    groups = [
        (
            min(b[0] for b in g),
            min(b[1] for b in g),
            max(b[2] for b in g),
            max(b[3] for b in g),
        )
        for g in members.values()
    ]
    return sorted(groups, key=lambda b: (b[1] + b[3]) / 2)


def _load(order: list[str], paths: list[Path], patient: str) -> Any:
    from pydicom.uid import generate_uid

    from reporter.ingest.image2d import load_image2d, merge_studies

    # T2 first: as for SPIDER, the reference series of a case is its T2 image when there is one.
    studies = [
        load_image2d(p, weighting="T1" if s == "t1" else "T2")
        for s, p in zip(order, paths, strict=True)
    ]
    return merge_studies(studies, study_uid=generate_uid(entropy_srcs=["sudirman", patient]))


def _findings(grades: dict[str, int]) -> Any:
    from reporter.conversions import from_pfirrmann_grades

    return from_pfirrmann_grades(grades)
