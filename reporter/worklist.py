"""Batch reporting of a worklist: resumable, isolated, one report per item exactly once.

Worklist: a CSV or JSONL file (columns / keys: `study` (a path, or a DICOMweb study URL that
the worker pulls: reporter.dicomweb), optional `accession`, `priority`, `indication`, `seg`),
or a folder whose sub-folders are studies. Relative paths are
taken from the worklist's folder. Items run in priority order (a number, smaller first, or
stat / urgent / routine), then in worklist order.

Each item's outputs are made in a hidden staging folder and renamed to `OUT/<item_id>/` when
complete, so a report folder exists whole or not at all; `OUT/manifest.csv` (one row per item,
rewritten atomically after every item) says what happened. A re-run skips items whose folder
exists and removes what a killed run left half-made, so a SIGKILL followed by a re-run yields
every report exactly once.

Workers are processes that load the model once and take items from the main process one at a
time; an item that runs past the per-study timeout has its worker killed (and replaced), which
is the only way to stop a stuck computation, and is recorded as failed with the reason.

How items reach workers is the one replaceable part (`Dispatch`): `dispatch_local` runs worker
processes on this machine, `reporter.worklist_ray.RayDispatch` runs them as Ray actors on a
cluster. Both start workers with `_worker_start`, report an item with `_run_item` and hand every
answer to the same `record` (manifest, progress), so reading the worklist, resume, staging and
exactly-once are one code path whatever the backend.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing as mp
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Literal, Protocol

from reporter.dicomweb.urls import is_dicomweb_url, parse_study_url
from reporter.errors import (
    EXIT_CANTCREAT,
    InputMissingError,
    OutputError,
    ReporterError,
    UsageError,
    describe_internal,
)
from reporter.quiet import quiet_libraries
from reporter.render import atomic

MANIFEST = "manifest.csv"
DONE_MARKER = "provenance.json"  # the last file of a report; the folder is renamed in after it
Status = Literal["done", "skipped", "failed", "timeout", "duplicate", "pending"]
MANIFEST_FIELDS = (
    "row",
    "item_id",
    "study_sha256",
    "accession_sha256",
    "priority",
    "status",
    "reason",
    "out_dir",
    "seconds",
    "withheld",
    "indeterminate",
    "finished_at",
    "worker_pid",
)
PRIORITY_WORDS = {"stat": 0, "urgent": 1, "asap": 1, "high": 1, "routine": 2, "low": 3}
STUDY_KEYS = ("study", "study_path", "path")


@dataclass
class WorkItem:
    row: int  # 1-based position in the worklist
    study: str  # absolute path, or a DICOMweb study URL (reporter.dicomweb.urls)
    accession: str | None = None
    priority: int = PRIORITY_WORDS["routine"]
    indication: str | None = None
    seg: str | None = None
    item_id: str = ""
    # De-identified outputs (reporter.render.deidentify). Part of the item id, so that a re-run
    # with the other setting never takes an earlier run's folder for its own.
    deidentify: bool = False

    def __post_init__(self) -> None:
        if not self.item_id:
            suffix = "-deid" if self.deidentify else ""
            self.item_id = item_id(self.study, self.accession) + suffix


@dataclass
class ItemResult:
    item: WorkItem
    status: Status
    reason: str = ""
    seconds: float = 0.0
    withheld: int | None = None
    indeterminate: int | None = None
    finished_at: str = ""
    worker_pid: int | None = None

    def manifest_row(self, out: Path) -> dict[str, Any]:
        acc = self.item.accession
        return {
            "row": self.item.row,
            "item_id": self.item.item_id,
            # Folder names often carry a patient's name, and an accession number identifies a
            # patient's exam: only hashes are written (the row number finds the worklist line).
            "study_sha256": _sha16(self.item.study),
            "accession_sha256": _sha16(acc) if acc else "",
            "priority": self.item.priority,
            "status": self.status,
            "reason": self.reason,
            "out_dir": str(out / self.item.item_id) if self.status in ("done", "skipped") else "",
            "seconds": f"{self.seconds:.2f}" if self.seconds else "",
            "withheld": "" if self.withheld is None else self.withheld,
            "indeterminate": "" if self.indeterminate is None else self.indeterminate,
            "finished_at": self.finished_at,
            "worker_pid": self.worker_pid or "",
        }


def _sha16(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def scrub_paths(text: str, item: WorkItem) -> str:
    """`text` with the item's study and label-map paths replaced: an error message names the
    folder it could not read, and folder names often carry a patient's name."""
    for path, label in ((item.study, "<study>"), (item.seg, "<seg>")):
        if path:
            # Messages name the path as given (absolute, resolved); a bare folder name is not
            # replaced, since a generic one ("dicom") would mangle other words.
            text = text.replace(path, label)
    return text


