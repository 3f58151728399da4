"""Exceptions with the exit code the CLI maps them to (sysexits, as in ARCHITECTURE.md)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_ITEMS_FAILED = 1
EXIT_USAGE = 64
EXIT_DATAERR = 65
EXIT_NOINPUT = 66
EXIT_SOFTWARE = 70
EXIT_CANTCREAT = 73


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


class ModelFileError(ReporterError):
    """A weight file is missing, damaged or does not match its recorded sha256."""

    exit_code = EXIT_NOINPUT
