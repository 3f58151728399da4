"""Batch worklists: parsing, isolation of failures, timeouts, resume, and kill-then-resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest

from reporter.errors import InputMissingError, UsageError
from reporter.render.outputs import FILES
from reporter.render.seg import build_seg
from reporter.worklist import (
    MANIFEST,
    PRIORITY_WORDS,
    exit_code,
    item_id,
    read_manifest,
    read_worklist,
    run_batch,
)
from tests.report_factory import make_study, write_study_dicom


# --- parsing (no workers) ------------------------------------------------------------------------
def test_csv_worklist_resolves_relative_paths_and_orders_fields(tmp_path: Path) -> None:
    (tmp_path / "wl.csv").write_text(
        "study,accession,priority,indication\na/dicom,A1,stat,pain\nb,,,\n"
    )
    items = read_worklist(tmp_path / "wl.csv")
    assert [it.study for it in items] == [str(tmp_path / "a/dicom"), str(tmp_path / "b")]
    assert items[0].priority == PRIORITY_WORDS["stat"] and items[0].indication == "pain"
    assert items[1].accession is None and items[1].priority == PRIORITY_WORDS["routine"]
    # Named by a hash, never by the folder (folder names often carry a patient's name).
    assert items[0].item_id.startswith("study-") and "dicom" not in items[0].item_id


def test_jsonl_worklist_is_read_line_by_line(tmp_path: Path) -> None:
    (tmp_path / "wl.jsonl").write_text(
        json.dumps({"study": "/x/s1", "priority": 3}) + "\n\n" + json.dumps({"study": "s2"}) + "\n"
    )
    items = read_worklist(tmp_path / "wl.jsonl")
    assert [it.row for it in items] == [1, 2] and items[0].priority == 3


def test_folder_worklist_takes_each_subfolder_as_a_study(tmp_path: Path) -> None:
    for name in ("s2", "s1", ".hidden"):
        (tmp_path / name).mkdir()
    assert [Path(it.study).name for it in read_worklist(tmp_path)] == ["s1", "s2"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("path_to_nowhere,accession\n", "needs a 'study' column"),
        ("study,priority\ns1,whenever\n", "priority 'whenever'"),
        ("study\n", "has no items"),
    ],
)
def test_bad_csv_worklist_is_a_usage_error(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "wl.csv").write_text(content)
    with pytest.raises(UsageError, match=message):
        read_worklist(tmp_path / "wl.csv")


def test_bad_jsonl_line_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "wl.jsonl").write_text('{"study": "a"}\n{not json}\n')
    with pytest.raises(UsageError, match=r"wl.jsonl:2"):
        read_worklist(tmp_path / "wl.jsonl")


def test_missing_worklist_is_input_missing(tmp_path: Path) -> None:
    with pytest.raises(InputMissingError):
        read_worklist(tmp_path / "nope.csv")


def test_item_id_is_stable_and_distinguishes_accessions() -> None:
    assert item_id("/d/s1", "A") == item_id("/d/s1", "A")
    assert item_id("/d/s1", "A") != item_id("/d/s1", "B")


# --- running (worker processes, the real pipeline on small studies) -------------------------------
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model folder with random weights: the test is about batching, not accuracy."""
    import torch

    from reporter.vlm.inference import new_model, save_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("vlm")
    save_model(new_model(), folder)
    return folder


def _studies(root: Path, n: int) -> list[str]:
    rows = []
    for i in range(n):
        study, anatomy = make_study()
        d = root / f"s{i}"
        write_study_dicom(study, d / "dicom")
        build_seg(study, anatomy).dataset.save_as(d / "seg.dcm")
        rows.append(f"s{i}/dicom,ACC{i},routine,back pain,s{i}/seg.dcm")
    return rows


def _worklist(root: Path, rows: list[str]) -> Path:
    wl = root / "worklist.csv"
    wl.write_text("study,accession,priority,indication,seg\n" + "\n".join(rows) + "\n")
    return wl


def _check_complete(out: Path, expected: int) -> None:
    """Every report folder whole and parseable, no leftovers, one folder per item."""
    entries = sorted(p.name for p in out.iterdir())
    hidden = [e for e in entries if e.startswith(".")]
    assert hidden == [], f"leftovers of a killed run: {hidden}"
    folders = [out / e for e in entries if (out / e).is_dir()]
    assert len(folders) == expected
    for f in folders:
        assert sorted(p.name for p in f.iterdir()) == sorted(FILES.values())
        json.loads((f / "findings.json").read_text())
        json.loads((f / "provenance.json").read_text())
        pydicom.dcmread(f / "report.sr.dcm")
        pydicom.dcmread(f / "seg.dcm")
        assert (f / "report.html").read_text().rstrip().endswith("</html>")


