"""report.html: one self-contained file (inline CSS, key images as base64 PNG), autoescaped."""

from __future__ import annotations

from typing import Any

from reporter.contracts.anatomy import Anatomy
from reporter.contracts.study import Study
from reporter.render.environment import render
from reporter.render.keyimages import KeyImage, render_key_image
from reporter.render.statements import Statement

MAX_KEY_IMAGES = 30  # bounds the file size on a study full of findings


def key_images(study: Study, anatomy: Anatomy, statements: list[Statement]) -> dict[str, KeyImage]:
    """One key image per positive or withheld statement, most significant first."""
    wanted = [
        s
        for s in statements
        if s.level is not None and (s.status == "withheld" or (s.abnormal and s.value is not None))
    ]
    wanted.sort(key=lambda s: (s.status != "withheld", -s.significance))
    out: dict[str, KeyImage] = {}
    for s in wanted[:MAX_KEY_IMAGES]:
        img = render_key_image(study, anatomy, s)
        if img is not None:
            out[s.key] = img
    return out


def render_html(context: dict[str, Any]) -> str:
    return render("report.html.j2", **context)
