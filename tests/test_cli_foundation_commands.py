"""`spine-report --version | schema | inspect | doctor` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dicom_factory import (
    SeriesSpec,
    StudyInfo,
    lumbar_specs,
    series_datasets,
    write_datasets,
    write_series,
    write_study,
)
from typer.testing import CliRunner

from reporter import __version__
from reporter.cli import app
from reporter.contracts.findings import json_schema

runner = CliRunner()

JSON_KEYS = {"series_uid", "plane", "weighting", "n_slices", "role", "usable", "problem"}


def test_version_prints_the_package_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.stdout


def test_schema_prints_the_versioned_json_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == json.loads(json.dumps(json_schema()))


def test_inspect_json_lists_every_series_with_its_use(tmp_path: Path) -> None:
    info = StudyInfo()
    write_study(tmp_path, lumbar_specs(), info)
    loc = SeriesSpec("sagittal", n_slices=2, series_number=1,
                     image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))  # fmt: skip
    write_series(loc, tmp_path / "loc", info)
    result = runner.invoke(app, ["inspect", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert all(set(r) >= JSON_KEYS for r in rows)
    roles = [(r["role"], r["usable"]) for r in rows]
    assert roles.count(("ax_t2", True)) == 3
    assert ("sag_t1", True) in roles and ("sag_t2", True) in roles
    localizer = next(r for r in rows if r["series_uid"] == loc.series_uid)
    assert localizer["usable"] is False and localizer["problem"] == "localizer"


def test_inspect_table_names_planes_and_roles(tmp_path: Path) -> None:
    write_study(tmp_path, lumbar_specs())
    result = runner.invoke(app, ["inspect", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for word in ("t2_tse_sag", "sagittal", "sag_t2", "ax_t2", "axial"):
        assert word in result.stdout


def test_inspect_refuses_a_folder_without_mr_with_exit_65(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images")
    result = runner.invoke(app, ["inspect", str(tmp_path)])
    assert result.exit_code == 65
    assert "no MR images" in " ".join(result.stderr.split())


def test_inspect_refuses_a_study_without_usable_sagittal_with_exit_65(tmp_path: Path) -> None:
    info = StudyInfo()
    write_series(SeriesSpec("axial"), tmp_path / "ax", info)
    datasets = series_datasets(SeriesSpec("sagittal", n_slices=6), info)
    del datasets[3]
    write_datasets(datasets, tmp_path / "sag")
    result = runner.invoke(app, ["inspect", str(tmp_path), "--json"])
    assert result.exit_code == 65
    message = " ".join(result.stderr.split())  # rich may wrap the one line at 80 columns
    assert "no usable sagittal" in message and "slice spacing" in message
    rows = json.loads(result.stdout)  # the inventory is still printed for machines
    assert any(not r["usable"] and "spacing" in r["problem"] for r in rows)


def test_inspect_refuses_two_studies_with_exit_65_unless_one_is_chosen(tmp_path: Path) -> None:
    chosen = StudyInfo()
    write_series(SeriesSpec("sagittal"), tmp_path / "a", StudyInfo())
    write_series(SeriesSpec("sagittal"), tmp_path / "b", chosen)
    result = runner.invoke(app, ["inspect", str(tmp_path)])
    assert result.exit_code == 65 and "2 MR studies" in " ".join(result.stderr.split())
    result = runner.invoke(app, ["inspect", str(tmp_path), "--study-uid", chosen.study_uid])
    assert result.exit_code == 0, result.output


def test_inspect_of_a_missing_path_exits_66(tmp_path: Path) -> None:
    result = runner.invoke(app, ["inspect", str(tmp_path / "nowhere")])
    assert result.exit_code == 66
    assert result.stderr.startswith("spine-report: error:")
    # one message (rich may still wrap it at the console width; see reporter.cli.app.fail)
    assert "no such file or folder" in result.stderr


@pytest.mark.parametrize(
    "uid",
    [
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.5",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.90",
    ],
)
def test_doctor_lists_a_decoder_per_transfer_syntax(uid: str) -> None:
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    row = next(r for r in report["decoders"] if r["transfer_syntax_uid"] == uid)
    assert row["available"] is True and row["plugins"]
    assert report["versions"]["pydicom"]


def test_doctor_table_runs() -> None:
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0 and "JPEG-LS Lossless" in result.stdout