@pytest.mark.slow
def test_failures_are_isolated_recorded_and_exit_1_then_rerun_skips_done(
    tmp_path: Path, model_dir: Path
) -> None:
    rows = _studies(tmp_path, 2)
    rows.insert(1, "missing/dicom,ACC9,stat,,")
    rows.append("s0/dicom,ACC0,routine,back pain,s0/seg.dcm")  # a duplicate row
    wl = _worklist(tmp_path, rows)
    out = tmp_path / "out"
    events: list[str] = []
    results = run_batch(
        wl, out, workers=2, model=str(model_dir), on_event=lambda k, r, d, t: events.append(k)
    )
    assert [r.status for r in results] == ["done", "failed", "done", "duplicate"]
    assert "no such file or folder" in results[1].reason
    assert exit_code(results) == 1
    assert events[0] == "start" and events.count("item") == 3
    manifest = read_manifest(out)
    assert [m["status"] for m in manifest] == ["done", "failed", "done", "duplicate"]
    assert "ACC" not in (out / MANIFEST).read_text()  # accessions only as hashes
    _check_complete(out, 2)

    again = run_batch(wl, out, workers=1, model=str(model_dir))
    assert [r.status for r in again] == ["skipped", "failed", "skipped", "duplicate"]
    _check_complete(out, 2)


@pytest.mark.slow
def test_study_past_the_timeout_is_stopped_and_recorded(tmp_path: Path, model_dir: Path) -> None:
    wl = _worklist(tmp_path, _studies(tmp_path, 1))
    out = tmp_path / "out"
    # Reporting takes well over a second; the main loop checks the clock every 0.5 s.
    results = run_batch(wl, out, workers=1, timeout_s=0.2, model=str(model_dir))
    assert results[0].status == "timeout" and "timeout" in results[0].reason
    assert exit_code(results) == 1
    assert [p.name for p in out.iterdir()] == [MANIFEST]  # nothing half-made left


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_yields_every_report_exactly_once(
    tmp_path: Path, model_dir: Path
) -> None:
    n = 4
    wl = _worklist(tmp_path, _studies(tmp_path, n))
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-c",
        "from reporter.cli import main; main()",
        "batch",
        str(wl),
        "--out",
        str(out),
        "--workers",
        "1",
        "--model",
        str(model_dir),
    ]
    # Its own session, so the kill takes the workers too, as a power cut would.
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            done = [p for p in out.glob("*") if p.is_dir() and not p.name.startswith(".")]
            if done:
                break
            assert proc.poll() is None, "the batch ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("no report appeared within 240 s")
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finished_before = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert 1 <= len(finished_before) < n, "the kill must land mid-run"

    results = run_batch(wl, out, workers=1, model=str(model_dir))
    assert exit_code(results) == 0
    pids = {r.worker_pid for r in results if r.status == "done"}
    assert len(pids) == 1  # one worker, the model loaded once, every remaining item
    statuses = [r.status for r in results]
    assert statuses.count("skipped") == len(finished_before)
    assert statuses.count("done") == n - len(finished_before)
    _check_complete(out, n)
    manifest = read_manifest(out)
    assert len(manifest) == n and len({m["item_id"] for m in manifest}) == n


@pytest.mark.slow
def test_disk_full_mid_batch_is_exit_73_with_a_valid_manifest_then_rerun_completes(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest update after the first finished item fails with ENOSPC: the batch stops
    with OutputError (exit 73, one line), the manifest on disk is the last whole one, no half
    report is left, and a re-run finishes every item exactly once."""
    import errno

    from reporter.errors import EXIT_CANTCREAT, OutputError
    from reporter.render import atomic

    wl = _worklist(tmp_path, _studies(tmp_path, 2))
    out = tmp_path / "out"
    real_write = atomic.write_bytes
    writes = {"n": 0}

    def full_disk(path: object, data: bytes) -> Path:
        writes["n"] += 1
        if writes["n"] >= 2:  # the start manifest passes; the first item's update finds it full
            raise OutputError(f"cannot write {path}: {os.strerror(errno.ENOSPC)}")
        return real_write(path, data)  # type: ignore[arg-type]

    monkeypatch.setattr(atomic, "write_bytes", full_disk)
    with pytest.raises(OutputError, match="No space left") as info:
        run_batch(wl, out, workers=1, model=str(model_dir))
    assert info.value.exit_code == EXIT_CANTCREAT and "\n" not in str(info.value)
    manifest = read_manifest(out)  # parses: the last whole manifest, written before the failure
    assert [m["status"] for m in manifest] == ["pending", "pending"]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]

    monkeypatch.setattr(atomic, "write_bytes", real_write)
    again = run_batch(wl, out, workers=1, model=str(model_dir))
    # The item whose report was published before the disk filled is skipped, never redone.
    assert {r.status for r in again} <= {"done", "skipped"} and len(again) == 2
    _check_complete(out, 2)
