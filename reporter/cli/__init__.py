"""The `spine-report` command: thin; parses, calls the Python API, sets exit codes.

Each area registers its commands in its own module so they stay small and apart.
"""

from __future__ import annotations

from reporter.cli import (  # noqa: F401  (imported for their @app.command registrations)
    cmd_anatomy,
    cmd_eval,
    cmd_foundation,
    cmd_report,
    cmd_segmenter,
    cmd_synth,
    cmd_vlm,
)
from reporter.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
