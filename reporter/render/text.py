"""report.txt: the conventional lumbar MRI report as plain text."""

from __future__ import annotations

from typing import Any

from reporter.render.environment import render


def render_text(context: dict[str, Any]) -> str:
    return render("report.txt.j2", **context)
