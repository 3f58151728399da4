"""`--version`, `schema`, `inspect`, `doctor`."""

from __future__ import annotations

from typing import Annotated

import typer

from reporter import __version__
from reporter.cli.app import app, guarded, out_console


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
    from reporter.schema import json_schema_text

    print(json_schema_text())
