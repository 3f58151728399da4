"""Write every output of one report; all of them appear, or none (staged, then renamed in)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reporter.contracts.anatomy import Anatomy
from reporter.contracts.report import Report
from reporter.contracts.study import Study
from reporter.errors import OutputError
from reporter.render import atomic
from reporter.render.context import build_context
from reporter.render.deidentify import DEIDENTIFIED_NOTE, deidentify_output
from reporter.render.html import key_images, render_html
from reporter.render.json_out import render_json
from reporter.render.provenance import now_iso, render_provenance
from reporter.render.seg import build_seg, multiframe_problem, reference_series
from reporter.render.source_headers import quiet_writers
from reporter.render.sr import build_sr
from reporter.render.statements import Statement
from reporter.render.text import render_text

# File name per output kind; provenance.json is written last (it records the finish time).
FILES: dict[str, str] = {
    "text": "report.txt",
    "html": "report.html",
    "json": "findings.json",
    "seg": "seg.dcm",
    "sr": "report.sr.dcm",
    "provenance": "provenance.json",
}


@contextlib.contextmanager
def _writing(stage: Path) -> Iterator[None]:
    """A write that fails (disk full, the folder made read-only) is an OutputError: one line,
    exit 73, and the staging folder goes; not an internal error (70)."""
    try:
        yield
    except OSError as exc:
        folder = stage.parent
        while folder.name.startswith(atomic.STAGING_PREFIX):  # a batch's staging: name OUT
            folder = folder.parent
        raise OutputError(f"cannot write the report in {folder}: {_why(exc)}") from exc


def _why(exc: BaseException) -> str:
    """The system's words for a failed write. pydicom re-raises a write error with the tag and
    the traceback in its message; the original error it chains to has the errno."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__


def dicom_possible(study: Study, anatomy: Anatomy) -> str | None:
    """None when SR and SEG can be written; else why not (they need the source DICOM headers,
    which a NIfTI input does not have)."""
    series = reference_series(study, anatomy)
    if len(series.headers) != series.shape[0]:
        return (
            "report.sr.dcm and seg.dcm not written: the input has no DICOM headers to "
            "reference (NIfTI or 2-D image input)"
        )
    problem = multiframe_problem(series)
    if problem is not None:
        return f"report.sr.dcm and seg.dcm not written: {problem}"
    return None


def render_all(
    report: Report,
    study: Study,
    anatomy: Anatomy,
    statements: list[Statement],
    stage: Path,
    indication: str | None = None,
    deidentify: bool = False,
) -> dict[str, Path]:
    """Write the outputs into the folder `stage`; returns kind -> path inside `stage`
    (provenance.json is written by the caller, last). `deidentify`: `study` is already the
    de-identified view (reporter.render.deidentify); SEG and SR go through the profile too."""
    paths: dict[str, Path] = {}
    why_not = dicom_possible(study, anatomy)
    if deidentify:
        report.technique["notes"] = [*report.technique.get("notes", []), DEIDENTIFIED_NOTE]
    if why_not is None:
        with quiet_writers():
            seg = build_seg(study, anatomy)
            if deidentify:
                deidentify_output(seg.dataset)
            paths["seg"] = stage / FILES["seg"]
            with _writing(stage):
                seg.dataset.save_as(paths["seg"], enforce_file_format=True)
            sr = build_sr(study, statements, report.measurements, seg, report.provenance)
            if deidentify:
                deidentify_output(sr)
            paths["sr"] = stage / FILES["sr"]
            with _writing(stage):
                sr.save_as(paths["sr"], enforce_file_format=True)
    else:
        report.technique["notes"] = [*report.technique.get("notes", []), why_not]
    # SEG and SR first (their errors are the ones to report), then the key images, on this
    # thread. Drawn on a second thread while SEG and SR were built, they gained nothing once
    # they cost 0.2 s: highdicom holds the GIL and the drawing thread waited for it (1.5 s on
    # the thread against 0.2 s alone, demo study).
    images = key_images(study, anatomy, statements)
    context = build_context(report, study, statements, images, indication)
    for kind, text in (
        ("text", render_text(context)),
        ("html", render_html(context)),
        ("json", render_json(report, statements)),
    ):
        paths[kind] = stage / FILES[kind]
        with _writing(stage):
            paths[kind].write_text(text, encoding="utf-8")
    return paths


def write_outputs(
    report: Report,
    study: Study,
    anatomy: Anatomy,
    statements: list[Statement],
    out_dir: Path,
    indication: str | None = None,
    t0: float | None = None,
    deidentify: bool = False,
) -> dict[str, Path]:
    """Render into a hidden staging folder in `out_dir`, then move each file in atomically.

    A failure before the move leaves `out_dir` as it was (the staging folder is removed)."""
    out_dir = Path(out_dir)
    t_render = time.perf_counter()
    with atomic.staged_dir(out_dir) as stage:
        written = render_all(report, study, anatomy, statements, stage, indication, deidentify)
        report.provenance.timings_s["render"] = round(time.perf_counter() - t_render, 3)
        if t0 is not None:
            report.provenance.timings_s["total"] = round(time.perf_counter() - t0, 3)
        report.provenance.finished_at = now_iso()
        written["provenance"] = stage / FILES["provenance"]
        with _writing(stage):
            written["provenance"].write_text(
                render_provenance(report.provenance, anatomy), encoding="utf-8"
            )
        kinds = [k for k in FILES if k in written]  # provenance.json moves in last
        moved = atomic.commit_files(stage, out_dir, [FILES[k] for k in kinds])
    by_kind = {kind: moved[FILES[kind]] for kind in kinds}
    report.outputs = {kind: str(p) for kind, p in by_kind.items()}
    return by_kind


def summary(report: Report) -> dict[str, Any]:
    """Counts a command line prints after a report."""
    return {
        "withheld": len(report.withheld),
        "indeterminate": len(report.indeterminate),
        "verdicts": len(report.verdicts),
    }
