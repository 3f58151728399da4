"""DICOMweb URLs: which scheme means which transport, and where the study UID sits.

    dicomweb://HOST[:PORT]/PATH/studies/UID          HTTPS (the default is the safe one)
    dicomweb+https://HOST[:PORT]/PATH/studies/UID    HTTPS
    dicomweb+http://HOST[:PORT]/PATH/studies/UID     plain HTTP (a PACS on this machine, a test)
    https://... / http://...                         taken as they are

PATH is the service root (Orthanc: `/dicom-web`); the server URL (watch mode, STOW-RS) is the
same without `/studies/UID`. User names and passwords in a URL are refused: a command line ends
up in shell histories and process lists (credentials: reporter.dicomweb.connection).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from reporter.errors import UsageError

SCHEMES = {
    "dicomweb": "https",
    "dicomweb+https": "https",
    "dicomweb+http": "http",
    "https": "https",
    "http": "http",
}
_URL = re.compile(r"^(dicomweb(\+https?)?|https?)://", re.IGNORECASE)
# A DICOM UID: dot-separated numbers, at most 64 characters (PS3.5 9.1).
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def is_dicomweb_url(text: object) -> bool:
    """True for a string that starts with one of the schemes above (a path never does)."""
    return isinstance(text, str) and _URL.match(text.strip()) is not None


@dataclass(frozen=True)
class ServerLocation:
    """A DICOMweb service root, e.g. `http://127.0.0.1:8042/dicom-web`."""

    base_url: str  # http(s)://host:port/path, no trailing slash
    host: str
    port: int

    @property
    def secure(self) -> bool:
        return self.base_url.startswith("https://")

    def __str__(self) -> str:
        return self.base_url


@dataclass(frozen=True)
class StudyLocation:
    server: ServerLocation
    study_uid: str

    @property
    def url(self) -> str:
        return f"{self.server.base_url}/studies/{self.study_uid}"

    def __str__(self) -> str:
        return self.url


def _split(url: str, what: str) -> tuple[str, str, int, str]:
    text = url.strip()
    if not is_dicomweb_url(text):
        raise UsageError(
            f"{what} {text!r} is not a DICOMweb URL "
            "(expected dicomweb://, dicomweb+https:// or dicomweb+http://HOST[:PORT]/PATH)"
        )
    scheme_word, rest = text.split("://", 1)
    scheme = SCHEMES[scheme_word.lower()]
    parts = urlsplit(f"{scheme}://{rest}")
    if parts.username is not None or parts.password is not None:
        raise UsageError(
            "credentials in a DICOMweb URL are refused (they end up in shell histories and "
            "process lists); set SPINE_REPORTER_DICOMWEB_USER / _PASSWORD or use a netrc file"
        )
    if parts.query or parts.fragment:
        raise UsageError(f"{what} must not carry a query or fragment: {text!r}")
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"{what} has an invalid port: {text!r}") from None
    host = parts.hostname or ""
    if not host:
        raise UsageError(f"{what} names no host: {text!r}")
    port = port or (443 if scheme == "https" else 80)
    return scheme, host, port, parts.path.rstrip("/")


def _server(scheme: str, host: str, port: int, path: str) -> ServerLocation:
    shown_host = f"[{host}]" if ":" in host else host  # IPv6 literal
    return ServerLocation(f"{scheme}://{shown_host}:{port}{path}", host, port)


def parse_server_url(url: str) -> ServerLocation:
    """The service root of `url` (a trailing `/studies` is dropped)."""
    scheme, host, port, path = _split(url, "the DICOMweb server URL")
    if path.endswith("/studies"):
        path = path[: -len("/studies")]
    if "/studies/" in f"{path}/":
        raise UsageError(
            f"the DICOMweb server URL must be the service root, not a study: {url.strip()!r}"
        )
    return _server(scheme, host, port, path)


def parse_study_url(url: str) -> StudyLocation:
    """Server and StudyInstanceUID of `.../studies/UID` (UsageError, exit 64, otherwise)."""
    scheme, host, port, path = _split(url, "the study URL")
    head, sep, uid = path.rpartition("/studies/")
    if not sep or not uid:
        raise UsageError(f"the study URL must end in /studies/<StudyInstanceUID>: {url.strip()!r}")
    if len(uid) > 64 or not _UID.match(uid):
        raise UsageError(f"{uid!r} in the study URL is not a DICOM UID")
    return StudyLocation(_server(scheme, host, port, head), uid)
