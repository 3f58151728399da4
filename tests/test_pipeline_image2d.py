"""A single real 2-D sagittal image (SPIDER PNG) reports end to end, with its geometry stated."""

from __future__ import annotations

from pathlib import Path

import pytest

from reporter.pipeline import report_study

SPIDER_IMAGE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "real"
    / "spider"
    / "images"
    / "104_t2.png"
)


@pytest.mark.real
@pytest.mark.skipif(not SPIDER_IMAGE.exists(), reason="../shared/data/real/spider is absent")
def test_png_report_states_orientation_and_spacing_and_never_grades_foramina(tmp_path):
    report = report_study(SPIDER_IMAGE, out_dir=tmp_path)
    text = (tmp_path / "report.txt").read_text()
    assert "orientation" in text and "pixel spacing" in text
    for lf in report.findings.levels:
        for field in (
            "foraminal_stenosis_left",
            "foraminal_stenosis_right",
            "subarticular_stenosis_left",
            "subarticular_stenosis_right",
        ):
            assert getattr(lf, field).not_assessable, (lf.level, field)
    assert not (tmp_path / "report.sr.dcm").exists()
