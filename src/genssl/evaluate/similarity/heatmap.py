"""Heatmap of a symmetric encoder x encoder matrix, every cell annotated with its value."""

import os

import numpy as np
from matplotlib.figure import Figure


def save_heatmap(
    path: str | os.PathLike[str], matrix: np.ndarray, labels: list[str], title: str, low: float, high: float
) -> None:
    """Write ``matrix`` (E, E) with row and column ``labels`` as a PNG, colours from ``low`` to ``high``."""
    size = max(4.0, 0.55 * len(labels) + 2.5)
    figure = Figure(figsize=(size + 1.2, size))
    axes = figure.subplots()
    image = axes.imshow(matrix, vmin=low, vmax=high, cmap="viridis")
    axes.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    axes.set_yticks(range(len(labels)), labels, fontsize=8)
    middle = (low + high) / 2
    for (i, j), value in np.ndenumerate(matrix):
        colour = "black" if value > middle else "white"
        axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6, color=colour)
    axes.set_title(title, fontsize=10)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    figure.tight_layout()
    figure.savefig(path, dpi=100, metadata={"Software": None})
