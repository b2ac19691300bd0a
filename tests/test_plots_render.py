"""`dvc plots show` renders the loss chart and both figures, checked in a real headless browser.

DVC's page loads vega from a CDN, which an offline machine cannot reach: the test gives it the same
vega releases, fetched as npm packages, through DVC's own `--html-template` option. Skipped, with
the reason, where Chromium or npm is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import dvc, skip_or_fail

pytestmark = pytest.mark.slow

# Debian's and Ubuntu's names, then Google Chrome's (GitHub's runners have it): the same headless mode.
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome",
                                                "google-chrome-stable"))), None)
VEGA_PACKAGES = {"vega@5.20.2": "vega.min.js", "vega-lite@5.2.0": "vega-lite.min.js",
                 "vega-embed@6.18.2": "vega-embed.min.js"}  # the releases DVC's own page names

TEMPLATE = """<!DOCTYPE html>
<html>
<head>
  <title>DVC plots</title>
  <script src="vega.min.js"></script>
  <script src="vega-lite.min.js"></script>
  <script src="vega-embed.min.js"></script>
</head>
<body>
  {plot_divs}
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
</body>
</html>
"""


@pytest.fixture(scope="session")
def vega_scripts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if CHROMIUM is None:
        skip_or_fail("Chromium is not installed (Debian: apt-get install chromium)")
    npm = shutil.which("npm")
    if npm is None:
        skip_or_fail("npm is not installed, so vega cannot be fetched for an offline page")
    folder = tmp_path_factory.mktemp("vega")
    result = subprocess.run([npm, "pack", *VEGA_PACKAGES], cwd=folder, capture_output=True, text=True)
    if result.returncode != 0:
        skip_or_fail(f"npm could not fetch vega: {result.stderr.strip().splitlines()[-1:]}")
    for archive in folder.glob("*.tgz"):
        with tarfile.open(archive) as tar:
            for name in VEGA_PACKAGES.values():
                if f"package/build/{name}" in tar.getnames():
                    (folder / name).write_bytes(tar.extractfile(f"package/build/{name}").read())
    return folder


def test_plots_page_renders_charts_and_images(built_project: Path, vega_scripts: Path, tmp_path: Path) -> None:
    template = tmp_path / "template.html"
    template.write_text(TEMPLATE)
    out = tmp_path / "plots"
    dvc("plots", "show", "--html-template", str(template), "-o", str(out), cwd=built_project)
    for name in VEGA_PACKAGES.values():
        shutil.copy(vega_scripts / name, out / name)

    page = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--allow-file-access-from-files",
         "--virtual-time-budget=15000", "--dump-dom", (out / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout
    report = re.search(r'<pre id="render-report">(.*?)</pre>', page)
    assert report and report.group(1), page[-2000:]
    # One vega chart (the loss curves) and the two figures, all drawn at a readable size.
    assert json.loads(report.group(1)) == {"charts": 1, "images": 2, "images_drawn": 2}
