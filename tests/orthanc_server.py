"""A real Orthanc PACS for tests (Debian `orthanc` + `orthanc-dicomweb`), no systemd.

`running_orthanc(folder)` writes a JSON configuration into `folder` (a free loopback HTTP port,
the DICOM port off, storage in `folder`, the DICOMweb plugin), starts `Orthanc` on it, waits
until its REST API answers, yields an `Orthanc`, and stops it. `users` turns HTTP basic
authentication on with those accounts. `missing_reason()` says why the tests must skip.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

BINARY_NAMES = ("Orthanc", "/usr/sbin/Orthanc")
PLUGIN_PATHS = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so",
    "/usr/lib/x86_64-linux-gnu/orthanc/libOrthancDicomWeb.so",
)
INSTALL_HINT = "apt-get install orthanc orthanc-dicomweb"


def binary() -> str | None:
    for name in BINARY_NAMES:
        found = shutil.which(name) or (name if Path(name).is_file() else None)
        if found:
            return found
    return None


def plugin() -> str | None:
    for path in PLUGIN_PATHS:
        if Path(path).is_file():
            return path
    folder = Path("/usr/lib/orthanc")
    found = sorted(folder.glob("libOrthancDicomWeb.so*")) if folder.is_dir() else []
    return str(found[0]) if found else None


def missing_reason() -> str | None:
    if binary() is None:
        return f"Orthanc is not installed ({INSTALL_HINT})"
    if plugin() is None:
        return f"the Orthanc DICOMweb plugin is not installed ({INSTALL_HINT})"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Orthanc:
    port: int
    folder: Path
    auth: tuple[str, str] | None = None

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb(self) -> str:
        """The DICOMweb root in our URL scheme (plain HTTP on loopback)."""
        return f"dicomweb+http://127.0.0.1:{self.port}/dicom-web"

    def study_url(self, study_uid: str) -> str:
        return f"{self.dicomweb}/studies/{study_uid}"

    def upload(self, folder: Path) -> set[str]:
        """POST every DICOM file under `folder` to /instances; returns the study UIDs."""
        studies = set()
        for path in sorted(folder.rglob("*.dcm")):
            reply = requests.post(
                f"{self.rest}/instances", data=path.read_bytes(), auth=self.auth, timeout=30
            )
            reply.raise_for_status()
            studies.add(reply.json()["ParentStudy"])
        return {self.study_uid(s) for s in studies}

    def study_uid(self, orthanc_id: str) -> str:
        reply = requests.get(f"{self.rest}/studies/{orthanc_id}", auth=self.auth, timeout=30)
        reply.raise_for_status()
        return str(reply.json()["MainDicomTags"]["StudyInstanceUID"])


def _wait(proc: subprocess.Popen[bytes], server: Orthanc, log: Path, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited ({proc.returncode}): {log.read_text()[-2000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{server.rest}/system", auth=server.auth, timeout=2).ok:
                return
        time.sleep(0.1)
    raise RuntimeError(f"Orthanc did not answer within {limit_s:g} s: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def running_orthanc(folder: Path, users: dict[str, str] | None = None) -> Iterator[Orthanc]:
    exe, so = binary(), plugin()
    if exe is None or so is None:
        raise RuntimeError(missing_reason())
    folder.mkdir(parents=True, exist_ok=True)
    storage = folder / "storage"
    storage.mkdir(exist_ok=True)
    port = free_port()
    config = {
        "Name": "spine-reporter-test",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "HttpPort": port,
        "RemoteAccessAllowed": False,  # loopback only
        "DicomServerEnabled": False,
        "DicomPort": 0,
        "AuthenticationEnabled": bool(users),
        "RegisteredUsers": users or {},
        "Plugins": [so],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "StorageCompression": False,
        "HttpTimeout": 60,
    }
    cfg = folder / "orthanc.json"
    cfg.write_text(json.dumps(config, indent=1))
    log = folder / "orthanc.log"
    auth = next(iter(users.items())) if users else None
    server = Orthanc(port, folder, auth)
    with log.open("wb") as fh:
        proc = subprocess.Popen([exe, str(cfg)], stdout=fh, stderr=subprocess.STDOUT)
    try:
        _wait(proc, server, log, 60)
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
