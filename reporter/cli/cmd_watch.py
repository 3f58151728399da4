"""`spine-report watch`: report each new MR study on a DICOMweb server once (reporter.watch)."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from reporter.cli.app import app, err_console, guarded, out_console
from reporter.cli.sources import note_tls


def _stop_on_sigterm() -> None:
    """SIGTERM (a service manager stopping us) ends the watch with exit 0: workers are stopped,
    and a study left unfinished goes back to waiting (reporter.watch.Watcher._settle)."""
    from reporter.watch import WatchStopped

    def handler(signum: int, frame: FrameType | None) -> None:
        raise WatchStopped()

    signal.signal(signal.SIGTERM, handler)


@app.command()
@guarded
def watch(
    dicomweb: Annotated[
        str,
        typer.Option(
            "--dicomweb",
            help="The server's DICOMweb root, e.g. dicomweb+http://127.0.0.1:8042/dicom-web "
            "(dicomweb:// is HTTPS; README: DICOMweb).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Output folder: one report folder per study.")],
    push: Annotated[
        bool, typer.Option("--push", help="Store each SR and SEG back in its study (STOW-RS).")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between polls.", min=0.1)
    ] = 30.0,
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help="Poll (twice when a new study's instance count is not yet known to be "
            "stable), report what is ready, and exit.",
        ),
    ] = False,
    workers: Annotated[int, typer.Option("--workers", "-j", min=1)] = 1,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Per-study timeout in seconds.")
    ] = 600.0,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only studies dated from this day on (YYYYMMDD)."),
    ] = None,
    study_description: Annotated[
        str | None,
        typer.Option(
            "--study-description",
            help="Only studies whose StudyDescription matches (QIDO wildcards * and ?), "
            "e.g. '*SPINE*'.",
        ),
    ] = None,
    max_backoff: Annotated[
        float,
        typer.Option("--max-backoff", help="Longest wait in seconds after server errors."),
    ] = 600.0,
    model: Annotated[Path | None, typer.Option("--model")] = None,
    adapter: Annotated[Path | None, typer.Option("--adapter")] = None,
) -> None:
    """Poll a DICOMweb server for MR studies and report each exactly once (restart-safe state
    in OUT/watch-state.json); exit 1 with --once when a study failed, 69 when the server is
    unavailable with --once."""
    from reporter.dicomweb import parse_server_url
    from reporter.dicomweb.query import check_date
    from reporter.watch import Watcher, WatchStopped

    server = parse_server_url(dicomweb)
    check_date(since)
    note_tls()

    def on_event(kind: str, message: str) -> None:
        err_console.print(message, markup=False, highlight=False, soft_wrap=True)

    watcher = Watcher(
        server,
        out,
        push=push,
        interval=interval,
        once=once,
        workers=workers,
        timeout_s=timeout,
        model=None if model is None else str(model),
        adapter=None if adapter is None else str(adapter),
        since=since,
        study_description=study_description,
        max_backoff_s=max_backoff,
        on_event=on_event,
    )
    err_console.print(
        f"watching {server} for MR studies (every {interval:g} s) into {out}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    _stop_on_sigterm()
    try:
        summary = watcher.run()
    except WatchStopped:
        err_console.print("stopped", markup=False, highlight=False)
        return
    out_console.print(
        f"{summary.polls} poll(s): {len(summary.reported)} reported, "
        f"{len(summary.pushed)} pushed, {len(summary.failed)} failed",
        highlight=False,
    )
    if summary.failed:
        raise typer.Exit(code=1)
