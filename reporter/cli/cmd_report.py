"""`spine-report demo`, `report` and `batch`: thin wrappers over reporter.pipeline / worklist."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from reporter.cli.app import app, err_console, guarded, out_console
from reporter.errors import UsageError

# The demo phantom's seed: in the unassigned range (300_000..999_999), so it is never a training,
# calibration or evaluation phantom; fixed, so every install shows the same study.
DEMO_SEED = 500_000
DEMO_SITE = "site-a"


def _print_summary(report: Any, title: str) -> None:
    from reporter.render.statements import build_statements, impression

    out_console.print(
        f"[bold]{title}[/bold]  (preliminary AI draft, not for clinical use)", soft_wrap=True
    )
    for line in report.limitations:
        out_console.print(f"LIMITATION: {line}", markup=False, highlight=False, soft_wrap=True)
    # The final findings already leave withheld statements out.
    statements = build_statements(report.findings, report.verdicts, None)
    low = {(d.get("level"), d.get("field")) for d in report.indeterminate}
    for s in statements:
        if (s.level, s.field) in low and s.status == "reported":
            s.status = "indeterminate"  # so the order matches the written impression
    groups = impression(statements)
    if groups:
        out_console.print("Impression:")
        for n, g in enumerate(groups, start=1):
            text = "; ".join(
                s.text + (" (indeterminate)" if s.status == "indeterminate" else "")
                for s in g["statements"]
            )
            out_console.print(
                f"  {n}. {g['level'] or 'Study'}: {text}", highlight=False, soft_wrap=True
            )
    else:
        out_console.print("Impression: no significant abnormality stated.")
    counts: dict[str, int] = {}
    for v in report.verdicts:
        counts[v.verdict] = counts.get(v.verdict, 0) + 1
    out_console.print(
        f"Verdicts: {counts.get('supported', 0)} supported, "
        f"{counts.get('unverifiable', 0)} unverifiable, "
        f"{counts.get('contradicted', 0)} contradicted (withheld); "
        f"{len(report.indeterminate)} indeterminate; "
        f"{report.provenance.timings_s.get('total', 0):.1f} s",
        highlight=False,
        soft_wrap=True,
    )
    for kind, path in report.outputs.items():
        out_console.print(f"  {kind:<11} {path}", highlight=False, soft_wrap=True)


def _make_demo_phantom(study_dir: str) -> str:
    from reporter.synth import generate_study, write_study

    return str(write_study(generate_study(DEMO_SEED, site=DEMO_SITE), study_dir))


def _make_demo_phantom_while_loading(study_dir: Path) -> Path:
    """The demo phantom, made in a forked child while this process imports the pipeline and
    loads the models (a cold demo spends seconds on each; on two cores they overlap). The same
    code with the same seed makes the same study. Where fork is not available: one after the
    other."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if "fork" not in multiprocessing.get_all_start_methods():
        return Path(_make_demo_phantom(str(study_dir)))
    # Forked before torch is imported here (nothing of it to inherit); the child only draws
    # and writes the phantom.
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        made = pool.submit(_make_demo_phantom, str(study_dir))
        from reporter.pipeline import preload

        preload()
        return Path(made.result())


@app.command()
@guarded
def demo(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the phantom study and its report.")
    ] = Path("spine-report-demo"),
) -> None:
    """Make one phantom study (fixed seed), report it, and print where everything went."""
    study_dir = out / "study"
    if study_dir.exists():
        # Only ever delete what an earlier demo made (a phantom folder has meta.json).
        if not (study_dir / "meta.json").exists():
            raise UsageError(f"{study_dir} exists and is not a demo phantom; choose another --out")
        shutil.rmtree(study_dir)
    err_console.print(f"making phantom study (seed {DEMO_SEED}, {DEMO_SITE}) ...")
    written = _make_demo_phantom_while_loading(study_dir)
    from reporter.pipeline import report_study

    err_console.print("reporting it ...")
    dicom = written / "dicom"  # the phantom folder also holds its truth; report the images
    report = report_study(dicom if dicom.is_dir() else written, out_dir=out / "report")
    _print_summary(report, f"Demo report of the phantom study in {written}")


