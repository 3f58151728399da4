"""Exceptions with the exit code the CLI maps them to (sysexits, as in ARCHITECTURE.md)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_ITEMS_FAILED = 1
EXIT_USAGE = 64
EXIT_DATAERR = 65
EXIT_NOINPUT = 66
EXIT_UNAVAILABLE = 69
EXIT_SOFTWARE = 70
EXIT_CANTCREAT = 73
EXIT_NOPERM = 77


class ReporterError(Exception):
    """Base class: one clear line for the user, and the exit code."""

    exit_code = EXIT_SOFTWARE


class UsageError(ReporterError):
    exit_code = EXIT_USAGE


class InputDataError(ReporterError):
    """The input exists but cannot be used (not MR, no usable sagittal series, corrupt)."""

    exit_code = EXIT_DATAERR


class InputMissingError(ReporterError):
    exit_code = EXIT_NOINPUT


class OutputError(ReporterError):
    exit_code = EXIT_CANTCREAT


class ServiceUnavailableError(ReporterError):
    """A DICOMweb server cannot be reached, fails (HTTP 5xx), refuses the request or times out."""

    exit_code = EXIT_UNAVAILABLE


class AccessDeniedError(ServiceUnavailableError):
    """A DICOMweb server refused our credentials (HTTP 401 / 403)."""

    exit_code = EXIT_NOPERM


class ModelFileError(ReporterError):
    """A weight file is missing, damaged or does not match its recorded sha256."""

    exit_code = EXIT_NOINPUT


# Set to 1 to see the traceback of an internal error (on your own terminal: it may quote header
# values, which can be patient data).
DEBUG_ENV = "SPINE_REPORTER_DEBUG"


def describe_internal(exc: BaseException) -> str:
    """One line for an unexpected exception that names its type and where it was raised, never
    its message: messages of pydicom, highdicom and numpy quote the values they choke on, and a
    header value can be a patient's name or birth date."""
    import traceback
    from pathlib import Path

    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ is not None else []

    def short(filename: str) -> str:
        parts = Path(filename).parts
        for anchor in ("reporter", "site-packages"):
            if anchor in parts:
                i = len(parts) - 1 - parts[::-1].index(anchor)
                return "/".join(parts[i + (anchor == "site-packages") :])
        return Path(filename).name

    where = ""
    if frames:
        last = frames[-1]
        where = f" at {short(last.filename)}:{last.lineno}"
        ours = [f for f in frames if "reporter" in Path(f.filename).parts]
        if ours and ours[-1] is not last:
            where += f", called from {short(ours[-1].filename)}:{ours[-1].lineno}"
    return f"internal error ({type(exc).__name__}{where})"
