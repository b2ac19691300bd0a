"""The pipeline's two figures, as matplotlib ``Figure`` objects.

Built without pyplot: no global figure state to close, and no GUI backend to pick on a server.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

IMAGE_SIDE = 28


def reconstructions_figure(originals: np.ndarray, reconstructions: np.ndarray, indices: list[int]) -> Figure:
    """Originals in the top row, their reconstructions below, one column per example."""
    columns = len(indices)
    figure = Figure(figsize=(1.6 * columns, 3.6))
    axes = figure.subplots(2, columns, squeeze=False)
    for column, index in enumerate(indices):
        for row, images in enumerate((originals, reconstructions)):
            axis = axes[row, column]
            axis.imshow(images[column].reshape(IMAGE_SIDE, IMAGE_SIDE), cmap="gray", vmin=0, vmax=1)
            axis.set_axis_off()
        axes[0, column].set_title(f"#{index}", fontsize=9)
    figure.text(0.0, 0.72, "original", rotation=90, va="center", fontsize=10)
    figure.text(0.0, 0.28, "reconstructed", rotation=90, va="center", fontsize=10)
    figure.suptitle("Training images and their reconstructions")
    figure.tight_layout()
    return figure


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