# --- reading worklists ---------------------------------------------------------------------------
def item_id(study: str, accession: str | None) -> str:
    """Stable across runs (so a re-run finds the finished item), unique per (study, accession),
    and free of the folder's name (which often is the patient's)."""
    digest = hashlib.sha256(f"{study}\0{accession or ''}".encode()).hexdigest()[:16]
    return f"study-{digest}"


def _priority(value: Any, where: str) -> int:
    if value is None or str(value).strip() == "":
        return PRIORITY_WORDS["routine"]
    text = str(value).strip().lower()
    if text in PRIORITY_WORDS:
        return PRIORITY_WORDS[text]
    try:
        return int(float(text))
    except (ValueError, OverflowError):  # 'urgent!', 'nan'; '1e999' is infinite
        raise UsageError(
            f"{where}: priority {value!r} is neither a number nor one of "
            f"{', '.join(PRIORITY_WORDS)}"
        ) from None


def _item(rec: dict[str, Any], row: int, base: Path, where: str) -> WorkItem:
    rec = {str(k).strip().lower(): v for k, v in rec.items() if k is not None}
    study = next((rec[k] for k in STUDY_KEYS if rec.get(k) not in (None, "")), None)
    if study is None:
        raise UsageError(f"{where}: no study path (expected a column named 'study')")
    text = str(study).strip()
    if "\x00" in text:  # no file system takes it (Path.resolve raised ValueError)
        raise UsageError(f"{where}: the study path holds a NUL character")
    try:  # a lone surrogate from a JSON '\\ud800' cannot be encoded as a file name
        os.fsencode(text)
    except UnicodeEncodeError:
        raise UsageError(f"{where}: the study path is not a valid file name") from None
    if is_dicomweb_url(text):
        try:
            parse_study_url(text)  # checked now: a bad URL stops the batch before any work
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
        source = text
    else:
        path = Path(text).expanduser()
        source = str((path if path.is_absolute() else base / path).resolve())
    seg = rec.get("seg") or None
    if seg:
        seg_path = Path(str(seg).strip()).expanduser()
        seg = str(seg_path if seg_path.is_absolute() else base / seg_path)

    def text(key: str) -> str | None:
        v = rec.get(key)
        return None if v in (None, "") else str(v).strip()

    return WorkItem(
        row=row,
        study=source,
        accession=text("accession"),
        priority=_priority(rec.get("priority"), where),
        indication=text("indication"),
        seg=seg,
    )


def read_worklist(path: str | os.PathLike[str]) -> list[WorkItem]:
    """Items of a CSV / JSONL worklist or a folder of studies (see the module docstring)."""
    src = Path(path)
    if not src.exists():
        raise InputMissingError(f"the worklist {src} does not exist")
    items: list[WorkItem] = []
    if src.is_dir():
        subdirs = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not subdirs:
            raise UsageError(f"the folder {src} holds no study folders")
        items = [WorkItem(row=i + 1, study=str(p.resolve())) for i, p in enumerate(subdirs)]
    else:
        try:
            text = src.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the worklist {src}: {exc}") from exc
        base = src.resolve().parent
        if src.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            for n, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UsageError(f"{src}:{n}: not valid JSON ({exc.msg})") from None
                except RecursionError:  # '[[[[...' thousands deep: the decoder recurses
                    raise UsageError(f"{src}:{n}: JSON nested too deeply") from None
                if not isinstance(rec, dict):
                    raise UsageError(f"{src}:{n}: each line must be a JSON object")
                items.append(_item(rec, len(items) + 1, base, f"{src}:{n}"))
        else:
            reader = csv.DictReader(io.StringIO(text))
            if not reader.fieldnames or not any(
                (f or "").strip().lower() in STUDY_KEYS for f in reader.fieldnames
            ):
                raise UsageError(
                    f"{src}: the CSV header needs a 'study' column "
                    "(optional: accession, priority, indication, seg)"
                )
            for n, rec in enumerate(reader, start=2):
                if not any((v or "").strip() for v in rec.values() if isinstance(v, str)):
                    continue
                items.append(_item(rec, len(items) + 1, base, f"{src}:{n}"))
    if not items:
        raise UsageError(f"the worklist {src} has no items")
    return items


