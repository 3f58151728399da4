"""One loader API for every dataset format used by train, finetune and eval.

    from reporter.datasets import open_dataset
    ds = open_dataset("../shared/data/real/spider", "spider")
    for case in ds.split("test"):
        case.study, case.anatomy, case.findings, case.meta

Formats: ``phantom`` (folders written by reporter.synth.write_study), ``rsna2024``, ``spider``,
``lumbar3d`` (3-D volumes with per-level masks), and the 2-D sets read through the 2-D image
path (reporter.ingest.image2d), whose truth lies on the image's pixels (``case.image_truth``,
reporter.datasets.image_truth):

- ``lumbar3d-2d``: the lumbar3d folder, each volume's mid-sagittal slice as an 8-bit image in one
  of eight orientations drawn from the case id, pixel spacing withheld (lumbar3d_2d.py);
- ``sudirman``: mid-sagittal T1 + T2 PNGs per patient with disc boxes and Pfirrmann grades
  (sudirman.py);
- ``spider-slices``: SPIDER T2 SPACE sagittal slices with vertebra / disc / canal masks, one case
  per slice (spider_slices.py).

`fmt=None` detects the format from the folder's layout (a lumbar3d folder is read as
``lumbar3d``; ``lumbar3d-2d`` is asked for by name). The split of a case is decided by its
patient id only (reporter.datasets.splits).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reporter.datasets.case import Case, CaseList, Dataset
from reporter.datasets.lumbar3d import is_lumbar3d, lumbar3d_cases
from reporter.datasets.lumbar3d_2d import lumbar3d_2d_cases
from reporter.datasets.phantom import is_phantom_study, phantom_cases
from reporter.datasets.rsna2024 import is_rsna2024, rsna2024_cases
from reporter.datasets.spider import is_spider, spider_cases
from reporter.datasets.spider_slices import is_spider_slices, spider_slices_cases
from reporter.datasets.splits import SPLITS, Split, split_of
from reporter.datasets.sudirman import is_sudirman, sudirman_cases
from reporter.errors import InputMissingError, UsageError

FORMATS: dict[str, Callable[[Path], list[Case]]] = {
    "phantom": phantom_cases,
    "rsna2024": rsna2024_cases,
    "spider": spider_cases,
    "lumbar3d": lumbar3d_cases,
    "lumbar3d-2d": lumbar3d_2d_cases,
    "sudirman": sudirman_cases,
    "spider-slices": spider_slices_cases,
}


def detect_format(path: Path) -> str:
    """The format a folder is laid out in (UsageError when none fits)."""
    if is_sudirman(path):
        return "sudirman"
    if is_spider_slices(path):
        return "spider-slices"
    if is_spider(path):
        return "spider"
    if is_rsna2024(path):
        return "rsna2024"
    if is_lumbar3d(path):
        return "lumbar3d"
    if is_phantom_study(path) or any(p.is_dir() and is_phantom_study(p) for p in path.iterdir()):
        return "phantom"
    raise UsageError(f"cannot tell the dataset format of {path}; pass one of: {', '.join(FORMATS)}")


def open_dataset(path: Path | str, fmt: str | None = None) -> Dataset:
    """The cases of the dataset at `path` in format `fmt` (None: detect from the layout)."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise InputMissingError(f"no such dataset folder: {root}")
    fmt = fmt or detect_format(root)
    if fmt not in FORMATS:
        raise UsageError(f"unknown dataset format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    cases = FORMATS[fmt](root)
    if not cases:
        raise InputMissingError(f"{root}: no cases found in the {fmt} layout")
    return Dataset(fmt, root, cases)


__all__ = [
    "FORMATS",
    "SPLITS",
    "Case",
    "CaseList",
    "Dataset",
    "Split",
    "detect_format",
    "open_dataset",
    "split_of",
]
