"""DICOMweb against a real PACS: Orthanc (Debian `orthanc` + `orthanc-dicomweb`) started by the
test on a loopback port with a temporary configuration and storage (tests/orthanc_server.py).

Pull and report by URL, push the SR and SEG back (then found in Orthanc by QIDO-RS, fetched by
WADO-RS, dciodvfy-clean, in the source study), credentials from the environment and a netrc
file, and watch mode across a SIGKILL. One phantom study (seed 5, site-a) is made per session;
the watch test re-labels it into two studies. Skipped when Orthanc is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from typer.testing import CliRunner

from reporter.cli import app
from reporter.dicomweb import (
    connection,
    fetch_study,
    parse_server_url,
    parse_study_url,
    push_outputs,
    search_mr_studies,
)
from reporter.errors import EXIT_NOPERM
from reporter.watch import STATE_FILE
from tests.orthanc_server import Orthanc, missing_reason, running_orthanc

pytestmark = pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason()))

SEED, SITE = 5, "site-a"  # as `spine-report synth --out S --n 1 --site site-a --seed 5`


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (connection.TOKEN_ENV, connection.USER_ENV, connection.PASSWORD_ENV):
        monkeypatch.delenv(name, raising=False)
    for name in (connection.NETRC_ENV, connection.INSECURE_ENV):
        monkeypatch.delenv(name, raising=False)
    # An empty netrc instead of the machine's ~/.netrc (HOME stays: the watch subprocesses
    # would rebuild their font and model caches in a new one).
    empty = tmp_path / "empty-netrc"
    empty.write_text("")
    monkeypatch.setenv("NETRC", str(empty))


@pytest.fixture(scope="session")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    from reporter.synth import generate_study, write_study

    ph = generate_study(SEED, site=SITE)
    return ph, write_study(ph, tmp_path_factory.mktemp("phantom") / "study")


@pytest.fixture(scope="module")
def pacs(
    tmp_path_factory: pytest.TempPathFactory, phantom: tuple[Any, Path]
) -> Iterator[tuple[Orthanc, str]]:
    with running_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        (study_uid,) = server.upload(phantom[1] / "dicom")
        yield server, study_uid


def _client(server: Orthanc) -> Any:
    return connection.connect(parse_server_url(server.dicomweb))


def _instances(server: Orthanc, study_uid: str, modality: str) -> list[str]:
    found = _client(server).search_for_instances(
        study_uid, search_filters={"Modality": modality}, fields=["SOPInstanceUID"]
    )
    return sorted(str(item["00080018"]["Value"][0]) for item in found)


def _dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    proc = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=120)
    lines = (proc.stdout + proc.stderr).splitlines()
    return [x for x in lines if x.startswith("Error")], [
        x for x in lines if x.startswith("Warning")
    ]


def _leftover_temp() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("spine-report-dicomweb-*")}


def test_report_study_by_url_pulls_the_mr_series_and_keeps_no_copy(
    pacs: tuple[Orthanc, str], phantom: tuple[Any, Path], tmp_path: Path
) -> None:
    import reporter

    server, study_uid = pacs
    before = _leftover_temp()
    # The phantom's truth stands in for the VLM and its label map for the segmenter: this test
    # is about the way in, and takes seconds.
    report = reporter.report_study(
        server.study_url(study_uid),
        out_dir=tmp_path / "out",
        seg=phantom[1] / "seg.dcm",
        findings=phantom[0].findings,
    )
    assert _leftover_temp() == before
    sr = pydicom.dcmread(report.outputs["sr"])
    assert sr.StudyInstanceUID == study_uid
    assert report.provenance.study_uid == study_uid
    assert report.provenance.input_series_uids  # the pulled MR series were read
    n = fetch_study(parse_study_url(server.study_url(study_uid)), tmp_path / "pulled")
    assert n == len(list((phantom[1] / "dicom").rglob("*.dcm")))


@pytest.mark.slow
def test_report_push_stores_sr_and_seg_in_the_source_study_dciodvfy_clean(
    pacs: tuple[Orthanc, str], phantom: tuple[Any, Path], tmp_path: Path
) -> None:
    server, study_uid = pacs
    out = tmp_path / "out"
    args = ["report", server.study_url(study_uid), "--out", str(out), "--push"]
    result = CliRunner().invoke(app, [*args, "--seg", str(phantom[1] / "seg.dcm")])
    assert result.exit_code == 0, result.output
    local_sr = pydicom.dcmread(out / "report.sr.dcm")
    local_seg = pydicom.dcmread(out / "seg.dcm")

    # QIDO-RS finds them in the source study; WADO-RS returns the same objects.
    assert _instances(server, study_uid, "SR") == [local_sr.SOPInstanceUID]
    assert _instances(server, study_uid, "SEG") == [local_seg.SOPInstanceUID]
    client = _client(server)
    stored = client.retrieve_instance(
        study_uid, local_sr.SeriesInstanceUID, local_sr.SOPInstanceUID
    )
    assert stored.StudyInstanceUID == study_uid
    evidence = stored.CurrentRequestedProcedureEvidenceSequence
    assert {item.StudyInstanceUID for item in evidence} == {study_uid}
    mr = set(_instances(server, study_uid, "MR"))
    cited = {
        sop.ReferencedSOPInstanceUID
        for item in evidence
        for series in item.ReferencedSeriesSequence
        for sop in series.ReferencedSOPSequence
    }
    assert cited & mr, "the SR's evidence names none of the study's MR images"

    path = tmp_path / "from-orthanc.sr.dcm"
    stored.save_as(path, enforce_file_format=True)
    errors, warnings = _dciodvfy(path)
    assert errors == []
    assert all("99SPREP" in w for w in warnings), warnings

    # Pushing the same report again keeps one copy: its SOP Instance UIDs do not change.
    push_outputs(parse_server_url(server.dicomweb), out, study_uid=study_uid)
    assert _instances(server, study_uid, "SR") == [local_sr.SOPInstanceUID]
    assert _instances(server, study_uid, "SEG") == [local_seg.SOPInstanceUID]


def test_credentials_from_the_environment_or_a_netrc_file(
    tmp_path: Path, phantom: tuple[Any, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_orthanc(tmp_path / "orthanc", users={"alice": "s3cret-pw"}) as server:
        (study_uid,) = server.upload(phantom[1] / "dicom")
        where = parse_server_url(server.dicomweb)

        out = tmp_path / "w"
        refused = CliRunner().invoke(
            app, ["watch", "--dicomweb", server.dicomweb, "--out", str(out), "--once"]
        )
        assert refused.exit_code == EXIT_NOPERM
        assert refused.output.strip().splitlines()[-1].startswith("spine-report: error:")
        assert "refused access" in refused.output

        monkeypatch.setenv(connection.USER_ENV, "alice")
        monkeypatch.setenv(connection.PASSWORD_ENV, "s3cret-pw")
        assert [s.study_uid for s in search_mr_studies(where)] == [study_uid]

        monkeypatch.delenv(connection.USER_ENV)
        monkeypatch.delenv(connection.PASSWORD_ENV)
        netrc = tmp_path / "netrc"
        netrc.write_text("machine 127.0.0.1 login alice password s3cret-pw\n")
        monkeypatch.setenv(connection.NETRC_ENV, str(netrc))
        n = fetch_study(parse_study_url(server.study_url(study_uid)), tmp_path / "pulled")
        assert n > 0
        assert "s3cret" not in (tmp_path / "orthanc" / "orthanc.log").read_text()


# --- watch --------------------------------------------------------------------------------------
def _relabel(src: Path, dest: Path, tag: str) -> Path:
    """A copy of the study under new UIDs (derived from the old ones and `tag`): another study."""
    from pydicom.uid import generate_uid

    for path in sorted(src.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        for kw in (
            "StudyInstanceUID",
            "SeriesInstanceUID",
            "SOPInstanceUID",
            "FrameOfReferenceUID",
        ):
            if kw in ds:
                setattr(ds, kw, generate_uid(entropy_srcs=[str(getattr(ds, kw)), tag]))
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        target = dest / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target, enforce_file_format=True)
    return dest


def _watch_cmd(server: Orthanc, out: Path) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from reporter.cli import main; main()",
        "watch",
        "--dicomweb",
        server.dicomweb,
        "--out",
        str(out),
        "--once",
        "--push",
        "--interval",
        "0.5",
    ]


def _statuses(out: Path) -> dict[str, str]:
    try:
        studies = json.loads((out / STATE_FILE).read_text())["studies"]
    except (OSError, ValueError, KeyError):
        return {}
    return {uid: st["status"] for uid, st in studies.items()}


@pytest.mark.slow
def test_watch_reports_each_study_once_across_a_sigkill_and_restarts(
    tmp_path: Path, phantom: tuple[Any, Path]
) -> None:
    with running_orthanc(tmp_path / "orthanc") as server:
        uids = set()
        for tag in ("first", "second"):
            uids |= server.upload(_relabel(phantom[1] / "dicom", tmp_path / tag, tag))
        assert len(uids) == 2
        out = tmp_path / "out"

        # Run 1, killed (with its workers, as a power cut would) once one study is reported
        # and the other is in progress.
        proc = subprocess.Popen(
            _watch_cmd(server, out),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                seen = sorted(_statuses(out).values())
                if "in_progress" in seen and ({"reported", "done"} & set(seen)):
                    break
                assert proc.poll() is None, f"watch ended before the kill: {seen}"
                time.sleep(0.05)
            else:
                pytest.fail("no study was reported within 300 s")
            os.killpg(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

        # Run 2: the reported study is kept (and pushed), the interrupted one redone once.
        rerun = subprocess.run(_watch_cmd(server, out), capture_output=True, text=True, timeout=400)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        state = json.loads((out / STATE_FILE).read_text())["studies"]
        assert set(state) == uids
        assert {st["status"] for st in state.values()} == {"done"}
        assert sorted(st["interruptions"] for st in state.values()) == [0, 1]
        folders = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
        assert folders == sorted([STATE_FILE, *(st["item_id"] for st in state.values())])
        assert not (out / ".incoming").exists()
        assert not [p for p in out.iterdir() if p.name.startswith((".staging-", ".tmp-"))]
        for uid, st in state.items():  # one SR and one SEG per study: the pushed ones
            stored = _instances(server, uid, "SR") + _instances(server, uid, "SEG")
            assert len(stored) == 2 and sorted(stored) == sorted(st["pushed"])

        # Run 3: nothing new, nothing reported again.
        third = subprocess.run(_watch_cmd(server, out), capture_output=True, text=True, timeout=120)
        assert third.returncode == 0, third.stderr[-2000:]
        assert "0 reported" in third.stdout
        assert json.loads((out / STATE_FILE).read_text())["studies"].keys() == state.keys()