# --- the worker (a local process or a Ray actor) ----------------------------------------------
def _worker_start(model: str | None, adapter: str | None) -> dict[str, Any]:
    """Set a worker up and load the model once: a "ready" message (pid, code version, model
    provenance) or a "fatal" one (error, exit code). Every backend starts its workers with it."""
    quiet_libraries()
    try:
        import torch

        # N workers share the machine; one thread each (and the same arithmetic in every
        # backend: a thread count can change the order of floating-point sums).
        torch.set_num_threads(1)
        from reporter.pipeline import get_model
        from reporter.render.provenance import code_version

        vlm = get_model(model, adapter)
        info = vlm.provenance() if hasattr(vlm, "provenance") else {}
        return {
            "type": "ready",
            "pid": os.getpid(),
            "version": code_version(),  # as the reports' provenance states it
            "model": {k: str(v) for k, v in sorted(info.items())},
        }
    except BaseException as exc:
        return {"type": "fatal", "error": _describe(exc), "code": _code(exc)}


def _worker_main(conn: Connection, model: str | None, adapter: str | None, out: str) -> None:
    """Load the model once, then report the items the main process sends until it sends None."""
    # Ctrl-C reaches the whole process group; the main process decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    hello = _worker_start(model, adapter)
    conn.send(hello)
    if hello["type"] != "ready":
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the main process is gone
        if msg is None:
            return
        conn.send(_run_item(WorkItem(**msg), model, adapter, Path(out)))


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker when the batch process dies, however it dies. A
    worker that outlived a SIGKILLed batch went on reporting and publishing into OUT while a
    restarted batch began the same items."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    parent = mp.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        os._exit(0)  # the batch died before the line above took effect


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ReporterError):
        return str(exc)
    return describe_internal(exc)  # type and place only: messages may quote patient data


def _code(exc: BaseException) -> int:
    return exc.exit_code if isinstance(exc, ReporterError) else 70


def _run_item(item: WorkItem, model: str | None, adapter: str | None, out: Path) -> dict[str, Any]:
    from reporter.pipeline import get_model, report_study

    t0 = time.perf_counter()
    final = out / item.item_id
    stage = out / f"{atomic.STAGING_PREFIX}{item.item_id}-{os.getpid()}"
    try:
        shutil.rmtree(stage, ignore_errors=True)
        report = report_study(
            item.study,
            out_dir=stage,
            seg=item.seg,
            model=get_model(model, adapter),
            indication=item.indication,
            deidentify=item.deidentify,
        )
        try:
            atomic.publish_dir(stage, final)
        except FileExistsError:
            # Another run finished this item first; its report stands, ours is dropped.
            shutil.rmtree(stage, ignore_errors=True)
            return {
                "type": "result",
                "status": "skipped",
                "reason": "already reported",
                "seconds": time.perf_counter() - t0,
            }
        return {
            "type": "result",
            "status": "done",
            "reason": "",
            "seconds": time.perf_counter() - t0,
            "withheld": len(report.withheld),
            "indeterminate": len(report.indeterminate),
        }
    except BaseException as exc:  # isolate: one bad study never stops the batch
        shutil.rmtree(stage, ignore_errors=True)
        reason = scrub_paths(_describe(exc), item)
        return {
            "type": "result",
            "status": "failed",
            "reason": reason,
            "seconds": time.perf_counter() - t0,
            "code": _code(exc),
        }


@dataclass
class _Worker:
    proc: Any
    conn: Connection
    ready: bool = False
    item: WorkItem | None = None
    started: float = 0.0


class BatchFatalError(ReporterError):
    """The batch cannot run at all (e.g. the model does not load)."""


def worker_fatal(msg: dict[str, Any]) -> BatchFatalError:
    """The error for a worker's "fatal" start message (it carries the exit code)."""
    err = BatchFatalError(f"a worker could not start: {msg['error']}")
    err.exit_code = int(msg.get("code", err.exit_code))
    return err


def discard_staging(out: Path, item: WorkItem) -> None:
    """Remove what a killed worker left half-made of `item` (its staging folders)."""
    for leftover in out.glob(f"{atomic.STAGING_PREFIX}{item.item_id}-*"):
        shutil.rmtree(leftover, ignore_errors=True)


# --- the driver: recording answers, and how items reach workers ---------------------------------
class Record(Protocol):
    def __call__(
        self, item: WorkItem, answer: dict[str, Any], worker_pid: int | None = None
    ) -> None: ...


