"""STOW-RS: a report's DICOM objects (report.sr.dcm, seg.dcm) back into the source study.

Both objects already belong to the source study: highdicom copies the patient and study modules
(StudyInstanceUID included) from the images they reference, and the SR lists the source images
as evidence. Storing the same objects again is harmless: their SOP Instance UIDs do not change,
so a server keeps one copy (this is what makes a retried push in watch mode exactly-once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reporter.dicomweb.connection import connect, translated
from reporter.dicomweb.urls import ServerLocation
from reporter.errors import InputDataError, InputMissingError, ServiceUnavailableError

PUSHED_FILES = ("seg.dcm", "report.sr.dcm")  # the SEG first: the SR references it


def _read(path: Path) -> Any:
    import pydicom

    try:
        return pydicom.dcmread(path)
    except FileNotFoundError:
        raise InputMissingError(f"{path} does not exist; nothing to push") from None
    except Exception as exc:
        raise InputDataError(
            f"{path} is not a readable DICOM file ({type(exc).__name__})"
        ) from None


def push_outputs(
    server: ServerLocation,
    out_dir: str | Path,
    *,
    study_uid: str | None = None,
    client: Any = None,
) -> list[str]:
    """Store the report's SEG and SR from `out_dir` on `server`; returns their SOP Instance
    UIDs. With `study_uid`, refuse objects that belong to another study (InputDataError)."""
    folder = Path(out_dir)
    datasets = [_read(folder / name) for name in PUSHED_FILES]
    uids = {str(ds.StudyInstanceUID) for ds in datasets}
    if len(uids) != 1 or (study_uid is not None and uids != {study_uid}):
        raise InputDataError(
            f"the report in {folder} does not belong to study {study_uid or '(one study)'}"
        )
    target = uids.pop()
    client = client or connect(server)
    with translated(server, f"STOW-RS store, study {target}"):
        reply = client.store_instances(datasets, study_instance_uid=target)
    failed = list(getattr(reply, "FailedSOPSequence", None) or [])
    if failed:
        raise ServiceUnavailableError(
            f"{server} refused {len(failed)} of {len(datasets)} report objects of study "
            f"{target} (STOW-RS)"
        )
    return [str(ds.SOPInstanceUID) for ds in datasets]
