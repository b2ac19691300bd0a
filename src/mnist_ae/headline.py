"""The headline metrics, declared once: what ``make exp-show`` keeps, ``make compare`` judges, the
noise floor measures the spread of, and ``make check-repro`` holds to a tolerance across machines.

Adding a downstream metric is two edits: the code that computes it (a stage writes it to its
metrics file) and one ``Headline`` here; every tool reads this list. ``pixels``: the
pixel_baseline stage scores the raw pixels through the same steps, as ``pixel_<name>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .core.paths import PIXEL_PREFIX  # the pixel_baseline stage's names (re-exported for the tools)

# Largest differences accepted on another machine (docs/reproducibility.md measures the drift):
# MSEs and losses move in their 5th digit; accuracies and clustering scores by a few images more or less.
LOSS_TOLERANCE = 0.001
SCORE_TOLERANCE = 0.02


@dataclass(frozen=True)
class Headline:
    name: str  # as the stage's metrics file and dvc exp show name it
    tolerance: float  # make check-repro's, across machines
    pixels: bool = False  # the pixels have a twin, pixel_<name>


HEADLINES = (
    Headline("train_loss", LOSS_TOLERANCE),
    Headline("test_mse", LOSS_TOLERANCE),
    Headline("test_loss", LOSS_TOLERANCE),
    Headline("knn_accuracy_codes", SCORE_TOLERANCE),
    Headline("knn_accuracy_tsne", SCORE_TOLERANCE),
    Headline("probe_accuracy", SCORE_TOLERANCE),
    *(Headline(f"{clustering}_{score}", SCORE_TOLERANCE, pixels=True)
      for clustering in ("cluster", "manifold") for score in ("accuracy", "nmi", "ari")),
)


def headline_names() -> list[str]:
    """Every headline metric's name, each pixel twin after the codes' metric."""
    return [name for h in HEADLINES for name in (h.name, *([PIXEL_PREFIX + h.name] if h.pixels else []))]


def headline_pattern() -> str:
    """A regular expression that matches the headline metrics as ``dvc exp show`` names its columns:
    bare, or behind their file's path where two files have a metric of that name."""
    return r"(?:[^:]+:)?(?:" + "|".join(map(re.escape, headline_names())) + ")"


def headline_tolerance(metric: str) -> float | None:
    """The declared tolerance of a headline metric (or its pixel twin), None for any other."""
    bare = metric.removeprefix(PIXEL_PREFIX)
    return next((h.tolerance for h in HEADLINES if h.name == bare and (h.pixels or bare == metric)), None)
