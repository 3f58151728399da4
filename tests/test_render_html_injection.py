"""Nothing the input can say runs or loads in the HTML report: HTML and script planted in every
header string that reaches the page (series description, scanner, set-aside series, limitations)
and in the worklist's indication are shown as text. Opened in headless Chromium: no script runs
and no external resource is requested."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from reporter.contracts.study import SetAside
from reporter.render import outputs
from tests.report_factory import make_study, severe_canal_report
from tests.test_render_html_chromium import chromium


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Counter.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass


def _payloads(port: int) -> list[str]:
    beacon = f"http://127.0.0.1:{port}"
    return [
        f'<script>fetch("{beacon}/script");document.body.dataset.pwned="script"</script>',
        f'<img src="{beacon}/img.png" onerror="document.body.dataset.pwned=\'img\'">',
        f'"><svg onload="document.body.dataset.pwned=\'svg\'">'
        f'<link rel=stylesheet href="{beacon}/x.css">',
        f"<iframe src=\"{beacon}/frame\"></iframe><style>@import '{beacon}/imp.css';</style>",
    ]


def test_planted_html_in_headers_and_worklist_fields_neither_runs_nor_loads(
    tmp_path: Path,
) -> None:
    if chromium() is None:
        pytest.skip("chromium is not installed")
    server = http.server.HTTPServer(("127.0.0.1", 0), _Counter)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Counter.hits.clear()
    try:
        payloads = _payloads(port)
        study, anatomy = make_study()
        for n, s in enumerate(study.series):
            s.description = payloads[n % len(payloads)]
            s.vendor, s.model_name = payloads[1], payloads[2]
        study.set_aside.append(
            SetAside(series_uid="9.9", description=payloads[3], reason=payloads[0])
        )
        study.limitations.append(f"the sagittal T2 series '{payloads[2]}' could not be used")
        report, statements = severe_canal_report(study, anatomy)
        out = tmp_path / "out"
        outputs.write_outputs(report, study, anatomy, statements, out, indication=payloads[1])
        html = (out / "report.html").read_text()
        assert "<script>fetch" not in html and "&lt;script&gt;fetch" in html  # shown as text

        cmd = [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=3000", "--dump-dom", (out / "report.html").resolve().as_uri(),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        dom = proc.stdout
        assert "PRELIMINARY AI DRAFT" in dom, proc.stderr[-800:]  # the page did load
        assert "data-pwned" not in dom  # no planted handler or script ran
        assert _Counter.hits == []  # and nothing was fetched from outside the file
    finally:
        server.shutdown()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)
