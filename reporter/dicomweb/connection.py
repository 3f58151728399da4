"""One authenticated, TLS-verified DICOMweb client per server, and its errors in our terms.

Credentials, first found wins (never from the command line, never logged):
    SPINE_REPORTER_DICOMWEB_TOKEN                       bearer token
    SPINE_REPORTER_DICOMWEB_USER + _PASSWORD            HTTP basic
    netrc: the file SPINE_REPORTER_NETRC or NETRC names, else ~/.netrc; the entry of the
           server's host (`machine HOST login USER password PASS`), else its `default`
TLS: certificates are verified. SPINE_REPORTER_DICOMWEB_CA_BUNDLE names a CA bundle (a PEM file
or a folder) for a PACS with a private CA; SPINE_REPORTER_DICOMWEB_INSECURE=1 switches
verification off (the CLI says so on stderr every time).

Errors (`translated`): cannot connect, TLS failure, timeout, HTTP 5xx or another refusal ->
ServiceUnavailableError (exit 69); HTTP 401 / 403 -> AccessDeniedError (77); HTTP 404 ->
InputMissingError (66). Messages carry the server, the status and its reason phrase, never a
response body (it can quote a patient's data).
"""

from __future__ import annotations

import contextlib
import netrc
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reporter.dicomweb.urls import ServerLocation
from reporter.errors import (
    AccessDeniedError,
    InputMissingError,
    ReporterError,
    ServiceUnavailableError,
    UsageError,
)

if TYPE_CHECKING:
    from dicomweb_client import DICOMwebClient

TOKEN_ENV = "SPINE_REPORTER_DICOMWEB_TOKEN"
USER_ENV = "SPINE_REPORTER_DICOMWEB_USER"
PASSWORD_ENV = "SPINE_REPORTER_DICOMWEB_PASSWORD"
NETRC_ENV = "SPINE_REPORTER_NETRC"
CA_BUNDLE_ENV = "SPINE_REPORTER_DICOMWEB_CA_BUNDLE"
INSECURE_ENV = "SPINE_REPORTER_DICOMWEB_INSECURE"
# Seconds to connect and to wait for a reply; a WADO-RS series can take a while to come.
TIMEOUT_S = (10.0, 120.0)


def insecure() -> bool:
    """True when the user has switched TLS verification off."""
    return os.environ.get(INSECURE_ENV, "").strip().lower() in ("1", "true", "yes")


def _netrc_file() -> Path | None:
    named = os.environ.get(NETRC_ENV) or os.environ.get("NETRC")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise UsageError(f"the netrc file {path} ({NETRC_ENV} / NETRC) does not exist")
        return path
    home = Path("~/.netrc").expanduser()
    return home if home.is_file() else None


def credentials(host: str) -> tuple[str, Any] | None:
    """("bearer", token) or ("basic", (user, password)) for `host`, or None."""
    token = os.environ.get(TOKEN_ENV)
    if token:
        return "bearer", token.strip()
    user, password = os.environ.get(USER_ENV), os.environ.get(PASSWORD_ENV)
    if user or password:
        if not (user and password):
            raise UsageError(f"set both {USER_ENV} and {PASSWORD_ENV}, or neither")
        return "basic", (user, password)
    path = _netrc_file()
    if path is None:
        return None
    try:
        entry = netrc.netrc(str(path)).authenticators(host)
    except (netrc.NetrcParseError, OSError) as exc:
        # The parser's message quotes the offending line, which may hold a password.
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        raise UsageError(f"cannot read the netrc file {path}{where}") from None
    if entry is None or not entry[0]:
        return None
    return "basic", (entry[0], entry[2] or "")


def _verify() -> bool | str:
    if insecure():
        return False
    bundle = os.environ.get(CA_BUNDLE_ENV)
    if bundle:
        path = Path(bundle).expanduser()
        if not path.exists():
            raise UsageError(f"the CA bundle {path} ({CA_BUNDLE_ENV}) does not exist")
        return str(path)
    return True


def connect(server: ServerLocation) -> DICOMwebClient:
    """A client for `server` with credentials and TLS settings from the environment."""
    import requests
    from dicomweb_client import DICOMwebClient

    session = requests.Session()
    session.verify = _verify()
    found = credentials(server.host)
    if found is not None and found[0] == "bearer":
        session.headers["Authorization"] = f"Bearer {found[1]}"
    elif found is not None:
        session.auth = found[1]
    client = DICOMwebClient(server.base_url, session=session, timeout=TIMEOUT_S)
    # The client's own retries (429 / 503 / 504, exponential) are kept short: watch mode backs
    # off between polls, and a single report should fail within seconds, not minutes.
    client.set_http_retry_params(retry=True, max_attempts=3, wait_exponential_multiplier=500)
    return client


@contextlib.contextmanager
def translated(server: ServerLocation, what: str) -> Iterator[None]:
    """Turn requests' and dicomweb-client's exceptions into one `ReporterError` line."""
    import requests

    try:
        yield
    except ReporterError:
        raise
    except requests.exceptions.HTTPError as exc:
        response = exc.response
        status = response.status_code if response is not None else 0
        phrase = (response.reason or "").strip() if response is not None else ""
        said = f"HTTP {status}" + (f" {phrase}" if phrase else "")
        if status in (401, 403):
            raise AccessDeniedError(
                f"the DICOMweb server {server} refused access ({what}: {said}); set credentials in "
                f"{USER_ENV} / {PASSWORD_ENV}, {TOKEN_ENV} or a netrc file"
            ) from None
        if status == 404:
            raise InputMissingError(
                f"not found on the DICOMweb server {server} ({what}: {said})"
            ) from None
        raise ServiceUnavailableError(
            f"the DICOMweb server {server} failed ({what}: {said})"
        ) from None
    except requests.exceptions.SSLError:
        raise ServiceUnavailableError(
            f"TLS with {server} failed ({what}): a plain-HTTP server needs dicomweb+http://, "
            f"a private certificate authority {CA_BUNDLE_ENV}"
        ) from None
    except requests.exceptions.Timeout:
        raise ServiceUnavailableError(
            f"the DICOMweb server {server} did not answer in time ({what})"
        ) from None
    except requests.exceptions.ConnectionError:
        raise ServiceUnavailableError(
            f"cannot reach the DICOMweb server {server} ({what})"
        ) from None
    except requests.exceptions.RequestException as exc:
        raise ServiceUnavailableError(
            f"the DICOMweb request to {server} failed ({what}: {type(exc).__name__})"
        ) from None
    except (ValueError, KeyError) as exc:
        # dicomweb-client raises these on a reply it cannot parse (wrong media type, a
        # multipart message without boundary): the server answered, but not in DICOMweb.
        raise ServiceUnavailableError(
            f"the server {server} sent a reply that is not DICOMweb ({what}: {type(exc).__name__})"
        ) from None
