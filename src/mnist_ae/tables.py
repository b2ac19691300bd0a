"""Small CSV tables that ``dvc plots`` draws (per-class errors, t-SNE points, k-NN predictions).

CSV because DVC reads it as data-series plots and a person or a spreadsheet reads it as is.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence

from .atomic import atomic_path


def write_csv(path: str | os.PathLike[str], header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write a header and rows as CSV, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
