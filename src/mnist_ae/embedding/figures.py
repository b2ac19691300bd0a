"""The embed stage's figure, as a matplotlib ``Figure`` (no pyplot: no global state, no GUI backend)."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure


def tsne_figure(points: np.ndarray, labels: np.ndarray, title: str, names: list[str]) -> Figure:
    """The 2-D embedding as a scatter, one colour per class, with the classes' names in the legend."""
    figure = Figure(figsize=(7, 6))
    axis = figure.subplots()
    colours = colormaps["tab10"]
    for label in np.unique(labels):
        mask = labels == label
        axis.scatter(points[mask, 0], points[mask, 1], s=6, color=colours(int(label)), label=names[int(label)])
    axis.legend(title="class", markerscale=3, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    axis.set_xlabel("t-SNE 1")
    axis.set_ylabel("t-SNE 2")
    axis.set_title(title)
    figure.tight_layout()
    return figure
