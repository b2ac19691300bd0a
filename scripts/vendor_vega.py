"""Write `.dvc/plots/offline.html`: DVC's plots page with vega inlined, so it draws without network.

`dvc plots show` fills an HTML template; its own loads vega, vega-lite and vega-embed from a CDN, so
offline (or behind a firewall) every chart is blank. This template carries the three scripts inside
the page, whatever folder `-o` writes it to; `.dvc/config` names it as `plots.html_template`.

The releases are the ones dvc-render's page loads (`dvc_render.vega.VegaRenderer.SCRIPTS`), fetched
from the npm registry with `npm pack` (which checks each package's integrity). Their BSD-3-Clause
licenses go beside the template. Run from the project root: `python scripts/vendor_vega.py`.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGES = {"vega": "5.20.2", "vega-lite": "5.2.0", "vega-embed": "6.18.2"}  # load order matters
FOLDER = Path(".dvc/plots")

TEMPLATE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- {credits}: BSD-3-Clause, see .dvc/plots/vendor/. Written by scripts/vendor_vega.py. -->
{scripts}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def main() -> None:
    vendor = FOLDER / "vendor"
    vendor.mkdir(parents=True, exist_ok=True)
    scripts = []
    with tempfile.TemporaryDirectory() as tmp:
        specs = [f"{name}@{version}" for name, version in PACKAGES.items()]
        subprocess.run(["npm", "pack", "--silent", *specs], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        for name, version in PACKAGES.items():
            with tarfile.open(Path(tmp) / f"{name}-{version}.tgz") as tar:
                code = tar.extractfile(f"package/build/{name}.min.js").read().decode("utf-8")
                license_text = tar.extractfile("package/LICENSE").read()
            # The page is filled by plain string replacement and the code sits in a <script>: either
            # would break on these sequences, which none of these releases contains.
            for forbidden in ("</script", "<!--", "{plot_divs}", "{scripts}", "{refresh_tag}"):
                if forbidden in code:
                    sys.exit(f"error: {name}.min.js contains {forbidden!r}; it cannot be inlined as is")
            (vendor / f"LICENSE.{name}").write_bytes(license_text)
            scripts.append(f"    <script>/* {name} {version} */\n{code}\n    </script>")
    credits = ", ".join(f"{name} {version}" for name, version in PACKAGES.items())
    page = TEMPLATE.format(credits=credits, scripts="\n".join(scripts))
    (FOLDER / "offline.html").write_text(page, encoding="utf-8")
    print(f"wrote {FOLDER / 'offline.html'} ({len(page.encode()) // 1024} KiB): {credits}")


if __name__ == "__main__":
    main()
