"""DICOMweb without a server: URL schemes, credentials, TLS settings, and the one-line errors
(exit 69 / 64) of a server that cannot be reached. The round trips with a real Orthanc are in
test_dicomweb_orthanc.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from reporter.cli import app
from reporter.dicomweb import connection
from reporter.dicomweb.urls import is_dicomweb_url, parse_server_url, parse_study_url
from reporter.errors import EXIT_UNAVAILABLE, EXIT_USAGE, UsageError
from tests.orthanc_server import free_port

UID = "1.2.826.0.1.3680043.8.498.1"
CREDENTIAL_ENVS = (
    connection.TOKEN_ENV,
    connection.USER_ENV,
    connection.PASSWORD_ENV,
    connection.NETRC_ENV,
    "NETRC",
    connection.CA_BUNDLE_ENV,
    connection.INSECURE_ENV,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in CREDENTIAL_ENVS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc of the machine


@pytest.mark.parametrize(
    ("url", "base"),
    [
        (f"dicomweb://pacs.example/dicom-web/studies/{UID}", "https://pacs.example:443/dicom-web"),
        (f"dicomweb+https://pacs:8443/wado/studies/{UID}", "https://pacs:8443/wado"),
        (
            f"dicomweb+http://127.0.0.1:8042/dicom-web/studies/{UID}",
            "http://127.0.0.1:8042/dicom-web",
        ),
        (f"http://127.0.0.1/studies/{UID}/", "http://127.0.0.1:80"),
        (f"DICOMWEB+HTTP://[::1]:8042/dw/studies/{UID}", "http://[::1]:8042/dw"),
    ],
)
def test_study_url_schemes_map_to_transport_and_service_root(url: str, base: str) -> None:
    loc = parse_study_url(url)
    assert loc.study_uid == UID
    assert loc.server.base_url == base
    assert is_dicomweb_url(url) and parse_study_url(loc.url) == loc


def test_plain_dicomweb_scheme_is_https() -> None:
    assert parse_server_url("dicomweb://pacs/dicom-web").secure
    assert not parse_server_url("dicomweb+http://pacs/dicom-web").secure
    assert parse_server_url("dicomweb+http://pacs/dicom-web/studies/").base_url == (
        "http://pacs:80/dicom-web"
    )


@pytest.mark.parametrize(
    "url",
    [
        f"dicomweb://alice:secret@pacs/dicom-web/studies/{UID}",  # credentials on the command line
        "dicomweb://pacs/dicom-web/studies/",  # no UID
        "dicomweb://pacs/dicom-web/studies/1.2.abc",  # not a UID
        "dicomweb://pacs/dicom-web",  # not a study
        f"dicomweb:///dicom-web/studies/{UID}",  # no host
        f"dicomweb://pacs/dicom-web/studies/{UID}?x=1",
    ],
)
def test_malformed_study_urls_are_usage_errors(url: str) -> None:
    with pytest.raises(UsageError):
        parse_study_url(url)


def test_paths_are_not_urls() -> None:
    assert not is_dicomweb_url("study/dicom")
    assert not is_dicomweb_url(Path("dicomweb://x"))  # a Path has lost the '//' anyway
    assert not is_dicomweb_url("/data/dicomweb/studies/1.2")


def test_credentials_come_from_the_environment_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine pacs login bob password fromnetrc\n")
    monkeypatch.setenv(connection.NETRC_ENV, str(netrc))
    assert connection.credentials("pacs") == ("basic", ("bob", "fromnetrc"))
    assert connection.credentials("other-host") is None
    monkeypatch.setenv(connection.USER_ENV, "alice")
    with pytest.raises(UsageError, match="both"):
        connection.credentials("pacs")
    monkeypatch.setenv(connection.PASSWORD_ENV, "s3cret")
    assert connection.credentials("pacs") == ("basic", ("alice", "s3cret"))
    monkeypatch.setenv(connection.TOKEN_ENV, "tok")
    assert connection.credentials("pacs") == ("bearer", "tok")


def test_a_broken_netrc_is_named_without_quoting_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine pacs login bob password s3cret port 8042\n")  # no 'port' in netrc
    monkeypatch.setenv(connection.NETRC_ENV, str(netrc))
    with pytest.raises(UsageError) as err:
        connection.credentials("pacs")
    assert str(netrc) in str(err.value) and "line 1" in str(err.value)
    assert "s3cret" not in str(err.value) and "port" not in str(err.value)


def test_tls_is_verified_unless_switched_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = parse_server_url("dicomweb://pacs/dicom-web")
    assert connection.connect(server)._session.verify is True
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv(connection.CA_BUNDLE_ENV, str(bundle))
    assert connection.connect(server)._session.verify == str(bundle)
    monkeypatch.setenv(connection.CA_BUNDLE_ENV, str(tmp_path / "missing.pem"))
    with pytest.raises(UsageError):
        connection.connect(server)
    monkeypatch.setenv(connection.INSECURE_ENV, "1")
    assert connection.connect(server)._session.verify is False


def test_unreachable_server_is_exit_69_in_one_line_and_leaves_no_output(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    out = tmp_path / "out"
    url = f"dicomweb+http://127.0.0.1:{port}/dicom-web/studies/{UID}"
    result = CliRunner().invoke(app, ["report", url, "--out", str(out)])
    assert result.exit_code == EXIT_UNAVAILABLE
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the DICOMweb server" in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists()


def test_watch_against_an_unreachable_server_once_is_exit_69(tmp_path: Path) -> None:
    server = f"dicomweb+http://127.0.0.1:{free_port()}/dicom-web"
    args = ["watch", "--dicomweb", server, "--out", str(tmp_path / "w"), "--once"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == EXIT_UNAVAILABLE
    assert result.output.strip().splitlines()[-1].startswith("spine-report: error: cannot reach")


def test_push_of_a_local_study_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path), "--push"])
    assert result.exit_code == EXIT_USAGE
    assert "--push needs" in result.output


class _PagingClient:
    """QIDO pages of two studies; `honours_offset=False` repeats the first page forever."""

    def __init__(self, uids: list[str], honours_offset: bool) -> None:
        self.uids, self.honours_offset, self.calls = uids, honours_offset, 0

    def search_for_studies(self, *, limit: int, offset: int, **kw: object) -> list[dict]:
        self.calls += 1
        start = offset if self.honours_offset else 0
        return [
            {"0020000D": {"Value": [u]}, "00080061": {"Value": ["MR"]}, "00201208": {"Value": [3]}}
            for u in self.uids[start : start + limit]
        ]


@pytest.mark.parametrize("honours_offset", [True, False])
def test_study_search_pages_and_stops_on_a_server_that_ignores_offset(
    monkeypatch: pytest.MonkeyPatch, honours_offset: bool
) -> None:
    from reporter.dicomweb import query

    monkeypatch.setattr(query, "PAGE", 2)
    client = _PagingClient(["1.1", "1.2", "1.3", "1.4", "1.5"], honours_offset)
    found = query.search_mr_studies(parse_server_url("dicomweb://pacs/dw"), client=client)
    if honours_offset:
        assert [s.study_uid for s in found] == ["1.1", "1.2", "1.3", "1.4", "1.5"]
        assert client.calls == 3
    else:
        assert [s.study_uid for s in found] == ["1.1", "1.2"] and client.calls == 2


def test_an_unusable_pulled_study_is_named_by_its_url_not_the_temporary_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import contextlib

    import reporter.dicomweb as dicomweb
    from reporter.errors import InputDataError
    from reporter.ingest import load_study

    folder = tmp_path / "spine-report-dicomweb-x"
    folder.mkdir()
    (folder / "notes.txt").write_text("not DICOM")

    @contextlib.contextmanager
    def fake_fetched(loc: object, **kw: object):
        yield folder

    monkeypatch.setattr(dicomweb, "fetched_study", fake_fetched)
    url = f"dicomweb+http://127.0.0.1:8042/dicom-web/studies/{UID}"
    with pytest.raises(InputDataError) as err:
        load_study(url)
    assert str(folder) not in str(err.value)
    assert f"http://127.0.0.1:8042/dicom-web/studies/{UID}" in str(err.value)


def test_a_worklist_row_may_name_a_study_by_url(tmp_path: Path) -> None:
    from reporter.worklist import read_worklist

    url = f"dicomweb+http://127.0.0.1:8042/dicom-web/studies/{UID}"
    wl = tmp_path / "wl.csv"
    wl.write_text(f"study,accession\n{url},A1\nlocal/study,\n")
    items = read_worklist(wl)
    assert items[0].study == url  # kept as written: the worker pulls it
    assert items[1].study == str((tmp_path / "local" / "study").resolve())
    wl.write_text("study\ndicomweb://pacs/dicom-web/studies/not-a-uid\n")
    with pytest.raises(UsageError, match=r"wl\.csv:2"):
        read_worklist(wl)
