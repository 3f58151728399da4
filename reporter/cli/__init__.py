"""The `spine-report` command: thin; parses, calls the Python API, sets exit codes.

Each area registers its commands in its own module so they stay small and apart.
"""

from __future__ import annotations

import contextlib
import os
import sys

import typer

try:  # typer >= 0.26 carries its own click; older releases use the click package
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover
    from click import exceptions as click_exc  # type: ignore[no-redef]

from reporter.cli import (  # noqa: F401  (imported for their @app.command registrations)
    cmd_anatomy,
    cmd_eval,
    cmd_foundation,
    cmd_report,
    cmd_segmenter,
    cmd_synth,
    cmd_vlm,
    cmd_watch,
)
from reporter.cli.app import app, err_console
from reporter.errors import EXIT_USAGE
from reporter.quiet import quiet_libraries

PROG = "spine-report"
# typer >= 0.29 keeps Abort only in typer itself; older releases also raise click's Abort.
_ABORTS: tuple[type[BaseException], ...] = tuple(
    {typer.Abort, getattr(click_exc, "Abort", typer.Abort), KeyboardInterrupt}
)


def _usage_line(exc: click_exc.ClickException) -> str:
    """click's message (possibly several lines, with suggestions) as one line, plus where to
    look: the README promises one line on stderr and exit 64 for any usage error."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else PROG
    return f"{PROG}: error: {message} (see '{command} --help')"


def _silence_stdout() -> None:
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: list[str] | None = None) -> None:
    quiet_libraries()
    try:
        rv = app(args=argv, prog_name=PROG, standalone_mode=False)
    except click_exc.NoArgsIsHelpError:
        # `spine-report` alone: typer has printed the help, which is what the user needs; it is
        # still a usage error.
        sys.exit(EXIT_USAGE)
    except click_exc.ClickException as exc:  # UsageError, BadParameter, NoSuchOption, ...
        err_console.print(_usage_line(exc), markup=False, highlight=False, soft_wrap=True)
        sys.exit(EXIT_USAGE)
    except _ABORTS:
        err_console.print(f"{PROG}: error: interrupted", markup=False, highlight=False)
        sys.exit(130)
    except BrokenPipeError:
        # `spine-report ... | head`: the reader left; nothing is wrong with the run. Point stdout
        # at /dev/null so the interpreter's final flush does not raise a second time.
        _silence_stdout()
        sys.exit(0)
    sys.exit(rv if isinstance(rv, int) else 0)


__all__ = ["app", "main"]
