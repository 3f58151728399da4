"""Keep library chatter off stderr: the command line's contract is one line per error.

pydicom, Pillow, highdicom, numpy and torch warn (and some log) about odd values in real-world
inputs, often quoting the value: a warning can carry a patient's name. The command line and its
batch workers install this once at start; the Python API leaves the caller's settings alone.
"""

from __future__ import annotations

import logging
import os
import warnings


def quiet_libraries() -> None:
    warnings.simplefilter("ignore")
    # Processes we spawn (batch workers) inherit the environment, so they start quiet too.
    os.environ["PYTHONWARNINGS"] = "ignore"
    # No record from any library reaches the last-resort stderr handler; a library that calls
    # logging.basicConfig later finds a handler already installed and adds none.
    root = logging.getLogger()
    if not any(isinstance(h, logging.NullHandler) for h in root.handlers):
        root.addHandler(logging.NullHandler())
    logging.disable(logging.CRITICAL)
