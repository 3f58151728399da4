"""Faults in batch (issue 20, item 4): SIGKILL at twenty points, a full disk, an output folder
made read-only part-way.

The batch runs as a user runs it, as a subprocess, through tests/batch_fault_runner.py, which
numbers every atomic write, rename, fsync, manifest write and report start across the batch's
processes and can SIGKILL the whole batch (as a power cut would) or its main process alone at
any of them, or do something to the output folder once the first report is published.

- Twenty kills (seeded: at events numbered against a first uninterrupted run, or at times drawn
  against its wall time; the whole batch or the main process only) across a worklist of four
  items, each followed by a restart: at every moment the manifest parses with one row per item,
  every report folder present is whole, a published report is never replaced, and each round
  ends with every report exactly once. The reports come from a stand-in for the pipeline that
  writes the six outputs through the same atomic writers in a tenth of a second: the kills test
  the batch's staging, publishing and manifest, which do not depend on what a report says, and
  twenty restarts of the real model would take minutes.
- The real pipeline on three single-slice phantom studies: the main process killed while its
  worker is reporting the second study (the worker must die with it and write nothing more),
  then a restart; a full disk (a tmpfs filled once the first report is published) and the
  output folder remounted read-only part-way: one line, exit 73, no partial file, the manifest
  still valid, the published report whole. The tmpfs tests need `mount` (root); they skip
  cleanly where it is refused.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from reporter.worklist import DONE_MARKER, MANIFEST, MANIFEST_FIELDS, item_id
from tests.batch_fault_runner import OUTPUT_FILES, standin_content

RUNNER = Path(__file__).with_name("batch_fault_runner.py")
N_KILLS = 20
SEED = 20


def _batch(
    worklist: Path, out: Path, events: Path, timeout: float | None = None, **fault: str
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAULT_")}
    env["FAULT_EVENTS"] = str(events)
    env.update(fault)
    return subprocess.Popen(
        [sys.executable, str(RUNNER), "batch", str(worklist), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group: the batch and its workers
    )


def _group_alive(pgid: int) -> list[int]:
    """Live (not zombie) processes of the process group `pgid`."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive.append(int(stat.parent.name))
    return alive


def _finish(proc: subprocess.Popen[str], timeout: float = 300) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever a test left behind
    return out, err


def _events(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _manifest(out: Path, n_items: int) -> list[dict[str, str]]:
    """The manifest, which must parse, with the header and one row per worklist item."""
    with (out / MANIFEST).open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == MANIFEST_FIELDS
    assert [r["row"] for r in rows] == [str(i) for i in range(1, n_items + 1)]
    return rows


def _report_folders(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))


