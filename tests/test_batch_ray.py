"""`spine-report batch --backend ray`: the same worklist on Ray actors gives the same reports,
manifest and exit code as local worker processes; resume and a bad row behave the same.

A private Ray (2 CPUs, no dashboard) is started once per module; `RayDispatch` joins the Ray
already initialised in the process. Skipped, saying why, when Ray (the `[ray]` extra) is not
installed; the error a user gets without it is tested either way."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pydicom
import pytest

from reporter.errors import EXIT_UNAVAILABLE
from reporter.render.seg import build_seg
from reporter.worklist import exit_code, read_manifest, run_batch
from tests.report_factory import make_study, write_study_dicom

# What legitimately differs between two runs of the same item: when it ran, how long it took and
# which process ran it (manifest); fresh UIDs and dates / times (reports).
RUN_FIELDS = ("seconds", "finished_at", "worker_pid")
VOLATILE_VR = {"UI", "DA", "TM", "DT"}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?")


# --- without Ray ----------------------------------------------------------------------------------
def test_backend_ray_without_ray_installed_is_one_line_and_exit_69(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import reporter.cli as cli

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    (tmp_path / "wl.csv").write_text("study\ns1\n")
    with pytest.raises(SystemExit) as done:
        cli.main(
            ["batch", str(tmp_path / "wl.csv"), "--out", str(tmp_path / "o"), "--backend", "ray"]
        )
    assert done.value.code == EXIT_UNAVAILABLE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[ray]" in err[0] and err[0].startswith("spine-report: error:")
    assert not (tmp_path / "o").exists()  # stopped before any work


def test_address_without_backend_ray_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import reporter.cli as cli

    (tmp_path / "wl.csv").write_text("study\ns1\n")
    with pytest.raises(SystemExit) as done:
        cli.main(["batch", str(tmp_path / "wl.csv"), "--address", "127.0.0.1:6379"])
    assert done.value.code == 64
    assert "--backend ray" in capsys.readouterr().err


def test_cluster_address_nobody_listens_on_is_exit_69_at_once(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason='Ray is not installed (pip install -e ".[ray]")')
    import socket

    from reporter.worklist_ray import RayDispatch, RayUnavailableError

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RayUnavailableError, match="cannot connect") as info:
        RayDispatch(address=f"127.0.0.1:{port}")
    assert info.value.exit_code == EXIT_UNAVAILABLE


# --- with Ray -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_session() -> Any:
    ray = pytest.importorskip(
        "ray", reason='Ray is not installed (the optional extra: pip install -e ".[ray]")'
    )
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small studies (with their segmentation, so no segmenter runs) and a model folder
    with random weights: the test is about dispatching, not accuracy."""
    import torch

    from reporter.vlm.inference import new_model, save_model

    root = tmp_path_factory.mktemp("ray-batch")
    torch.manual_seed(0)
    save_model(new_model(), root / "vlm")
    for i in range(3):
        study, anatomy = make_study()
        write_study_dicom(study, root / f"s{i}" / "dicom")
        build_seg(study, anatomy).dataset.save_as(root / f"s{i}" / "seg.dcm")
    return root


def _worklist(root: Path, rows: list[str]) -> Path:
    wl = root / f"wl-{len(rows)}.csv"
    wl.write_text("study,accession,priority,indication,seg\n" + "\n".join(rows) + "\n")
    return wl


def _row(i: int, priority: str = "routine") -> str:
    return f"s{i}/dicom,ACC{i},{priority},back pain,s{i}/seg.dcm"


def _dicom_content(path: Path) -> dict[str, Any]:
    ds = pydicom.dcmread(path)

    def drop_volatile(dataset: pydicom.Dataset, elem: pydicom.DataElement) -> None:
        if elem.VR in VOLATILE_VR:
            del dataset[elem.tag]

    ds.walk(drop_volatile)
    return ds.to_json_dict()


