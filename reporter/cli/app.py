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


def fail(message: str, code: int) -> typer.Exit:
    err_console.print(
        f"spine-report: error: {message}", markup=False, highlight=False, soft_wrap=True
    )
    return typer.Exit(code=code)


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
