"""The evaluate stage's figures, as matplotlib ``Figure`` objects.

Built without pyplot: no global figure state to close, and no GUI backend to pick on a server.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from ..core.dataset import IMAGE_SHAPE


def _image(row: np.ndarray) -> np.ndarray:
    return row.reshape(IMAGE_SHAPE[1:])  # one channel: (height, width)


def reconstructions_figure(originals: np.ndarray, reconstructions: np.ndarray, indices: list[int]) -> Figure:
    """Originals in the top row, their reconstructions below, one column per example."""
    columns = len(indices)
    figure = Figure(figsize=(1.6 * columns, 3.6))
    axes = figure.subplots(2, columns, squeeze=False)
    for column, index in enumerate(indices):
        for row, images in enumerate((originals, reconstructions)):
            axis = axes[row, column]
            axis.imshow(_image(images[column]), cmap="gray", vmin=0, vmax=1)
            axis.set_axis_off()
        axes[0, column].set_title(f"#{index}", fontsize=9)
    figure.text(0.0, 0.72, "original", rotation=90, va="center", fontsize=10)
    figure.text(0.0, 0.28, "reconstructed", rotation=90, va="center", fontsize=10)
    figure.suptitle("Training images and their reconstructions")
    figure.tight_layout()
    return figure


def samples_figure(images: np.ndarray, title: str) -> Figure:
    """Decoded samples as a square grid, tiled into one image (one ``imshow``, not one per sample)."""
    side = math.ceil(math.sqrt(len(images)))
    height, width = IMAGE_SHAPE[1:]
    grid = np.ones((side * height, side * width), dtype=np.float32)
    for i, row in enumerate(images):
        top, left = (i // side) * height, (i % side) * width
        grid[top : top + height, left : left + width] = _image(row)
    figure = Figure(figsize=(6, 6.4))
    axis = figure.subplots()
    axis.imshow(grid, cmap="gray", vmin=0, vmax=1)
    axis.set_axis_off()
    axis.set_title(title, fontsize=10)
    figure.tight_layout()
    return figure