# --- twenty kills on the stand-in pipeline ---------------------------------------------------
@pytest.fixture
def standin_worklist(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    studies = {}
    lines = ["study"]
    for i in range(1, 5):
        folder = tmp_path / "studies" / f"s{i}"
        folder.mkdir(parents=True)
        studies[item_id(str(folder.resolve()), None)] = str(folder.resolve())
        lines.append(str(folder))
    worklist = tmp_path / "worklist.csv"
    worklist.write_text("\n".join(lines) + "\n")
    return worklist, studies


def _check_anytime(out: Path, studies: dict[str, str], published: dict[str, int]) -> None:
    """What must hold whenever the batch stops, however it stops."""
    if not out.exists():
        return
    if (out / MANIFEST).exists():
        for row in _manifest(out, len(studies)):
            if row["status"] in ("done", "skipped"):
                assert (out / row["item_id"] / DONE_MARKER).exists(), row
    for folder in _report_folders(out):
        assert folder.name in studies, f"unexpected folder {folder.name}"
        assert sorted(p.name for p in folder.iterdir()) == sorted(OUTPUT_FILES), folder
        for name in OUTPUT_FILES:
            assert (folder / name).read_text() == standin_content(studies[folder.name], name)
        inode = (folder / DONE_MARKER).stat().st_ino
        # Exactly once: a report, once published, is never made again.
        assert published.setdefault(folder.name, inode) == inode, folder.name


def _check_complete(out: Path, studies: dict[str, str], stderr: str) -> None:
    rows = _manifest(out, len(studies))
    assert {r["status"] for r in rows} <= {"done", "skipped"}, (rows, stderr[-2000:])
    assert sorted(p.name for p in _report_folders(out)) == sorted(studies)
    assert not [p.name for p in out.iterdir() if p.name.startswith((".staging-", ".tmp-"))]


def test_batch_killed_at_twenty_points_leaves_every_report_exactly_once_and_whole(
    tmp_path: Path, standin_worklist: tuple[Path, dict[str, str]]
) -> None:
    worklist, studies = standin_worklist
    rng = random.Random(SEED)

    # A first, uninterrupted run: how many events, how long.
    t0 = time.monotonic()
    first = _batch(worklist, tmp_path / "timing", tmp_path / "timing.events", FAULT_STANDIN="1")
    _, err = _finish(first)
    wall = time.monotonic() - t0
    n_events = _events(tmp_path / "timing.events")
    assert first.returncode == 0, err[-2000:]
    _check_complete(tmp_path / "timing", studies, err)

    kills, runs, rounds = [], 0, 0
    out = tmp_path / "round-0"
    published: dict[str, int] = {}
    while len(kills) < N_KILLS:
        runs += 1
        assert runs <= 2 * N_KILLS, f"only {len(kills)} kills in {runs} runs"
        left = len(studies) - len(published)
        if left == 0:  # the round's reports are all made: a last run, then a fresh folder
            proc = _batch(worklist, out, tmp_path / f"run-{runs}.events", FAULT_STANDIN="1")
            _, err = _finish(proc)
            assert proc.returncode == 0, err[-2000:]
            _check_anytime(out, studies, published)
            _check_complete(out, studies, err)
            rounds += 1
            out, published = tmp_path / f"round-{rounds}", {}
            continue
        who = rng.choice(["group", "group", "main"])
        by_time = rng.random() < 0.3
        fault = {"FAULT_STANDIN": "1", "FAULT_KILL": who}
        # A point within what is left to do (measured against the first run).
        share = (left + 0.5) / len(studies)
        if by_time:
            at: float = rng.uniform(0.3, wall * min(1.0, share + 0.3))
        else:
            at = rng.randint(1, max(2, round(n_events * share)))
            fault["FAULT_KILL_AT"] = str(at)
        proc = _batch(worklist, out, tmp_path / f"run-{runs}.events", **fault)
        if by_time:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=at)
            if proc.poll() is None:
                (os.killpg if who == "group" else os.kill)(proc.pid, signal.SIGKILL)
        try:
            proc.wait(timeout=300)
            if proc.returncode == -signal.SIGKILL and who == "main":
                # The workers go with the batch: at once, or (one still starting up) as soon as
                # it finds the batch gone, before it could write anything.
                deadline = time.monotonic() + 15
                while _group_alive(proc.pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert not _group_alive(proc.pid), "a worker outlived the killed batch"
        finally:
            _, err = _finish(proc)
        _check_anytime(out, studies, published)
        if proc.returncode == -signal.SIGKILL:
            kills.append((who, f"{at:.2f} s" if by_time else f"event {at}"))
        else:  # the kill point lay beyond what was left: the run finished
            assert proc.returncode == 0, err[-2000:]
            _check_complete(out, studies, err)

    last = _batch(worklist, out, tmp_path / "last.events", FAULT_STANDIN="1")
    _, err = _finish(last)
    assert last.returncode == 0, err[-2000:]
    _check_anytime(out, studies, published)
    _check_complete(out, studies, err)
    assert len(kills) == N_KILLS and {who for who, _ in kills} == {"group", "main"}


# --- the real pipeline: a kill, a full disk, a read-only folder --------------------------------
@pytest.fixture(scope="module")
def real_worklist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Three single mid-sagittal slice phantom studies (the cheapest real reports)."""
    root = tmp_path_factory.mktemp("real")
    proc = subprocess.run(
        [sys.executable, "-m", "reporter.cli", "synth", "--out", str(root / "studies"),
         "--n", "3", "--site", "site-a", "--seed", "7", "--engine", "v2", "--slices", "mid"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    studies = sorted(p / "dicom" for p in (root / "studies").iterdir() if p.is_dir())
    worklist = root / "worklist.csv"
    worklist.write_text("study\n" + "".join(f"{s}\n" for s in studies))
    return worklist, [item_id(str(s.resolve()), None) for s in studies]


def _check_real_report(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(OUTPUT_FILES), folder
    json.loads((folder / "provenance.json").read_text())
    json.loads((folder / "findings.json").read_text())
    assert pydicom.dcmread(folder / "report.sr.dcm").Modality == "SR"
    assert pydicom.dcmread(folder / "seg.dcm").Modality == "SEG"
    assert (folder / "report.html").read_text().rstrip().endswith("</html>")


def test_real_batch_killed_mid_report_stops_its_worker_and_resumes_to_each_report_once(
    tmp_path: Path, real_worklist: tuple[Path, list[str]]
) -> None:
    worklist, ids = real_worklist
    out = tmp_path / "out"
    # The batch process alone is killed as its worker starts the second report.
    proc = _batch(
        worklist, out, tmp_path / "1.events", FAULT_KILL_AT="compute:2", FAULT_KILL="main"
    )
    try:
        proc.wait(timeout=300)
        assert proc.returncode == -signal.SIGKILL
        time.sleep(3)  # longer than the second report takes
        assert not _group_alive(proc.pid), "the worker outlived the killed batch"
    finally:
        _finish(proc)
    assert [p.name for p in _report_folders(out)] == [ids[0]]  # nothing written after the kill
    first = (out / ids[0] / DONE_MARKER).stat().st_ino

    rerun = _batch(worklist, out, tmp_path / "2.events")
    _, err = _finish(rerun)
    assert rerun.returncode == 0, err[-2000:]
    rows = _manifest(out, 3)
    assert [r["status"] for r in rows] == ["skipped", "done", "done"]
    assert sorted(p.name for p in _report_folders(out)) == sorted(ids)
    assert (out / ids[0] / DONE_MARKER).stat().st_ino == first  # not made again
    for folder in _report_folders(out):
        _check_real_report(folder)
    assert not [p.name for p in out.iterdir() if p.name.startswith((".staging-", ".tmp-"))]


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB tmpfs at tmp_path/mnt, or a skip where mounting is not allowed."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.parametrize(
    ("fault", "words"),
    [("full", "No space left on device"), ("readonly", "Read-only file system")],
    ids=["disk-full", "read-only"],
)
def test_unwritable_output_mid_batch_ends_with_one_line_exit_73_and_no_partial_file(
    tmp_path: Path, real_worklist: tuple[Path, list[str]], tiny_tmpfs: Path, fault: str, words: str
) -> None:
    worklist, ids = real_worklist
    out = tiny_tmpfs / "out"
    proc = _batch(worklist, out, tmp_path / "events", FAULT_AFTER_PUBLISH=f"{fault}:{tiny_tmpfs}")
    _, stderr = _finish(proc)
    assert proc.returncode == 73, stderr[-2000:]
    # stderr: the progress bar's last state, and the error in one line.
    lines = [x for x in stderr.splitlines() if not x.startswith("reporting ")]
    assert len(lines) == 1 and lines[0].startswith("spine-report: error: cannot write"), stderr
    assert str(out) in lines[0] and lines[0].endswith(words), lines[0]
    # The report published before the fault stands whole; nothing half-made is left.
    assert [p.name for p in _report_folders(out)] == [ids[0]]
    _check_real_report(out / ids[0])
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST, ids[0]])
    rows = _manifest(out, 3)
    assert rows[0]["status"] in ("pending", "done")
    assert all(r["status"] in ("pending", "failed") for r in rows[1:])
