"""The resize policy: how a source image becomes a stored (H, W, 3) uint8 RGB image.

``center_crop``  scale so the shorter side is ``size``, then crop the centre ``size x size`` square
                 (the crop offset is ``floor((side - size) / 2)``);
``stretch``      scale both sides to ``size`` (aspect ratio not kept);
``shorter_side`` scale so the shorter side is ``size``, keep the aspect ratio (longer side rounded);
``none``         keep the source pixels.

Scaling uses PIL's resampling filter named by ``interpolation`` (antialiased when shrinking), which is
deterministic; every image is converted to RGB first (grayscale is replicated into three channels, an
alpha channel is dropped).
"""

import numpy as np
from PIL import Image

RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}


def _scale_shorter(image: Image.Image, size: int, resample: Image.Resampling) -> Image.Image:
    w, h = image.size
    if min(w, h) == size:
        return image
    new = (size, max(1, round(h * size / w))) if w <= h else (max(1, round(w * size / h)), size)
    return image.resize(new, resample)


def fit_image(image: Image.Image, size: int, policy: str, interpolation: str = "bicubic") -> np.ndarray:
    """Apply the resize ``policy`` to ``image``; return an (H, W, 3) uint8 array."""
    resample = RESAMPLING[interpolation]
    image = image.convert("RGB")
    if policy == "center_crop":
        image = _scale_shorter(image, size, resample)
        w, h = image.size
        left, top = (w - size) // 2, (h - size) // 2
        image = image.crop((left, top, left + size, top + size))
    elif policy == "stretch":
        if image.size != (size, size):
            image = image.resize((size, size), resample)
    elif policy == "shorter_side":
        image = _scale_shorter(image, size, resample)
    elif policy != "none":
        raise ValueError(f"unknown resize policy {policy!r}; known: center_crop, stretch, shorter_side, none")
    return np.asarray(image, dtype=np.uint8)
