"""Watch mode without a server or a model: the state file, stability over polls, recovery after
a kill, and back-off on server errors (QIDO, pulling and reporting replaced by fakes). The run
against a real Orthanc with real reports is in test_dicomweb_orthanc.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reporter import watch as watch_mod
from reporter.dicomweb import StudyListing, parse_server_url
from reporter.errors import AccessDeniedError, ServiceUnavailableError, UsageError
from reporter.watch import STATE_FILE, Watcher, WatchState, recover
from reporter.worklist import DONE_MARKER, ItemResult

SERVER = parse_server_url("dicomweb+http://127.0.0.1:1/dicom-web")


class FakePacs:
    """QIDO replies from a script (a list per poll, or an exception); pulls write one file;
    'reports' publish a folder with the done marker, as the batch workers do."""

    def __init__(self, polls: list[Any]) -> None:
        self.polls = list(polls)
        self.pulled: list[str] = []
        self.reported: list[str] = []

    def search(self, server: Any, **kw: Any) -> list[StudyListing]:
        reply = self.polls.pop(0) if len(self.polls) > 1 else self.polls[0]
        if isinstance(reply, BaseException):
            raise reply
        return [StudyListing(uid, n, ("MR",)) for uid, n in reply.items()]

    def fetch(self, loc: Any, dest: Path, client: Any = None) -> int:
        dest.mkdir(parents=True)
        (dest / "1.dcm").write_bytes(b"x")
        self.pulled.append(loc.study_uid)
        return 1

    def report_items(self, items: list[Any], out: Path, on_result: Any = None, **kw: Any):
        results = []
        for it in items:
            folder = out / it.item_id
            folder.mkdir()
            (folder / DONE_MARKER).write_text("{}")
            self.reported.append(it.item_id)
            result = ItemResult(it, "done", seconds=1.0)
            on_result(result)
            results.append(result)
        return results


@pytest.fixture
def pacs(monkeypatch: pytest.MonkeyPatch):
    def install(polls: list[Any]) -> FakePacs:
        fake = FakePacs(polls)
        monkeypatch.setattr(watch_mod, "search_mr_studies", fake.search)
        monkeypatch.setattr(watch_mod, "fetch_study", fake.fetch)
        monkeypatch.setattr(watch_mod, "report_items", fake.report_items)
        monkeypatch.setattr(watch_mod, "connect", lambda server: None)
        return fake

    return install


def _watcher(out: Path, sleeps: list[float] | None = None, **kw: Any) -> Watcher:
    sink = sleeps if sleeps is not None else []
    return Watcher(SERVER, out, interval=1.0, once=True, sleep=sink.append, **kw)


def _state(out: Path) -> dict[str, Any]:
    return json.loads((out / STATE_FILE).read_text())["studies"]


def test_a_new_study_is_reported_after_two_polls_with_the_same_count(
    pacs: Any, tmp_path: Path
) -> None:
    fake = pacs([{"1.1": 10, "1.2": 20}])
    sleeps: list[float] = []
    summary = _watcher(tmp_path, sleeps).run()
    assert summary.polls == 2 and sleeps == [1.0]  # polled twice, `interval` apart
    assert sorted(summary.reported) == ["1.1", "1.2"]
    assert {st["status"] for st in _state(tmp_path).values()} == {"done"}
    assert not (tmp_path / ".incoming").exists()

    again = _watcher(tmp_path).run()  # nothing new: one poll, nothing reported
    assert again.polls == 1 and again.reported == [] and len(fake.reported) == 2


def test_a_study_still_arriving_waits_until_its_count_is_stable(pacs: Any, tmp_path: Path) -> None:
    fake = pacs([{"1.1": 10}, {"1.1": 14}])
    first = _watcher(tmp_path).run()
    assert first.reported == [] and _state(tmp_path)["1.1"]["status"] == "waiting"
    assert _state(tmp_path)["1.1"]["instances"] == 14
    second = _watcher(tmp_path).run()  # 14 again: stable since the last run
    assert second.polls == 1 and second.reported == ["1.1"]
    assert fake.pulled == ["1.1"]


def test_instances_after_the_report_are_noted_not_rereported(pacs: Any, tmp_path: Path) -> None:
    fake = pacs([{"1.1": 10}])
    _watcher(tmp_path).run()
    fake.polls = [{"1.1": 13}]
    events: list[tuple[str, str]] = []
    later = _watcher(tmp_path, on_event=lambda k, m: events.append((k, m))).run()
    assert later.reported == [] and fake.pulled == ["1.1"]
    assert _state(tmp_path)["1.1"]["late_instances"] == 3
    assert any("after its report" in m for _, m in events)


def test_a_study_killed_in_progress_is_redone_once(pacs: Any, tmp_path: Path) -> None:
    fake = pacs([{"1.1": 10, "1.2": 10}])
    _watcher(tmp_path).run()
    st = _state(tmp_path)
    # As a SIGKILL leaves it: 1.1 in progress with no report folder; 1.2 in progress with its
    # folder complete (killed after the rename, before the state was written).
    item_1 = tmp_path / st["1.1"]["item_id"]
    for p in item_1.iterdir():
        p.unlink()
    item_1.rmdir()
    data = json.loads((tmp_path / STATE_FILE).read_text())
    for uid in ("1.1", "1.2"):
        data["studies"][uid]["status"] = "in_progress"
    (tmp_path / STATE_FILE).write_text(json.dumps(data))
    (tmp_path / ".staging-leftover").mkdir()

    summary = _watcher(tmp_path).run()
    assert summary.reported == ["1.1"]  # redone; 1.2 kept as it was
    assert fake.reported.count(st["1.1"]["item_id"]) == 2  # once killed, once finished
    assert fake.reported.count(st["1.2"]["item_id"]) == 1
    after = _state(tmp_path)
    assert after["1.1"]["status"] == after["1.2"]["status"] == "done"
    assert after["1.1"]["interruptions"] == 1 and after["1.2"]["interruptions"] == 0
    assert not (tmp_path / ".staging-leftover").exists()


def test_a_study_interrupted_three_times_is_failed_not_retried(tmp_path: Path) -> None:
    state = WatchState(tmp_path / STATE_FILE, str(SERVER), {})
    state.observe([StudyListing("1.1", 5)])
    state.set("1.1", status="in_progress", interruptions=2)
    recover(state, tmp_path, push=False)
    assert state.studies["1.1"].status == "failed"
    assert "interrupted 3 times" in state.studies["1.1"].reason


def test_server_errors_back_off_exponentially_then_recover(pacs: Any, tmp_path: Path) -> None:
    down = ServiceUnavailableError("cannot reach the DICOMweb server")
    fake = pacs([down, down, down, {"1.1": 3}, {"1.1": 3}])
    sleeps: list[float] = []
    watcher = Watcher(SERVER, tmp_path, interval=2.0, once=False, sleep=sleeps.append)

    def stop_after_report(kind: str, message: str) -> None:
        if kind == "reported":
            raise KeyboardInterrupt

    watcher.emit = stop_after_report
    with pytest.raises(KeyboardInterrupt):
        watcher.run()
    assert sleeps[:3] == [2.0, 4.0, 8.0]  # interval * 2**k
    assert sleeps[3] == 2.0  # a good poll resets it
    assert fake.reported and _state(tmp_path)["1.1"]["status"] in ("done", "reported")


def test_refused_credentials_end_the_watch_at_once(pacs: Any, tmp_path: Path) -> None:
    pacs([AccessDeniedError("refused")])
    sleeps: list[float] = []
    with pytest.raises(AccessDeniedError):
        Watcher(SERVER, tmp_path, interval=1.0, sleep=sleeps.append).run()
    assert sleeps == []


def test_a_server_error_while_pulling_puts_the_study_back_to_waiting(
    pacs: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pacs([{"1.1": 4}])

    def failing_fetch(*a: Any, **kw: Any) -> int:
        raise ServiceUnavailableError("HTTP 503")

    monkeypatch.setattr(watch_mod, "fetch_study", failing_fetch)
    with pytest.raises(ServiceUnavailableError):
        _watcher(tmp_path).run()
    st = _state(tmp_path)["1.1"]
    assert st["status"] == "waiting" and st["interruptions"] == 0


def test_a_damaged_state_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text("{not json")
    with pytest.raises(UsageError, match="watch state"):
        WatchState.load(tmp_path, str(SERVER))


def test_two_watches_on_one_folder_are_refused(tmp_path: Path) -> None:
    from reporter.errors import OutputError

    with watch_mod._locked(tmp_path), pytest.raises(OutputError, match="in use"):  # noqa: SIM117
        with watch_mod._locked(tmp_path):
            pass
