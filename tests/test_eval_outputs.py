"""What an evaluation run writes (metrics, records, summary, plots) and the CLI errors."""

from __future__ import annotations

import json

from eval_factory import example_record
from typer.testing import CliRunner

from reporter.cli import app
from reporter.evaluation.harness import iter_records, write_outputs
from reporter.evaluation.scoring import CONDITIONS, compute_metrics


def test_a_run_writes_metrics_records_summary_and_plots(tmp_path):
    records = [example_record("s1", "site-a", "F", 55), example_record("s2", "site-c", "M", 71)]
    metrics = compute_metrics(records, peak_rss_mb=100.0)
    run = {"benchmark": "unit", "command": "spine-report eval", "commit": "abc", "wall_s": 1.0}
    write_outputs(tmp_path, metrics, records, run)

    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["n_studies"] == 2
    assert set(written["by_site"]) == {"site-a", "site-c"}
    assert set(written["by_age"]) == {"40-59", "60-79"}
    back = list(iter_records(tmp_path / "studies.jsonl"))
    assert [r.case_id for r in back] == ["s1", "s2"]
    assert compute_metrics(back, 100.0) == written  # records are enough to recompute

    summary = (tmp_path / "summary.md").read_text()
    assert "RSNA 2024 weighted log loss" in summary and "NOT met" in summary
    plots = {p.name for p in (tmp_path / "plots").iterdir()}
    assert {"reliability.png", "by_site.png", "confusion_canal_stenosis.png"} <= plots
    for name in plots:
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(CONDITIONS) <= set(written["conditions"])


def test_eval_rejects_an_unknown_benchmark_with_exit_64(tmp_path):
    res = CliRunner().invoke(app, ["eval", "--benchmark", "nope", "--out", str(tmp_path)])
    assert res.exit_code == 64
    assert "unknown benchmark" in res.output


def test_eval_rejects_benchmark_and_data_together_with_exit_64(tmp_path):
    res = CliRunner().invoke(
        app, ["eval", "--benchmark", "phantom-v1", "--data", str(tmp_path), "--out", str(tmp_path)]
    )
    assert res.exit_code == 64


def test_eval_of_a_missing_data_folder_exits_66(tmp_path):
    res = CliRunner().invoke(
        app, ["eval", "--data", str(tmp_path / "absent"), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 66


def test_eval_rejects_an_unknown_format_with_exit_64(tmp_path):
    res = CliRunner().invoke(
        app, ["eval", "--data", str(tmp_path), "--format", "xyz", "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 64
