"""The harness end to end: real phantoms through the real pipeline (default model, segmenter)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from reporter.cli import app
from reporter.errors import ReporterError


def _pipeline_or_skip() -> None:
    from reporter.pipeline import get_model

    try:
        get_model()
        from reporter.anatomy import segmenter  # noqa: F401
    except (ReporterError, ImportError) as exc:
        pytest.skip(f"pipeline weights not in this checkout: {exc}")


@pytest.mark.slow
def test_eval_runs_a_benchmark_through_the_pipeline(tmp_path):
    _pipeline_or_skip()
    out = tmp_path / "eval"
    res = CliRunner().invoke(
        app, ["eval", "--benchmark", "phantom-smoke", "--limit", "2", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_studies"] == 2
    assert metrics["n_failed"] == 0, (out / "summary.md").read_text()
    assert metrics["schema_valid_rate"] == 1.0
    assert metrics["conditions"]["canal_stenosis"]["n"] > 0
    assert metrics["injected"]["n_planted"] > 0
    assert metrics["latency_s_per_study"]["median"] > 0
    run = json.loads((out / "run.json").read_text())
    assert run["benchmark"] == "phantom-smoke" and run["limit"] == 2
    assert (out / "plots" / "reliability.png").exists()


@pytest.mark.slow
def test_eval_takes_a_users_labeled_phantom_folder(tmp_path):
    _pipeline_or_skip()
    from reporter.synth import generate_study, write_study

    data = tmp_path / "data"
    write_study(generate_study(1_950_000, site="site-c"), data / "case1")
    out = tmp_path / "eval"
    res = CliRunner().invoke(
        app, ["eval", "--data", str(data), "--format", "phantom", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_studies"] == 1 and metrics["n_failed"] == 0
    assert metrics["level_naming_accuracy"] is not None