def _recorder(
    results: dict[int, ItemResult],
    save_manifest: Callable[[], None],
    notify: Callable[[ItemResult], Any],
) -> Record:
    """The one place an item's outcome is written, whichever backend ran it: `answer` is a
    worker's result message (or the driver's own verdict: timeout, a dead worker)."""
    from reporter.render.provenance import now_iso

    def record(item: WorkItem, answer: dict[str, Any], worker_pid: int | None = None) -> None:
        results[item.row] = ItemResult(
            item,
            status=answer["status"],
            reason=answer.get("reason", ""),
            seconds=answer.get("seconds", 0.0),
            withheld=answer.get("withheld"),
            indeterminate=answer.get("indeterminate"),
            finished_at=now_iso(),
            worker_pid=worker_pid,
        )
        save_manifest()
        notify(results[item.row])
        if answer.get("code") == EXIT_CANTCREAT:
            # The output folder cannot be written (disk full, made read-only): every item after
            # this one would fail the same way. Stop; the manifest says what was done.
            raise OutputError(answer.get("reason") or "cannot write the output folder")

    return record


class Dispatch(Protocol):
    """How the items still to do reach workers; the only part a backend replaces.

    It starts workers with `_worker_start` (load the model once), has each item reported by
    `_run_item` into `out`, calls `record` once per item (in any order), stops a worker whose
    item runs past `timeout_s` (recording "timeout") and raises `BatchFatalError` (or another
    ReporterError) when no worker can start. `workers` None: the backend's default."""

    def __call__(
        self,
        todo: list[WorkItem],
        out: Path,
        workers: int | None,
        timeout_s: float,
        model: str | None,
        adapter: str | None,
        record: Record,
    ) -> None: ...


# --- the main loop -------------------------------------------------------------------------------
def run_batch(
    worklist: str | os.PathLike[str],
    out: str | os.PathLike[str],
    workers: int | None = 1,
    timeout_s: float = 600.0,
    model: str | None = None,
    adapter: str | None = None,
    on_event: Callable[[str, ItemResult | None, int, int], None] | None = None,
    dispatch: Dispatch | None = None,
    deidentify: bool = False,
) -> list[ItemResult]:
    """Report every item of `worklist` into `out`; returns one result per worklist row.

    `on_event(kind, result, n_finished, n_total)` is called on "start" and after every item
    (the CLI draws its progress bar from it). `dispatch` says how items reach workers:
    `dispatch_local` (the default: `workers` processes here, 1 when None) or
    `reporter.worklist_ray.RayDispatch(address)` (Ray actors; None: one per CPU of the cluster).
    `deidentify`: de-identified outputs (reporter.render.deidentify), in folders of their own."""
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    if timeout_s <= 0:
        raise UsageError(f"the per-study timeout must be positive, not {timeout_s}")
    for label, p in (("model", model), ("adapter", adapter)):
        if p is not None and not Path(p).exists():
            raise InputMissingError(f"the {label} path {p} does not exist")
    items = read_worklist(worklist)
    if deidentify:
        items = [WorkItem(**{**asdict(it), "deidentify": True, "item_id": ""}) for it in items]
    out_dir = Path(out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out_dir}: {exc.strerror or exc}") from exc
    atomic.remove_leftovers(out_dir)  # what a killed run left half-made

    results: dict[int, ItemResult] = {}
    todo: list[WorkItem] = []
    seen: dict[str, int] = {}
    for it in items:
        if it.item_id in seen:
            results[it.row] = ItemResult(
                it, "duplicate", f"same study and accession as row {seen[it.item_id]}"
            )
            continue
        seen[it.item_id] = it.row
        if (out_dir / it.item_id / DONE_MARKER).exists():
            results[it.row] = ItemResult(it, "skipped", "already reported by an earlier run")
        else:
            results[it.row] = ItemResult(it, "pending")
            todo.append(it)
    todo.sort(key=lambda it: (it.priority, it.row))
    n_total = len(items)

    def finished() -> int:
        return sum(1 for r in results.values() if r.status != "pending")

    def save_manifest() -> None:
        write_manifest(out_dir, [results[row] for row in sorted(results)])

    save_manifest()
    if on_event:
        on_event("start", None, finished(), n_total)

    def notify(result: ItemResult) -> None:
        if on_event:
            on_event("item", result, finished(), n_total)

    if todo:
        (dispatch or dispatch_local)(
            todo,
            out_dir,
            workers,
            timeout_s,
            model,
            adapter,
            _recorder(results, save_manifest, notify),
        )
    save_manifest()
    return [results[row] for row in sorted(results)]


