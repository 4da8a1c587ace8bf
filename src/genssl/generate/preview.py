"""``preview.png``: a grid of source images (first column) and their generated variants (the next columns)."""

import os

import numpy as np
from PIL import Image

#: Rows (sources, evenly spaced over the store) and variant columns shown at most.
ROWS, COLUMNS = 8, 8
#: Images smaller than this are scaled up by an integer factor (nearest neighbour), so 32 px digits stay visible.
MIN_CELL = 96
GAP = 2


def preview_grid(sources: np.ndarray, variants: np.ndarray) -> np.ndarray:
    """uint8 (R, H, W, 3) sources and (R, C, H, W, 3) variants -> one uint8 (rows, cols, 3) grid image on white."""
    rows, columns, height, width = variants.shape[:4]
    scale = max(1, -(-MIN_CELL // max(height, width)))
    cell_h, cell_w = height * scale, width * scale
    grid = np.full((rows * (cell_h + GAP) + GAP, (columns + 1) * (cell_w + GAP) + 2 * GAP, 3), 255, dtype=np.uint8)
    for r in range(rows):
        top = GAP + r * (cell_h + GAP)
        for c, image in enumerate([sources[r], *variants[r]]):
            left = GAP + c * (cell_w + GAP) + (GAP if c else 0)  # a double gap after the source column
            grid[top : top + cell_h, left : left + cell_w] = image.repeat(scale, 0).repeat(scale, 1)
    return grid


def save_preview(path: str | os.PathLike[str], sources: np.ndarray, variants: np.ndarray) -> None:
    """Write :func:`preview_grid` as a PNG (deterministic bytes for a given Pillow)."""
    Image.fromarray(preview_grid(sources, variants), mode="RGB").save(path, format="PNG")
