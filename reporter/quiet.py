"""Keep library chatter off stderr: the command line's contract is one line per error.

pydicom, Pillow, highdicom, numpy and torch warn (and some log) about odd values in real-world
inputs, often quoting the value: a warning can carry a patient's name. The command line and its
batch workers install this once at start; the Python API leaves the caller's settings alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator

_QUIET = False  # set by quiet_libraries: this process is the CLI or one of its workers


def quiet_libraries() -> None:
    global _QUIET
    _QUIET = True
    warnings.simplefilter("ignore")
    # Processes we spawn (batch workers) inherit the environment, so they start quiet too.
    os.environ["PYTHONWARNINGS"] = "ignore"
    # No record from any library reaches the last-resort stderr handler; a library that calls
    # logging.basicConfig later finds a handler already installed and adds none.
    root = logging.getLogger()
    if not any(isinstance(h, logging.NullHandler) for h in root.handlers):
        root.addHandler(logging.NullHandler())
    logging.disable(logging.CRITICAL)


@contextlib.contextmanager
def native_stderr_quiet() -> Iterator[None]:
    """File descriptor 2 pointed at /dev/null while C code runs: pixel decoders print to it on
    damaged streams (GDCM's libjpeg "Not a JPEG file: starts with 0xff 0x4f", OpenJPEG
    "Expected a SOC marker"), beyond the reach of Python's warning filters; the failure itself
    still arrives as an exception. Only in a process that called quiet_libraries (the CLI and its
    workers); the Python API leaves the caller's stderr alone."""
    if not _QUIET:
        yield
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to keep quiet
        yield
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
