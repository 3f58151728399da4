"""Write every output of one report; all of them appear, or none (staged, then renamed in)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from reporter.anatomy.anatomy import Anatomy
from reporter.render import atomic
from reporter.render.context import build_context
from reporter.render.html import key_images, render_html
from reporter.render.json_out import render_json
from reporter.render.provenance import now_iso, render_provenance
from reporter.render.seg import build_seg
from reporter.render.sr import build_sr
from reporter.render.statements import Statement
from reporter.render.text import render_text
from reporter.report import Report
from reporter.study import Study

# File name per output kind; provenance.json is written last (it records the finish time).
FILES: dict[str, str] = {
    "text": "report.txt",
    "html": "report.html",
    "json": "findings.json",
    "seg": "seg.dcm",
    "sr": "report.sr.dcm",
    "provenance": "provenance.json",
}


def render_all(
    report: Report,
    study: Study,
    anatomy: Anatomy,
    statements: list[Statement],
    stage: Path,
    indication: str | None = None,
) -> dict[str, Path]:
    """Write all outputs into the folder `stage`; returns kind -> path inside `stage`."""
    paths = {kind: stage / name for kind, name in FILES.items()}
    seg = build_seg(study, anatomy)
    seg.dataset.save_as(paths["seg"], enforce_file_format=True)
    sr = build_sr(study, statements, report.measurements, seg, report.provenance)
    sr.save_as(paths["sr"], enforce_file_format=True)
    images = key_images(study, anatomy, statements)
    context = build_context(report, study, statements, images, indication)
    paths["text"].write_text(render_text(context), encoding="utf-8")
    paths["html"].write_text(render_html(context), encoding="utf-8")
    paths["json"].write_text(render_json(report, statements), encoding="utf-8")
    return paths


def write_outputs(
    report: Report,
    study: Study,
    anatomy: Anatomy,
    statements: list[Statement],
    out_dir: Path,
    indication: str | None = None,
    t0: float | None = None,
) -> dict[str, Path]:
    """Render into a hidden staging folder in `out_dir`, then move each file in atomically.

    A failure before the move leaves `out_dir` as it was (the staging folder is removed)."""
    out_dir = Path(out_dir)
    t_render = time.perf_counter()
    with atomic.staged_dir(out_dir) as stage:
        render_all(report, study, anatomy, statements, stage, indication)
        report.provenance.timings_s["render"] = round(time.perf_counter() - t_render, 3)
        if t0 is not None:
            report.provenance.timings_s["total"] = round(time.perf_counter() - t0, 3)
        report.provenance.finished_at = now_iso()
        (stage / FILES["provenance"]).write_text(
            render_provenance(report.provenance, anatomy), encoding="utf-8"
        )
        moved = atomic.commit_files(stage, out_dir, list(FILES.values()))
    by_kind = {kind: moved[name] for kind, name in FILES.items()}
    report.outputs = {kind: str(p) for kind, p in by_kind.items()}
    return by_kind


def summary(report: Report) -> dict[str, Any]:
    """Counts a command line prints after a report."""
    return {
        "withheld": len(report.withheld),
        "indeterminate": len(report.indeterminate),
        "verdicts": len(report.verdicts),
    }
