"""``python scripts/export.py [CHECKPOINT] [FOLDER]``: the trained encoder and decoder as ``torch.export``
programs (``FOLDER/encoder.pt2``, ``FOLDER/decoder.pt2``), for code that has torch but not this
package. Defaults: the pipeline's checkpoint, and ``exported/``."""

from __future__ import annotations

import sys
from pathlib import Path

from mnist_ae.api import export, load_model
from mnist_ae.core import paths
from mnist_ae.core.errors import run_stage


def main() -> None:
    checkpoint = Path(sys.argv[1]) if len(sys.argv) > 1 else paths.CHECKPOINT
    folder = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("exported")
    for name, path in export(load_model(checkpoint), folder).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    run_stage(main)