def _reports(out: Path) -> dict[str, Any]:
    """Every report folder's files, with timestamps and UIDs taken out."""
    found: dict[str, Any] = {}
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        for f in sorted(folder.iterdir()):
            key = f"{folder.name}/{f.name}"
            if f.suffix == ".dcm":
                found[key] = _dicom_content(f)
            elif f.name == "provenance.json":
                prov = json.loads(f.read_text())
                found[key] = sorted(k for k in prov)  # times and UIDs throughout; keys only
            elif f.name == "findings.json":
                found[key] = json.loads(f.read_text())
            else:
                found[key] = TIMESTAMP.sub("<time>", f.read_text())
    return found


def _manifest(out: Path) -> list[dict[str, str]]:
    rows = read_manifest(out)
    for m in rows:
        for k in RUN_FIELDS:
            m.pop(k)
        m["out_dir"] = Path(m["out_dir"]).name if m["out_dir"] else ""
    return rows


@pytest.mark.slow
def test_ray_and_local_give_identical_reports_manifest_and_exit_code(
    ray_session: Any, studies: Path
) -> None:
    from reporter.worklist_ray import RayDispatch

    # A missing study (recorded as failed; the run goes on) and a duplicate row among them.
    rows = [_row(0), "missing/dicom,ACC9,stat,,", _row(1), _row(2, "urgent"), _row(0)]
    wl = _worklist(studies, rows)
    model = str(studies / "vlm")
    local = run_batch(wl, studies / "out-local", workers=2, model=model)
    ray = run_batch(wl, studies / "out-ray", workers=2, model=model, dispatch=RayDispatch())

    statuses = ["done", "failed", "done", "done", "duplicate"]
    assert [r.status for r in local] == [r.status for r in ray] == statuses
    assert "no such file or folder" in ray[1].reason
    assert exit_code(local) == exit_code(ray) == 1
    assert _manifest(studies / "out-local") == _manifest(studies / "out-ray")
    reports_local, reports_ray = _reports(studies / "out-local"), _reports(studies / "out-ray")
    assert len(reports_local) == 3 * 6  # three reports, six files each
    assert reports_local == reports_ray
    # Each Ray actor loaded the model once and reported several items.
    assert len({r.worker_pid for r in ray if r.status == "done"}) <= 2


@pytest.mark.slow
def test_ray_run_interrupted_then_resumed_reports_every_item_exactly_once(
    ray_session: Any, studies: Path
) -> None:
    from reporter.worklist_ray import RayDispatch

    wl = _worklist(studies, [_row(0), _row(1), _row(2)])
    out = studies / "out-resume"
    model = str(studies / "vlm")

    def stop_after_first(kind: str, result: Any, done: int, total: int) -> None:
        if kind == "item":
            raise KeyboardInterrupt  # Ctrl-C as the first item is recorded

    with pytest.raises(KeyboardInterrupt):
        run_batch(
            wl, out, workers=2, model=model, dispatch=RayDispatch(), on_event=stop_after_first
        )
    first = [m["item_id"] for m in read_manifest(out) if m["status"] == "done"]
    assert len(first) == 1
    # The other actor was killed mid-item (or, rarely, had just published its report).
    before = {p.name: (p / "findings.json").stat().st_mtime_ns for p in _folders(out)}
    assert first[0] in before and len(before) < 3

    again = run_batch(wl, out, workers=2, model=model, dispatch=RayDispatch())
    assert exit_code(again) == 0
    # Exactly once: what was reported before is skipped, untouched; the rest is done now.
    statuses = {r.item.item_id: r.status for r in again}
    assert statuses == {i: "skipped" if i in before else "done" for i in statuses}
    assert all((out / i / "findings.json").stat().st_mtime_ns == t for i, t in before.items())
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no half-made report
    assert sorted(p.name for p in _folders(out)) == sorted(statuses)
    assert [m["status"] for m in read_manifest(out)] == list(statuses.values())


def _folders(out: Path) -> list[Path]:
    return [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
