"""Open the HTML report in headless Chromium (Debian package `chromium`) and check every plot rendered."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
from test_report import make_inputs

from ift_select.reporting.report import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Added to a copy of the page: after load, write each <img>'s naturalWidth (-1: not complete) into the DOM.
PROBE = """<script>window.addEventListener('load', () => {
  const imgs = [...document.images];
  const out = document.createElement('pre'); out.id = 'img-probe';
  out.textContent = JSON.stringify(imgs.map(i => i.complete ? i.naturalWidth : -1));
  document.body.appendChild(out);
});</script>"""


# CI installs chromium (make test): there a missing browser is a failure, not a skip.
@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                    reason="chromium is not installed (apt-get install -y chromium)")
def test_plots_render_in_headless_chromium(tmp_path):
    assert CHROMIUM, "chromium is not installed: `make test` installs it with apt-get"
    build_report(make_inputs(tmp_path), tmp_path / "reports")
    page = (tmp_path / "reports/report.html").read_text(encoding="utf-8")
    expected = page.count("<img ")
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
           "--dump-dom", probe.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    match = re.search(r'<pre id="img-probe">([^<]*)</pre>', done.stdout)
    assert match, f"no probe output (exit {done.returncode}): {done.stderr[-500:]}"
    widths = json.loads(match.group(1))
    # score histogram, per-arm scores, keyword and category balance, WS, win/tie/lose, categories, agreement
    assert expected == 8 and len(widths) == expected
    assert all(w > 0 for w in widths), widths
