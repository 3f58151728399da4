"""`Case` and `Dataset`: what every loader yields, whatever the folder format.

A case is loaded lazily: iterating a dataset of 2,000 studies reads nothing but the index files;
`case.study`, `case.anatomy` and `case.findings` are read (once) when first asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from reporter.contracts.anatomy import Anatomy
from reporter.contracts.findings import StudyFindings
from reporter.contracts.study import Study
from reporter.datasets.splits import Split, split_of


@dataclass
class Case:
    """One study of a dataset with whatever ground truth the format carries.

    `meta` holds format-specific facts that are not part of the Study: ``site``, ``sex``, ``age``,
    for SPIDER the raw per-disc gradings (``meta["gradings"][level]``) and the scanner's pixel
    spacing (``meta["pixel_spacing_mm"][series]``, for checking the estimate, never fed to models),
    for phantoms the generator's meta.json.

    `image_truth` is truth drawn on the pixels of one input image rather than on the study's
    grid (2-D masks, disc boxes; reporter.datasets.image_truth), for formats fed through the
    2-D image path, whose study grid is only known once the image has been read.
    """

    case_id: str
    patient_id: str
    fmt: str
    source: Path
    meta: dict[str, Any] = field(default_factory=dict)
    load_study: Callable[[], Study] = field(repr=False, default=None)  # type: ignore[assignment]
    load_anatomy: Callable[[Study], Anatomy | None] | None = field(repr=False, default=None)
    load_findings: Callable[[], StudyFindings | None] | None = field(repr=False, default=None)
    load_image_truth: Callable[[], Any] | None = field(repr=False, default=None)

    @property
    def split(self) -> Split:
        return split_of(self.patient_id)

    @cached_property
    def study(self) -> Study:
        return self.load_study()

    @cached_property
    def anatomy(self) -> Anatomy | None:
        """Ground-truth anatomy when the format has a label map, else None."""
        return None if self.load_anatomy is None else self.load_anatomy(self.study)

    @cached_property
    def findings(self) -> StudyFindings | None:
        """Ground-truth findings converted to our schema, else None."""
        return None if self.load_findings is None else self.load_findings()

    @cached_property
    def image_truth(self) -> Any:
        """Truth on an input image's pixels (reporter.datasets.image_truth), else None."""
        return None if self.load_image_truth is None else self.load_image_truth()


class CaseList(list[Case]):
    """A loader's cases, with one warning per row or file of the folder that made no case (a box
    row naming an image that is not there, an image without its mask), naming file and row."""

    def __init__(self, cases: Iterable[Case] = (), warnings: Iterable[str] = ()) -> None:
        super().__init__(cases)
        self.warnings = list(warnings)


class Dataset:
    """An ordered, indexable collection of cases of one format."""

    def __init__(self, fmt: str, root: Path, cases: list[Case]) -> None:
        self.fmt = fmt
        self.root = root
        self._cases = list(cases)
        self._by_id = {c.case_id: c for c in cases}
        if len(self._by_id) != len(cases):
            raise ValueError(f"dataset {root} has duplicate case ids")
        # Rows of the dataset's files that were skipped, each naming its file and line: those of
        # the folder that made no case first, then each case's own.
        folder = cases.warnings if isinstance(cases, CaseList) else []
        self.warnings: list[str] = [
            *folder,
            *(w for c in cases for w in c.meta.get("data_warnings", [])),
        ]

    def __iter__(self) -> Iterator[Case]:
        return iter(self._cases)

    def __len__(self) -> int:
        return len(self._cases)

    def __getitem__(self, key: int | str) -> Case:
        if isinstance(key, int):
            return self._cases[key]
        return self._by_id[key]

    def __repr__(self) -> str:
        return f"Dataset(fmt={self.fmt!r}, root={str(self.root)!r}, n={len(self)})"

    @property
    def case_ids(self) -> list[str]:
        return [c.case_id for c in self._cases]

    @property
    def patient_ids(self) -> list[str]:
        return sorted({c.patient_id for c in self._cases})

    def split(self, *names: Split) -> Dataset:
        """The cases whose patient falls in any of `names` (see reporter.datasets.splits)."""
        return self.filter(lambda c: c.split in names)

    def filter(self, keep: Callable[[Case], bool]) -> Dataset:
        return Dataset(self.fmt, self.root, [c for c in self._cases if keep(c)])
