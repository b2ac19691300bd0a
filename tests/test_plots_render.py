"""`dvc plots show` draws every chart and both figures offline, checked in a real headless browser.

The page is rendered with no `--html-template` argument: the committed `.dvc/config` names
`.dvc/plots/offline.html`, which carries vega inside the page. Chromium opens it with every
network request refused, so a chart that needed the CDN would stay blank. Skipped, with the
reason, where Chromium is missing (Debian: `apt-get install chromium`); failed instead under `CI=true`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import dvc, run, skip_or_fail

pytestmark = pytest.mark.slow

# Debian's and Ubuntu's names, then Google Chrome's (GitHub's runners have it): the same headless mode.
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome",
                                                "google-chrome-stable"))), None)
# No network at all: every host name fails to resolve, and any proxied request hits a closed port.
OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--disable-quic",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Added by the test after DVC wrote the page: counts what vega and the browser actually drew.
REPORT = """
<pre id="render-report"></pre>
<script>
  window.addEventListener("load", () => setTimeout(() => {
    const charts = [...document.querySelectorAll(".vega-embed canvas, .vega-embed svg")];
    const images = [...document.images];
    document.getElementById("render-report").textContent = JSON.stringify({
      charts: charts.filter(c => c.getBoundingClientRect().width > 100).length,
      images: images.length,
      images_drawn: images.filter(i => i.complete && i.naturalWidth > 100).length,
    });
  }, 3000));
</script>
"""


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    return run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", *OFFLINE,
                f"--user-data-dir={profile}", "--allow-file-access-from-files", *args], None, check=False,
               timeout_s=120, env=dict(os.environ))


def test_plots_page_draws_every_chart_and_image_offline(built_project: Path, tmp_path: Path) -> None:
    if CHROMIUM is None:
        skip_or_fail("Chromium is not installed (Debian: apt-get install chromium)")
    out = tmp_path / "plots"
    dvc("plots", "show", "-o", str(out), cwd=built_project)
    page = out / "index.html"
    html = page.read_text()
    assert "cdn.jsdelivr.net" not in html and not re.search(r"<script[^>]+src=", html)  # nothing to fetch
    head, _, tail = html.rpartition("</body>")  # the last one: vega-embed's code holds the string too
    page.write_text(head + REPORT + "</body>" + tail)

    dom = chromium("--virtual-time-budget=15000", "--dump-dom", page.as_uri(), profile=tmp_path / "profile").stdout
    report = re.search(r'<pre id="render-report">(.*?)</pre>', dom)
    assert report and report.group(1), dom[-2000:]
    # Six vega charts (training and validation loss, validation MSE, the objective's terms, per-class
    # bars, t-SNE by class, confusion) and the three figures (reconstructions, samples, t-SNE).
    assert json.loads(report.group(1)) == {"charts": 6, "images": 3, "images_drawn": 3}
