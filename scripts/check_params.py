"""``python scripts/check_params.py [FILE]``: check a params file against the schema without running anything.

``make repro`` runs this first because DVC reruns a stage only when a key it tracks changes: a
misspelt key (``train.epoch``) changes none, so ``dvc repro`` alone would say all is up to date.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mnist_ae.core.errors import run_stage
from mnist_ae.params import load_params


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("params.yaml")
    load_params(path)
    print(f"{path}: OK")


if __name__ == "__main__":
    run_stage(main)
