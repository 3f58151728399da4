"""`--version`, `schema`, `inspect`, `doctor`."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from reporter import __version__
from reporter.cli.app import app, err_console, guarded, out_console, warn
from reporter.errors import InputDataError


def _version(value: bool) -> None:
    if value:
        out_console.print(f"spine-report {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Draft structured lumbar spine MRI reports; every statement checked against the images.

    Output is a preliminary AI draft, not for clinical use.
    """


@app.command()
@guarded
def schema() -> None:
    """Print the versioned JSON Schema of the findings."""
    from reporter.contracts.findings import json_schema_text

    print(json_schema_text())


def _wide_console() -> Console:
    """The terminal's console, or a wide one when stdout is piped or captured, so tables come
    out whole instead of with cells cut at 80 columns."""
    return out_console if out_console.is_terminal else Console(width=200)


def _fmt_spacing(spacing: list[float] | None) -> str:
    if not spacing:
        return "-"
    return f"{spacing[0]:.2g} / {spacing[1]:.2g}x{spacing[2]:.2g}"


@app.command()
@guarded
def inspect(
    study_dir: Annotated[Path, typer.Argument(help="DICOM folder (recursive) or NIfTI file.")],
    as_json: Annotated[bool, typer.Option("--json", help="A machine-readable list.")] = False,
    study_uid: Annotated[
        str | None, typer.Option("--study-uid", help="Pick one study from a mixed folder.")
    ] = None,
) -> None:
    """The series found: plane, weighting, slices, spacing, and what each would be used for.

    Exits 65 when the study cannot be used (no MR images, no usable sagittal series).
    """
    from rich.table import Table

    from reporter.ingest import scan

    inv = scan(study_dir, study_uid=study_uid)
    if as_json:
        keys = ("series_uid", "stack_index", "series_number", "description", "plane", "weighting",
                "n_slices", "spacing", "matrix", "vendor", "field_strength", "role", "usable",
                "problem")  # fmt: skip
        print(json.dumps([r.model_dump(include=set(keys)) for r in inv.rows], indent=2))
    else:
        table = Table(title=f"{inv.source}", title_justify="left")
        for col in ("#", "description", "plane", "weighting", "slices", "step / pixel mm",
                    "matrix", "vendor", "T", "use"):  # fmt: skip
            table.add_column(col)
        for r in inv.rows:
            use = r.role if r.usable else f"set aside: {r.problem}"
            number = "" if r.series_number is None else str(r.series_number)
            if r.stack_index:
                number += f".{r.stack_index}"
            table.add_row(
                number, r.description, r.plane or "-", r.weighting or "-", str(r.n_slices),
                _fmt_spacing(r.spacing), "x".join(map(str, r.matrix or [])) or "-", r.vendor,
                "-" if r.field_strength is None else f"{r.field_strength:g}", use,
            )  # fmt: skip
        console = _wide_console()
        if inv.rows:
            console.print(table)
        console.print(
            f"{inv.n_files} file(s) read, {inv.n_files_skipped} not DICOM", highlight=False
        )
    for w in inv.warnings:
        warn(w)
    if inv.refusal is not None:
        raise InputDataError(inv.refusal)


@app.command()
@guarded
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Pixel decoders available per transfer syntax, and library versions."""
    from rich.table import Table

    from reporter.ingest.decoders import decoder_table, gpl_plugins_installed, versions

    rows, vers = decoder_table(), versions()
    if as_json:
        print(json.dumps({"spine_report": __version__, "python": platform.python_version(),
                          "decoders": rows, "versions": vers}, indent=2))  # fmt: skip
        return
    table = Table(title="Pixel decoders (pydicom plugins)", title_justify="left")
    for col in ("transfer syntax", "UID", "decoder", "plugins / missing"):
        table.add_column(col)
    for r in rows:
        status = "[green]yes[/green]" if r["available"] else "[red]NO[/red]"
        detail = ", ".join(r["plugins"]) if r["available"] else "; ".join(r["missing"])
        table.add_row(r["name"], r["transfer_syntax_uid"], status, detail)
    console = _wide_console()
    console.print(table)
    console.print(f"spine-report {__version__}, Python {platform.python_version()}")
    for dist, version in vers.items():
        console.print(f"  {dist:<20} {version or '-'}", highlight=False)
    for dist in gpl_plugins_installed():
        err_console.print(
            f"spine-report: warning: {dist} (GPL-3.0) is installed and may be used by pydicom",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
