"""Watch mode: report every new MR study on a DICOMweb server exactly once.

Each poll asks the server (QIDO-RS) for its MR studies and their instance counts
(NumberOfStudyRelatedInstances). A study is reported once its count is the same on two
consecutive polls: a study still arriving from the scanner keeps growing between polls and is
left alone until it stops (counts seen by an earlier run count too, so `--once` on a quiet
server polls once, else twice, `interval` apart). Instances that arrive after a study was
reported are noted in the state file, not re-reported.

Exactly once, across crashes, with one state file `OUT/watch-state.json` (rewritten atomically
after every change; one entry per StudyInstanceUID, no patient data):

    waiting      seen; counting polls until its instance count is stable
    in_progress  written *before* the study is pulled and reported
    reported     its report folder is complete (published by an atomic rename); push pending
    done         reported (and pushed, with --push)
    failed       the study cannot be reported (reason kept); not retried

A run that starts and finds `in_progress` (the last one was killed) looks for the complete
report folder: when there, the study is reported (and pushed if asked); when not, it is redone
once more, up to three interruptions. So SIGKILL at any moment, then a restart, loses and
duplicates nothing: a report folder appears whole or not at all (reporter.worklist), and a
repeated push stores objects with the same SOP Instance UIDs, which a server keeps once.

Server errors (cannot connect, HTTP 5xx, timeouts) back off exponentially, from `interval` up to
`max_backoff_s`, and reset after a good poll; with `once` they end the run (exit 69). Refused
credentials (77) and a wrong server path (66) end the run whatever the mode.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from reporter.dicomweb import (
    ServerLocation,
    StudyListing,
    StudyLocation,
    fetch_study,
    push_outputs,
    search_mr_studies,
)
from reporter.dicomweb.connection import connect
from reporter.errors import (
    AccessDeniedError,
    InputDataError,
    InputMissingError,
    OutputError,
    ServiceUnavailableError,
    UsageError,
)
from reporter.render import atomic
from reporter.worklist import DONE_MARKER, ItemResult, WorkItem, item_id, report_items

STATE_FILE = "watch-state.json"
STATE_VERSION = 1
LOCK_FILE = ".watch.lock"
INCOMING = ".incoming"  # studies being pulled; removed after each batch and at start
MAX_INTERRUPTIONS = 3
Status = Literal["waiting", "in_progress", "reported", "done", "failed"]
EventFn = Callable[[str, str], None]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass
class StudyState:
    item_id: str  # the report folder's name under OUT (a hash of the StudyInstanceUID)
    status: Status = "waiting"
    instances: int | None = None  # at the last poll
    stable_polls: int = 0  # consecutive polls that found the same count
    interruptions: int = 0  # runs killed while it was in progress
    reason: str = ""
    seconds: float = 0.0
    reported_instances: int | None = None  # the count its report was made from
    pushed: list[str] = field(default_factory=list)  # SOP Instance UIDs stored back
    late_instances: int = 0  # instances that arrived after the report
    first_seen: str = ""
    updated: str = ""


class WatchState:
    """The state file of one output folder (see the module docstring)."""

    def __init__(self, path: Path, server: str, studies: dict[str, StudyState]) -> None:
        self.path = path
        self.server = server
        self.studies = studies

    @classmethod
    def load(cls, out: Path, server: str) -> WatchState:
        path = out / STATE_FILE
        if not path.exists():
            return cls(path, server, {})
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            known = {f.name for f in fields(StudyState)}
            studies = {
                str(uid): StudyState(**{k: v for k, v in rec.items() if k in known})
                for uid, rec in data["studies"].items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UsageError(
                f"cannot read the watch state {path} ({type(exc).__name__}); "
                "repair it or move it away to start afresh"
            ) from None
        return cls(path, server, studies)

    def save(self) -> None:
        data = {
            "version": STATE_VERSION,
            "server": self.server,
            "studies": {uid: asdict(st) for uid, st in sorted(self.studies.items())},
        }
        atomic.write_text(self.path, json.dumps(data, indent=1) + "\n")

    def set(self, uid: str, **changes: Any) -> StudyState:
        st = self.studies[uid]
        for key, value in changes.items():
            setattr(st, key, value)
        st.updated = _now()
        return st

    def observe(self, listing: list[StudyListing]) -> list[str]:
        """Record one poll; returns messages about new and late-growing studies."""
        notes = []
        for s in listing:
            st = self.studies.get(s.study_uid)
            if st is None:
                now = _now()
                self.studies[s.study_uid] = StudyState(
                    item_id=item_id(s.study_uid, None),
                    instances=s.n_instances,
                    first_seen=now,
                    updated=now,
                )
                notes.append(f"new study {s.study_uid} ({_count(s.n_instances)})")
            elif st.status == "waiting":
                if s.n_instances is not None and s.n_instances != st.instances:
                    self.set(s.study_uid, instances=s.n_instances, stable_polls=0)
                else:  # same count (or a server that does not count: stable by polls alone)
                    self.set(s.study_uid, stable_polls=st.stable_polls + 1)
            elif st.status in ("reported", "done") and st.reported_instances is not None:
                expected = st.reported_instances + len(st.pushed)
                late = (s.n_instances or 0) - expected
                if late > st.late_instances:
                    self.set(s.study_uid, late_instances=late)
                    notes.append(
                        f"study {s.study_uid} received {late} instance(s) after its report; "
                        "not re-reported (remove its entry from the state file to report again)"
                    )
        return notes

    def ready(self) -> list[str]:
        waiting = [
            (st.first_seen, uid)
            for uid, st in self.studies.items()
            if st.status == "waiting" and st.stable_polls >= 1
        ]
        return [uid for _, uid in sorted(waiting)]

    def unsettled(self) -> bool:
        return any(st.status == "waiting" and st.stable_polls < 1 for st in self.studies.values())

    def to_push(self) -> list[str]:
        return sorted(uid for uid, st in self.studies.items() if st.status == "reported")


def _count(n: int | None) -> str:
    return "instances not counted by the server" if n is None else f"{n} instances"


def recover(state: WatchState, out: Path, push: bool) -> list[str]:
    """Settle what a killed run left `in_progress` (see the module docstring)."""
    notes = []
    for uid, st in state.studies.items():
        if st.status != "in_progress":
            continue
        if (out / st.item_id / DONE_MARKER).exists():
            state.set(uid, status="reported" if push else "done", reported_instances=st.instances)
            notes.append(f"study {uid} was reported before an interruption; kept")
        elif st.interruptions + 1 >= MAX_INTERRUPTIONS:
            state.set(
                uid,
                status="failed",
                interruptions=st.interruptions + 1,
                reason=f"interrupted {MAX_INTERRUPTIONS} times while being reported",
            )
            notes.append(f"study {uid} failed: {state.studies[uid].reason}")
        else:
            state.set(uid, status="waiting", interruptions=st.interruptions + 1)
            notes.append(f"study {uid} was interrupted while being reported; redoing it")
    return notes


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """One watch per output folder: a second would report the same studies."""
    import fcntl

    path = out / LOCK_FILE
    try:
        fh = path.open("a+")
    except OSError as exc:
        raise OutputError(f"cannot write to {out}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise OutputError(f"{out} is in use by another spine-report watch") from None
        yield
    finally:
        fh.close()  # the lock goes with the file, also when the process is killed


class WatchStopped(BaseException):
    """Raised by a signal handler to end a watch between two steps (the CLI: SIGTERM)."""


@dataclass
class WatchSummary:
    polls: int = 0
    reported: list[str] = field(default_factory=list)
    pushed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class Watcher:
    """One watch over one server into one folder; `run()` polls until told to stop."""

    def __init__(
        self,
        server: ServerLocation,
        out: Path,
        *,
        push: bool = False,
        interval: float = 30.0,
        once: bool = False,
        workers: int = 1,
        timeout_s: float = 600.0,
        model: str | None = None,
        adapter: str | None = None,
        since: str | None = None,
        study_description: str | None = None,
        max_backoff_s: float = 600.0,
        on_event: EventFn | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if interval <= 0:
            raise UsageError(f"--interval must be positive, not {interval}")
        if workers < 1:
            raise UsageError(f"--workers must be at least 1, not {workers}")
        self.server = server
        self.out = out
        self.push = push
        self.interval = interval
        self.once = once
        self.workers = workers
        self.timeout_s = timeout_s
        self.model = model
        self.adapter = adapter
        self.since = since
        self.study_description = study_description
        self.max_backoff_s = max(max_backoff_s, interval)
        self.emit: EventFn = on_event or (lambda kind, message: None)
        self.sleep = sleep
        self.summary = WatchSummary()
        self.client: Any = None
        self.state: WatchState | None = None

    # --- the loop ---------------------------------------------------------------------------
    def run(self) -> WatchSummary:
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {self.out}: {exc.strerror or exc}") from None
        with _locked(self.out):
            shutil.rmtree(self.out / INCOMING, ignore_errors=True)
            atomic.remove_leftovers(self.out)
            self.state = WatchState.load(self.out, str(self.server))
            for note in recover(self.state, self.out, self.push):
                self.emit("recovered", note)
            self.state.save()
            self.client = connect(self.server)
            self._loop()
        return self.summary

    def _loop(self) -> None:
        assert self.state is not None
        failures = 0
        while True:
            try:
                self._poll()
                failures = 0
            except AccessDeniedError:
                raise
            except ServiceUnavailableError as exc:
                if self.once:
                    raise
                wait = min(self.max_backoff_s, self.interval * 2**failures)
                failures += 1
                self.emit("unavailable", f"{exc}; retrying in {wait:g} s")
                self.sleep(wait)
                continue
            if self.once and (self.summary.polls >= 2 or not self.state.unsettled()):
                return
            self.sleep(self.interval)

    def _poll(self) -> None:
        assert self.state is not None
        listing = search_mr_studies(
            self.server,
            since=self.since,
            study_description=self.study_description,
            client=self.client,
        )
        self.summary.polls += 1
        for note in self.state.observe(listing):
            self.emit("seen", note)
        self.state.save()
        self._push_pending()
        batch = max(2, 2 * self.workers)  # a few at a time: each pulled study sits on disk
        while ready := self.state.ready():
            self._report(ready[:batch])
            self._push_pending()

    # --- one batch ----------------------------------------------------------------------------
    def _report(self, uids: list[str]) -> None:
        state = self.state
        assert state is not None
        for uid in uids:
            state.set(uid, status="in_progress")
        state.save()  # before any work: a kill from here on is seen by the next run
        incoming = self.out / INCOMING
        by_item: dict[str, str] = {}
        items: list[WorkItem] = []
        try:
            for uid in uids:
                st = state.studies[uid]
                folder = incoming / st.item_id
                shutil.rmtree(folder, ignore_errors=True)
                try:
                    fetch_study(StudyLocation(self.server, uid), folder, client=self.client)
                except (InputMissingError, InputDataError) as exc:
                    self._failed(uid, str(exc))
                    shutil.rmtree(folder, ignore_errors=True)
                    continue
                by_item[st.item_id] = uid
                items.append(WorkItem(row=len(items) + 1, study=str(folder), item_id=st.item_id))
            if items:
                report_items(
                    items,
                    self.out,
                    workers=self.workers,
                    timeout_s=self.timeout_s,
                    model=self.model,
                    adapter=self.adapter,
                    on_result=lambda r: self._record(by_item[r.item.item_id], r),
                )
        finally:
            shutil.rmtree(incoming, ignore_errors=True)
            self._settle(uids)

    def _settle(self, uids: list[str]) -> None:
        """After a batch, whatever ended it (a server error while pulling, a worker that could
        not start, Ctrl-C): a study still `in_progress` whose report folder is complete counts
        as reported; any other goes back to waiting (stable still, so it is next)."""
        state = self.state
        assert state is not None
        changed = False
        for uid in uids:
            st = state.studies[uid]
            if st.status != "in_progress":
                continue
            changed = True
            if (self.out / st.item_id / DONE_MARKER).exists():
                state.set(
                    uid,
                    status="reported" if self.push else "done",
                    reported_instances=st.instances,
                )
            else:
                state.set(uid, status="waiting")
        if changed:
            state.save()

    def _record(self, uid: str, result: ItemResult) -> None:
        state = self.state
        assert state is not None
        if result.status in ("done", "skipped"):  # skipped: its folder was already complete
            st = state.set(
                uid,
                status="reported" if self.push else "done",
                reported_instances=state.studies[uid].instances,
                seconds=round(result.seconds, 2),
                reason="",
            )
            state.save()
            self.summary.reported.append(uid)
            self.emit("reported", f"reported {uid} -> {self.out / st.item_id}")
        else:
            self._failed(uid, result.reason or result.status)

    def _failed(self, uid: str, reason: str) -> None:
        assert self.state is not None
        self.state.set(uid, status="failed", reason=reason)
        self.state.save()
        self.summary.failed.append(uid)
        self.emit("failed", f"study {uid} failed: {reason}")

    def _push_pending(self) -> None:
        state = self.state
        assert state is not None
        if not self.push:
            return
        for uid in state.to_push():
            st = state.studies[uid]
            folder = self.out / st.item_id
            try:
                sop_uids = push_outputs(self.server, folder, study_uid=uid, client=self.client)
            except (InputMissingError, InputDataError) as exc:
                self._failed(uid, f"push: {exc}")
                continue
            state.set(uid, status="done", pushed=sop_uids)
            state.save()
            self.summary.pushed.append(uid)
            self.emit("pushed", f"pushed the SR and SEG of {uid} to {self.server}")


def run_watch(
    server_url: str,
    out: str | os.PathLike[str],
    **options: Any,
) -> WatchSummary:
    """Watch the DICOMweb server at `server_url` (reporter.dicomweb.urls) and report each new MR
    study into `out` exactly once; see the module docstring and `Watcher` for the options."""
    from reporter.dicomweb import parse_server_url

    return Watcher(parse_server_url(server_url), Path(out), **options).run()
