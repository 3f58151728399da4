"""Which finding fields a study's series can support, and why not when they cannot.

One table, `FIELD_VIEWS`, says what each LevelFindings field needs to be seen; the VLM, the
pipeline and the evaluation use `unassessable_fields(study)` to turn the rest into
`not_assessable` with the reason, so a single mid-sagittal image never yields a foraminal or
subarticular grade.
"""

from __future__ import annotations

from dataclasses import dataclass

from reporter.contracts.findings import LEVEL_FIELDS
from reporter.contracts.study import Series, Study

# Left-right coverage a sagittal stack needs before the neural foramina (about 15-25 mm from
# the midline on each side) are inside it.
FORAMINA_COVERAGE_MM = 40.0


@dataclass(frozen=True)
class ViewNeed:
    """What a field needs: any of `any_of`, and all of `all_of` (view names below)."""

    any_of: tuple[str, ...]
    all_of: tuple[str, ...] = ()
    why: str = ""


# View names: "sagittal" (any sagittal image), "sag_t2" (T2-weighted or STIR sagittal),
# "sag_t1" (T1-weighted sagittal), "sag_stack" (sagittal slices covering both foramina),
# "axial" (axial images through the discs).
FIELD_VIEWS: dict[str, ViewNeed] = {
    "pfirrmann": ViewNeed(("sag_t2",), why="Pfirrmann grading is defined on T2-weighted images"),
    "disc_narrowing": ViewNeed(("sagittal",)),
    "disc_bulging": ViewNeed(("sagittal", "axial")),
    "herniation": ViewNeed(("sagittal", "axial")),
    "canal_stenosis": ViewNeed(("sagittal", "axial")),
    "foraminal_stenosis_left": ViewNeed(
        ("sag_stack", "axial"), why="the foramina lie outside a mid-sagittal slice"
    ),
    "foraminal_stenosis_right": ViewNeed(
        ("sag_stack", "axial"), why="the foramina lie outside a mid-sagittal slice"
    ),
    "subarticular_stenosis_left": ViewNeed(
        ("axial",), why="subarticular recesses are graded on axial images"
    ),
    "subarticular_stenosis_right": ViewNeed(
        ("axial",), why="subarticular recesses are graded on axial images"
    ),
    "modic_upper": ViewNeed(
        ("sag_t1",), ("sag_t1", "sag_t2"), why="Modic typing needs both T1 and T2 images"
    ),
    "modic_lower": ViewNeed(
        ("sag_t1",), ("sag_t1", "sag_t2"), why="Modic typing needs both T1 and T2 images"
    ),
    "endplate_defect_upper": ViewNeed(("sagittal",)),
    "endplate_defect_lower": ViewNeed(("sagittal",)),
    "spondylolisthesis": ViewNeed(("sagittal",)),
}
assert set(FIELD_VIEWS) == set(LEVEL_FIELDS), "every schema field needs an entry"

_VIEW_WORDS = {
    "sagittal": "a sagittal series",
    "sag_t2": "a sagittal T2-weighted series",
    "sag_t1": "a sagittal T1-weighted series",
    "sag_stack": f"sagittal slices covering the foramina (>= {FORAMINA_COVERAGE_MM:.0f} mm)",
    "axial": "an axial series",
}


def _lr_coverage_mm(series: Series) -> float:
    n = series.shape[0]
    step = series.spacing[0]
    return n * step if n > 1 else 0.0


def available_views(study: Study) -> set[str]:
    views: set[str] = set()
    for s in study.series:
        if s.plane == "sagittal":
            views.add("sagittal")
            if s.weighting in ("T2", "STIR"):
                views.add("sag_t2")
            if s.weighting == "T1":
                views.add("sag_t1")
            if _lr_coverage_mm(s) >= FORAMINA_COVERAGE_MM:
                views.add("sag_stack")
        elif s.plane == "axial":
            views.add("axial")
    return views


def unassessable_fields(study: Study) -> dict[str, str]:
    """{field: reason} for every LevelFindings field this study cannot support."""
    have = available_views(study)
    out: dict[str, str] = {}
    for field, need in FIELD_VIEWS.items():
        missing_all = [v for v in need.all_of if v not in have]
        if missing_all or not any(v in have for v in need.any_of):
            wanted = missing_all or list(need.any_of)
            reason = "needs " + " or ".join(_VIEW_WORDS[v] for v in wanted)
            if need.all_of and missing_all:
                reason = "needs " + " and ".join(_VIEW_WORDS[v] for v in need.all_of)
            if need.why:
                reason += f" ({need.why})"
            out[field] = reason
    return out
