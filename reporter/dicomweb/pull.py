"""QIDO-RS + WADO-RS: a study's MR series from a server into a folder of DICOM files.

Only MR series are fetched (a study also holds localizer exports, key-image PDFs, earlier SRs
and SEGs of ours); instances come in the transfer syntax the server stored (`transfer-syntax=*`)
and are decoded by the same pixel decoders as files on disk. `fetched_study` holds them in a
private temporary folder that is removed on exit, whatever happens: nothing downstream reads
DICOM files again (reporter.contracts.study keeps pixel-free headers).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reporter.dicomweb.connection import connect, translated
from reporter.dicomweb.urls import StudyLocation
from reporter.errors import InputDataError, InputMissingError, OutputError

SERIES_UID = "0020000E"
MODALITY = "00080060"
# Ask for the stored transfer syntax: no transcoding on the server (lossless, and faster).
MEDIA_TYPES = (("application/dicom", "*"),)


def _series_uids(found: list[dict[str, Any]]) -> list[str]:
    uids = []
    for item in found or []:
        values = (item.get(SERIES_UID) or {}).get("Value") or []
        modality = ((item.get(MODALITY) or {}).get("Value") or [""])[0]
        if values and modality in ("MR", ""):
            uids.append(str(values[0]))
    return sorted(set(uids))


def _write(ds: Any, path: Path) -> None:
    import pydicom

    try:
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        # Never the message: it may quote a header value.
        raise InputDataError(
            f"an instance of the study could not be stored as a DICOM file ({type(exc).__name__})"
        ) from None


def fetch_study(loc: StudyLocation, dest: str | Path, *, client: Any = None) -> int:
    """Write the MR instances of the study at `loc` under `dest` (one folder per series);
    returns how many. InputMissingError (66) when the server has no such study, InputDataError
    (65) when it has no MR series; network failures as in reporter.dicomweb.connection."""
    folder = Path(dest)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write to {folder}: {exc.strerror or exc}") from None
    server = loc.server
    client = client or connect(server)
    uid = loc.study_uid
    with translated(server, f"QIDO-RS series search, study {uid}"):
        try:
            found = client.search_for_series(
                uid, search_filters={"Modality": "MR"}, fields=["Modality"]
            )
        except Exception as exc:
            # Some servers answer 404 for an unknown study, others an empty list; both are 66.
            if getattr(getattr(exc, "response", None), "status_code", None) == 404:
                found = []
            else:
                raise
    series = _series_uids(found)
    if not series:
        with translated(server, f"QIDO-RS study search, study {uid}"):
            studies = client.search_for_studies(search_filters={"StudyInstanceUID": uid})
        if not studies:
            raise InputMissingError(f"the DICOMweb server {server} has no study {uid}")
        raise InputDataError(f"study {uid} on {server} has no MR series")
    n = 0
    for series_uid in series:
        # Folder names are hashes: a series UID is fine to show, but short names keep paths short.
        sub = folder / hashlib.sha256(series_uid.encode()).hexdigest()[:12]
        sub.mkdir(exist_ok=True)
        with translated(server, f"WADO-RS retrieval, study {uid}"):
            for k, ds in enumerate(client.iter_series(uid, series_uid, media_types=MEDIA_TYPES)):
                _write(ds, sub / f"{k:05d}.dcm")
                n += 1
    if n == 0:
        raise InputDataError(f"study {uid} on {server} sent no MR instances")
    return n


@contextlib.contextmanager
def fetched_study(loc: StudyLocation, *, client: Any = None) -> Iterator[Path]:
    """The study's MR instances in a private temporary folder, removed on exit."""
    folder = Path(tempfile.mkdtemp(prefix="spine-report-dicomweb-"))
    try:
        fetch_study(loc, folder, client=client)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
