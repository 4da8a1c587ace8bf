"""Helpers shared by the tests."""

from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
#: The smallest icdiffusion generator the workflow tests train (seconds on a CPU).
TINY_ICDIFFUSION = {
    "backend": "icdiffusion",
    "variants": 2,
    "shards": 2,
    "inference_steps": 2,
    "unet": {"block_out_channels": [8, 16]},
    "train": {"steps": 10},
}


def write_png(path: Path, rng: np.random.Generator, size: tuple[int, int] = (20, 14)) -> np.ndarray:
    """Write a random RGB PNG of (width, height) ``size``; return its pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels
