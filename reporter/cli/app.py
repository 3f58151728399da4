"""The typer application and the one error boundary every command goes through."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from reporter.errors import DEBUG_ENV, EXIT_SOFTWARE, ReporterError, describe_internal

# Diagnostics and progress go to stderr; stdout is reserved for results.
err_console = Console(stderr=True)
out_console = Console()

app = typer.Typer(
    name="spine-report",
    help="Draft structured lumbar spine MRI reports (preliminary AI drafts, not for clinical use).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

F = TypeVar("F", bound=Callable[..., Any])


# C0 and C1 controls, DEL and the Unicode line separators, written as escapes in stderr lines.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))} | {
    0x09: "\\t",
    0x0A: "\\n",
    0x0D: "\\r",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def one_line(text: str) -> str:
    """`text` with control characters written as escapes: a folder name or header value with a
    newline must not split an error line in two (nor a terminal escape reach the terminal)."""
    return text.translate(_CONTROLS)


def fail(message: str, code: int) -> typer.Exit:
    err_console.print(
        f"spine-report: error: {one_line(message)}", markup=False, highlight=False, soft_wrap=True
    )
    return typer.Exit(code=code)


def warn(message: str) -> None:
    err_console.print(
        f"spine-report: warning: {one_line(message)}", markup=False, highlight=False, soft_wrap=True
    )


def guarded(fn: F) -> F:
    """Turn our exceptions into one stderr line and their exit code; anything else is a bug (70)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except ReporterError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except BrokenPipeError:
            sys.stderr.close()
            raise typer.Exit(code=0) from None
        except Exception as exc:  # the boundary: never a traceback for the user
            if os.environ.get(DEBUG_ENV) == "1":
                traceback.print_exc()
            raise fail(
                f"{describe_internal(exc)}; please report it "
                f"(set {DEBUG_ENV}=1 to see the traceback)",
                EXIT_SOFTWARE,
            ) from None

    return wrapper  # type: ignore[return-value]
