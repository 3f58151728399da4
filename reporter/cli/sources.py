"""What a study argument names (a folder, a file or a DICOMweb URL), and pushing a report back.

`report` and `watch` share these so that a URL means the same in both (reporter.dicomweb.urls).
"""

from __future__ import annotations

from pathlib import Path

from reporter.cli.app import err_console
from reporter.dicomweb.urls import StudyLocation, is_dicomweb_url, parse_study_url
from reporter.errors import UsageError


def study_source(text: str) -> Path | StudyLocation:
    """A DICOMweb study URL (checked now: a bad one is exit 64 before any work) or a path."""
    return parse_study_url(text) if is_dicomweb_url(text) else Path(text)


def default_out(source: Path | StudyLocation) -> Path:
    if isinstance(source, StudyLocation):
        return Path("out") / source.study_uid  # a UID names no one
    return Path("out") / (source.name or "study")


def note_tls() -> None:
    """Say on stderr, every time, that certificates are not checked when the user said so."""
    from reporter.dicomweb.connection import INSECURE_ENV, insecure

    if insecure():
        err_console.print(
            f"spine-report: warning: TLS certificate verification is off ({INSECURE_ENV})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def push_report(source: Path | StudyLocation, out_dir: Path) -> list[str]:
    """Store the report's SR and SEG in the study it came from (--push)."""
    from reporter.dicomweb import push_outputs

    if not isinstance(source, StudyLocation):
        raise UsageError("--push needs the study as a DICOMweb URL (it is stored back there)")
    uids = push_outputs(source.server, out_dir, study_uid=source.study_uid)
    err_console.print(
        f"pushed report.sr.dcm and seg.dcm to study {source.study_uid} on {source.server}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return uids
