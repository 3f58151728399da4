"""Real images never end in an internal error: numerical steps that failed on real SPIDER slices
are guarded where they are, and an unexpected row of a dataset file is a warning, not the end of
an evaluation."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from reporter.anatomy.naming import name_instances, spine_axis
from reporter.datasets import open_dataset
from reporter.errors import InputDataError

SPIDER = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "spider"
# SPIDER slices on which the naming's SVD failed ("SVD did not converge", exit 70): an empty
# lumbosacral disc carved on a single slice gave a NaN centroid.
CRASHED = ("108_t2.png", "121_t2.png", "127_t2.png")


def test_spine_axis_ignores_points_that_are_not_finite() -> None:
    pts = [np.array([0.0, 0.0, z]) for z in (0.0, 30.0, 60.0)] + [np.full(3, np.nan)]
    np.testing.assert_allclose(spine_axis(pts), [0.0, 0.0, 1.0])
    np.testing.assert_allclose(spine_axis([np.full(3, np.nan)] * 3), [0.0, 0.0, 1.0])


def test_an_empty_instance_mask_is_left_out_of_the_naming() -> None:
    shape = (1, 120, 40)
    # (slice, row, column) -> LPS: slices along x, rows run inferior, columns posterior
    affine = np.array([[4.0, 0, 0, 0], [0, 0, 1.0, 0], [0, -1.0, 0, 0], [0, 0, 0, 1.0]])
    vertebrae = []
    for top in (10, 40, 70):
        m = np.zeros(shape, bool)
        m[0, top : top + 20, 5:35] = True
        vertebrae.append(m)
    sacrum = np.zeros(shape, bool)
    sacrum[0, 100:118, 5:35] = True
    empty = np.zeros(shape, bool)
    labels, naming = name_instances(vertebrae, [empty], sacrum, affine)
    expected, _ = name_instances(vertebrae, [], sacrum, affine)
    np.testing.assert_array_equal(labels, expected)
    assert {"L3", "L4", "L5"} <= set(naming.vertebrae)


def _spider_like(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "7_t2.png").write_bytes(b"")  # never read: only the index is
    header = [
        "Patient", "IVD label", "Modic", "UP endplate", "LOW endplate", "Spondylolisthesis",
        "Disc herniation", "Disc narrowing", "Disc bulging", "Pfirrman grade",
    ]  # fmt: skip
    rows = [
        ["7", "1", "0", "0", "0", "0", "0", "0", "1", "3"],
        ["7", "0", "0", "0", "0", "0", "0", "0", "0", "2"],  # IVD label 0: not a disc
        ["7", "2", "0", "0", "0", "0", "0", "0", "0", ""],  # grade missing
        ["7", "3", "1", "0", "0", "0", "0", "0", "0", "4"],
    ]
    with (tmp_path / "radiological_gradings.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    return tmp_path


def test_unexpected_grading_rows_are_skipped_with_a_warning_naming_file_and_line(
    tmp_path: Path,
) -> None:
    dataset = open_dataset(_spider_like(tmp_path), "spider")
    assert len(dataset.warnings) == 2
    assert dataset.warnings[0].startswith("radiological_gradings.csv line 3: ")
    assert "IVD label" in dataset.warnings[0] and "row skipped" in dataset.warnings[0]
    assert dataset.warnings[1].startswith("radiological_gradings.csv line 4: ")
    findings = dataset["7"].findings
    assert findings is not None
    assert [lf.level for lf in findings.levels] == ["L3-L4", "L5-S1"]


@pytest.mark.real
@pytest.mark.slow
@pytest.mark.skipif(
    not all((SPIDER / "images" / n).is_file() for n in CRASHED),
    reason="../shared/data/real/spider is not available",
)
@pytest.mark.parametrize("name", CRASHED)
def test_real_spider_slices_that_crashed_give_levels_or_one_clear_error(name: str) -> None:
    import reporter

    try:
        report = reporter.report_study(SPIDER / "images" / name)
    except InputDataError:
        return  # a clear refusal (exit 65) is allowed; an internal error is not
    assert report.raw_findings.levels
