"""The HTML report opened in headless Chromium: the page renders and the key image is visible."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reporter.render import outputs
from tests.report_factory import make_study, severe_canal_report

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium() -> str | None:
    return next((p for n in CHROMIUM_NAMES if (p := shutil.which(n))), None)


def screenshot(html: Path, png: Path, profile: Path, size: str = "1200,2000") -> None:
    exe = chromium()
    if exe is None:
        pytest.skip("chromium is not installed")
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--screenshot={png}",
        f"--window-size={size}",
        html.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert png.exists(), (
        f"chromium wrote no screenshot (rc {proc.returncode}): {proc.stderr[-800:]}"
    )


def test_html_report_renders_in_chromium_with_key_image_visible(tmp_path: Path) -> None:
    if chromium() is None:
        pytest.skip("chromium is not installed")
    study, anatomy = make_study()
    report, statements = severe_canal_report(study, anatomy)
    out = tmp_path / "out"
    outputs.write_outputs(report, study, anatomy, statements, out)
    png = tmp_path / "shot.png"
    screenshot(out / "report.html", png, tmp_path / "profile")

    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    assert img.std() > 20  # not blank
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    banner = (r > 150) & (g < 40) & (b < 60)  # the red "PRELIMINARY AI DRAFT" banner
    disc_outline = (r > 220) & (g > 190) & (b < 60)  # the level's disc outline in the key image
    canal_outline = (r < 40) & (g > 170) & (b > 220)
    assert banner.sum() > 5000
    assert disc_outline.sum() > 100, "the key image's disc outline is not visible"
    assert canal_outline.sum() > 100, "the key image's canal outline is not visible"