@app.command()
@guarded
def report(
    study_dir: Annotated[
        str,
        typer.Argument(
            help="DICOM folder (or NIfTI file) of one study, or a DICOMweb study URL "
            "(dicomweb://HOST[:PORT]/PATH/studies/UID; README: DICOMweb).",
            metavar="STUDY",
        ),
    ],
    out: Annotated[Path | None, typer.Option("--out", help="Output folder.")] = None,
    seg: Annotated[
        Path | None, typer.Option("--seg", help="Label map (NIfTI or DICOM SEG) to use.")
    ] = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="Model folder (default: embedded).")
    ] = None,
    adapter: Annotated[Path | None, typer.Option("--adapter", help="LoRA adapter.")] = None,
    indication: Annotated[str | None, typer.Option("--indication")] = None,
    assert_unverifiable: Annotated[
        bool,
        typer.Option(
            "--assert-unverifiable",
            help="Also assert abnormal findings the images could not verify (default: listed "
            "apart as unconfirmed suggestions, not asserted; docs/report.md).",
        ),
    ] = False,
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy",
            help="Report policy: bands, contradicted-only or posterior (evidence-weighted; "
            "default: reporter/grounding/evidence_policy.json's default_policy).",
        ),
    ] = None,
    push: Annotated[
        bool,
        typer.Option("--push", help="Store report.sr.dcm and seg.dcm back in the study (STOW-RS)."),
    ] = False,
    deidentify: Annotated[
        bool,
        typer.Option(
            "--deidentify",
            help="De-identified outputs: DICOM PS3.15 Annex E basic profile, Retain UIDs and "
            "Retain Patient Characteristics options (README: De-identified outputs).",
        ),
    ] = False,
) -> None:
    """Report one study: report.txt / .html, findings.json, report.sr.dcm, seg.dcm, provenance."""
    from reporter.cli.sources import default_out, note_tls, push_report, study_source
    from reporter.pipeline import report_study

    source = study_source(study_dir)
    if push and isinstance(source, Path):
        raise UsageError("--push needs the study as a DICOMweb URL (it is stored back there)")
    note_tls()
    out_dir = out if out is not None else default_out(source)
    rep = report_study(
        str(source),
        out_dir=out_dir,
        seg=seg,
        model=model,
        adapter=adapter,
        indication=indication,
        withhold_unverifiable_positive=not assert_unverifiable,
        policy=policy,
        deidentify=deidentify,
    )
    if push:
        push_report(source, out_dir)
    _print_summary(rep, f"Report of {study_dir}")


@app.command()
@guarded
def batch(
    worklist: Annotated[
        Path, typer.Argument(help="CSV / JSONL worklist, or a folder of study folders.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Output folder (one per item).")] = Path("out"),
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-j",
            min=1,
            help="Workers, each loading the model once (local: default 1; ray: default one per "
            "CPU of the cluster).",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Per-study timeout in seconds.")
    ] = 600.0,
    model: Annotated[Path | None, typer.Option("--model")] = None,
    adapter: Annotated[Path | None, typer.Option("--adapter")] = None,
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            help="local (worker processes here) | ray (Ray actors; needs the [ray] extra).",
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="With --backend ray: the cluster (HEAD:6379); default: a private local Ray.",
        ),
    ] = None,
    deidentify: Annotated[
        bool,
        typer.Option(
            "--deidentify",
            help="De-identified outputs, as report --deidentify (item folders STUDY-ID-deid).",
        ),
    ] = False,
) -> None:
    """Report every item of a worklist; resumable; exit 1 when any item failed."""
    from reporter.worklist import MANIFEST, exit_code, run_batch

    if backend not in ("local", "ray"):
        raise UsageError(f"unknown --backend {backend!r}; expected local or ray")
    if address is not None and backend != "ray":
        raise UsageError("--address names a Ray cluster: use it with --backend ray")
    dispatch = None
    if backend == "ray":
        from reporter.worklist_ray import RayDispatch

        dispatch = RayDispatch(address=address)  # exit 69 here when Ray is not installed
    elif workers is None:
        workers = 1

    progress = Progress(
        TextColumn("[bold]reporting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )
    task = None

    def on_event(kind: str, result: Any, done: int, total: int) -> None:
        nonlocal task
        if kind == "start":
            # Started only once the worklist is read: a refused worklist leaves stderr to its
            # one error line (a live display stopped unused printed an empty line first).
            progress.start()
            task = progress.add_task("batch", total=total, completed=done, last="")
        elif task is not None and result is not None:
            last = f"{result.item.item_id}: {result.status}"
            progress.update(task, completed=done, last=last)

    try:
        results = run_batch(
            worklist,
            out,
            workers=workers,
            timeout_s=timeout,
            model=None if model is None else str(model),
            adapter=None if adapter is None else str(adapter),
            on_event=on_event,
            dispatch=dispatch,
            deidentify=deidentify,
        )
    finally:
        if task is not None:
            progress.stop()

    table = Table(title=f"batch summary ({out / MANIFEST})")
    for col in ("row", "item", "status", "seconds", "withheld", "reason"):
        table.add_column(col, overflow="fold")
    for r in results:
        row = r.manifest_row(out)
        style = {"failed": "red", "timeout": "red", "duplicate": "yellow"}.get(r.status)
        table.add_row(
            str(row["row"]),
            r.item.item_id,
            r.status,
            str(row["seconds"]),
            str(row["withheld"]),
            r.reason[:200],
            style=style,
        )
    out_console.print(table)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    out_console.print(
        ", ".join(f"{n} {status}" for status, n in sorted(counts.items())), highlight=False
    )
    code = exit_code(results)
    if code:
        raise typer.Exit(code=code)
