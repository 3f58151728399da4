"""Commands of this area (registered on reporter.cli.app.app)."""

from __future__ import annotations

from reporter.cli.app import app  # noqa: F401
