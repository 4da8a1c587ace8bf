"""``digits``: scikit-learn's bundled handwritten digits (the offline embedded default).

1,797 grayscale 8 x 8 images of the digits 0-9 from the UCI "Optical Recognition of Handwritten Digits"
data, shipped inside scikit-learn (no download). Pixel values 0..16 become uint8 by ``round(v * 255 / 16)``
(white ink on black); the resize policy then scales them deterministically to ``image_size``. There is no
official split, so splits are seeded and stratified.
"""

from typing import Any

import numpy as np
from PIL import Image

from genssl.data.sources.base import Source


class DigitsSource(Source):
    def __init__(self, name: str, config: dict[str, Any], seed: int) -> None:
        super().__init__(name, config, seed)
        from sklearn.datasets import load_digits

        bunch = load_digits()
        self._images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
        self._labels = bunch.target.astype(np.int64)
        self.classes = [str(c) for c in bunch.target_names]

    def __len__(self) -> int:
        return len(self._labels)

    def load(self, index: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self._images[index], mode="L"), int(self._labels[index])
