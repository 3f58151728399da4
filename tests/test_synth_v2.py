"""Phantom engine v2: seeded, every tissue class drawn, field of view independent of the levels,
written studies read by ingest and reported by the pipeline, and the CLI's --engine flag."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from reporter.cli.app import app
from reporter.synth.v2 import CLASS_NAMES, generate_study_v2
from reporter.synth.v2.acquisition import draw_acquisition
from reporter.synth.v2.params import CLASS_ID, load_params
from reporter.synth.v2.study import disc_positions

runner = CliRunner()
# Small, coarse images keep the suite fast; the engine's own ranges are exercised elsewhere.
SMALL = {"fov_si_mm": 300.0, "fov_ap_mm": 260.0, "pixel_mm": 1.6}


def test_same_seed_gives_the_same_phantom_and_another_seed_does_not() -> None:
    a = generate_study_v2(3, slices="mid", acquisition=SMALL)
    b = generate_study_v2(3, slices="mid", acquisition=SMALL)
    c = generate_study_v2(4, slices="mid", acquisition=SMALL)
    for sa, sb in zip(a.study.series, b.study.series, strict=True):
        assert np.array_equal(sa.pixels, sb.pixels)
    assert np.array_equal(a.anatomy.labels, b.anatomy.labels)
    assert a.findings.to_json() == b.findings.to_json()
    assert a.meta["acquisition"] == b.meta["acquisition"]
    assert a.meta["acquisition"] != c.meta["acquisition"]


def test_every_tissue_class_is_drawn_in_a_wide_stack() -> None:
    # Slices 0, +-8, +-16, +-24 mm off the midline reach pedicle screws, facet joints and psoas;
    # a post-operative study is the only one with metal.
    acq = {"fov_si_mm": 520.0, "fov_ap_mm": 460.0, "pixel_mm": 2.0, "centre_si_mm": -20.0,
           "posterior_margin_mm": 20.0, "n_slices": 7, "thickness_mm": 2.0, "gap_mm": 6.0,
           "lateral_jitter_mm": 0.0, "tilt_deg": 0.0}  # fmt: skip
    ph = generate_study_v2(11, slices="stack", acquisition=acq, postoperative=True)
    present = {CLASS_NAMES[int(c)] for c in np.unique(ph.tissue_map)}
    assert present == set(CLASS_NAMES), sorted(set(CLASS_NAMES) - present)
    names = set(ph.anatomy.vertebrae)
    assert {"L1", "L5", "S1", "T12"} <= names and "L4-L5" in ph.anatomy.levels


def test_field_of_view_is_drawn_before_and_apart_from_the_anatomy() -> None:
    # The acquisition comes from its own stream: a different patient (anatomy override) at the
    # same seed gets the same field of view.
    a = generate_study_v2(21, slices="mid", acquisition={"pixel_mm": 1.6}, n_lumbar=4)
    b = generate_study_v2(21, slices="mid", acquisition={"pixel_mm": 1.6}, n_lumbar=6)
    assert a.meta["acquisition"] == b.meta["acquisition"]
    assert a.anatomy.levels != b.anatomy.levels
    rng = np.random.default_rng(0)
    first = draw_acquisition(rng, "mid")
    assert draw_acquisition(np.random.default_rng(0), "mid") == first
    # Where the lumbosacral disc (the lowest) lands in the image spreads widely over seeds.
    rows = np.array([list(disc_positions(s).values())[-1][0] for s in range(40)])
    assert rows.std() > 0.12 and rows.max() - rows.min() > 0.5
    t12 = np.array([disc_positions(s)["T12-L1"][0] for s in range(40)])
    assert (t12 < 0).any() or (rows > 1).any()  # the FOV sometimes cuts the spine


def test_params_file_rejects_an_inverted_range() -> None:
    text = (Path(__file__).parents[1] / "reporter/synth/v2/params.json").read_text()
    doc = json.loads(text)
    doc["artefacts"]["snr"] = [40.0, 6.0]
    with pytest.raises(Exception, match="snr"):
        load_params(json.dumps(doc))
    assert CLASS_ID["air"] == 0


def test_cli_engine_v2_writes_a_study_that_ingest_reads_and_the_pipeline_reports(
    tmp_path: Path,
) -> None:
    res = runner.invoke(app, ["synth", "--engine", "v2", "--slices", "mid", "--out",
                              str(tmp_path / "ph"), "--n", "1", "--seed", "1000700"])  # fmt: skip
    assert res.exit_code == 0, res.output
    d = tmp_path / "ph" / "study_1000700"
    meta = json.loads((d / "meta.json").read_text())
    assert meta["engine"] == "v2" and (d / "labels" / "tissues_v2.nii.gz").is_file()
    from reporter.ingest import load_study

    study = load_study(d / "dicom")
    assert {s.weighting for s in study.series} == {"T1", "T2"}
    import reporter

    rep = reporter.report_study(d / "dicom", out_dir=tmp_path / "rep")
    assert rep is not None and (tmp_path / "rep" / "findings.json").is_file()


def test_cli_rejects_an_unknown_engine_with_exit_64(tmp_path: Path) -> None:
    res = runner.invoke(app, ["synth", "--engine", "v3", "--out", str(tmp_path)])
    assert res.exit_code == 64
    res = runner.invoke(app, ["synth", "--engine", "v2", "--format", "rsna2024",
                              "--out", str(tmp_path)])  # fmt: skip
    assert res.exit_code == 64