def report_items(
    items: list[WorkItem],
    out: str | os.PathLike[str],
    workers: int = 1,
    timeout_s: float = 600.0,
    model: str | None = None,
    adapter: str | None = None,
    on_result: Callable[[ItemResult], None] | None = None,
) -> list[ItemResult]:
    """Report items a caller built itself (watch mode: studies pulled from a PACS, each with a
    fixed `item_id`) with the batch's workers, staging, timeouts and isolation; an item whose
    folder is already complete is skipped. No worklist file and no manifest: the caller records
    what happened (`on_result` is called as each item finishes)."""
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    out_dir = Path(out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out_dir}: {exc.strerror or exc}") from exc
    atomic.remove_leftovers(out_dir)
    results: dict[int, ItemResult] = {}
    todo: list[WorkItem] = []
    for it in items:
        if (out_dir / it.item_id / DONE_MARKER).exists():
            results[it.row] = ItemResult(it, "skipped", "already reported by an earlier run")
            if on_result:
                on_result(results[it.row])
        else:
            results[it.row] = ItemResult(it, "pending")
            todo.append(it)
    if todo:
        record = _recorder(results, lambda: None, on_result or (lambda result: None))
        dispatch_local(todo, out_dir, workers, timeout_s, model, adapter, record)
    return [results[it.row] for it in items]


def _spawn(ctx: Any, model: str | None, adapter: str | None, out: Path) -> _Worker:
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_worker_main, args=(child, model, adapter, str(out)), daemon=True)
    proc.start()
    child.close()
    return _Worker(proc=proc, conn=parent)


def _stop(w: _Worker, kill: bool = False) -> None:
    try:
        if kill:
            w.proc.kill()
        else:
            w.conn.send(None)
    except (OSError, ValueError):
        pass
    w.proc.join(timeout=10)
    if w.proc.is_alive():
        w.proc.kill()
        w.proc.join(timeout=5)
    w.conn.close()


def dispatch_local(
    todo: list[WorkItem],
    out: Path,
    workers: int | None,
    timeout_s: float,
    model: str | None,
    adapter: str | None,
    record: Record,
) -> None:
    """Worker processes on this machine (`workers`, 1 when None), fed one item at a time."""
    ctx = mp.get_context("spawn")  # never fork a process that may hold torch threads
    queue = list(todo)
    pool: list[_Worker | None] = [
        _spawn(ctx, model, adapter, out) for _ in range(min(workers or 1, len(todo)))
    ]
    crashes_before_ready = 0

    def replace(i: int, status: Status, reason: str | None) -> None:
        """Kill worker i (and its half-made output), start a fresh one, record its item."""
        w = pool[i]
        assert w is not None
        item = w.item
        _stop(w, kill=True)
        if item is not None:
            discard_staging(out, item)
        # A fresh worker only when there is work left for it (spawning reloads the model).
        pool[i] = _spawn(ctx, model, adapter, out) if queue else None
        if item is not None and reason is not None:
            record(item, {"status": status, "reason": reason})

    try:
        while queue or any(w is not None and w.item is not None for w in pool):
            live = [w for w in pool if w is not None]
            if not live:
                break
            for w in live:
                if w.ready and w.item is None and queue:
                    w.item, w.started = queue.pop(0), time.monotonic()
                    w.conn.send(asdict(w.item))
            ready = wait([w.conn for w in live], timeout=0.5)
            for i, w in enumerate(pool):
                if w is None:
                    continue
                if w.conn in ready:
                    try:
                        msg = w.conn.recv()
                    except (EOFError, OSError):
                        msg = {"type": "died"}
                    if msg["type"] == "ready":
                        w.ready = True
                    elif msg["type"] == "fatal":
                        raise worker_fatal(msg)
                    elif msg["type"] == "result" and w.item is not None:
                        item, w.item = w.item, None
                        record(item, msg, worker_pid=w.proc.pid)
                    elif msg["type"] == "died":
                        if not w.ready:
                            crashes_before_ready += 1
                            if crashes_before_ready > 3:
                                raise BatchFatalError(
                                    "worker processes keep dying before loading the model "
                                    f"(exit code {w.proc.exitcode})"
                                )
                        replace(
                            i, "failed", f"the worker process died (exit code {w.proc.exitcode})"
                        )
                elif w.item is not None and time.monotonic() - w.started > timeout_s:
                    # Killing the worker is the only way to stop a stuck computation.
                    replace(i, "timeout", f"exceeded the per-study timeout of {timeout_s:g} s")
    finally:
        for w in pool:
            if w is not None:
                _stop(w, kill=w.item is not None)


def write_manifest(out: Path, results: list[ItemResult]) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow(r.manifest_row(out))
    return atomic.write_text(out / MANIFEST, buf.getvalue())


def read_manifest(out: str | os.PathLike[str]) -> list[dict[str, str]]:
    path = Path(out) / MANIFEST
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def exit_code(results: list[ItemResult]) -> int:
    return 1 if any(r.status in ("failed", "timeout") for r in results) else 0
