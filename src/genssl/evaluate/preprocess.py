"""Deterministic evaluation preprocessing: resize the shorter side, then take the centre square.

An image (H, W) becomes ``size`` x ``size``: its shorter side is resized to ``round(size / crop_fraction)`` with an
antialiased ``interpolation`` filter (aspect ratio kept), then the central ``size`` x ``size`` square is cut out
(top and left offsets ``(H' - size) // 2``). ``crop_fraction`` 0.875 is the ImageNet convention (resize 256,
centre crop 224); 1 keeps the whole shorter side (CIFAR-size images stored at the encoder's size pass unchanged).
"""

import numpy as np
import torch
import torch.nn.functional as F

from genssl.generate.base import to_float_images, to_uint8_images

#: torch interpolation modes by the config's names.
MODES = {"bilinear": "bilinear", "bicubic": "bicubic"}


def resized_side(height: int, width: int, size: int, crop_fraction: float) -> tuple[int, int]:
    """(H', W') after resizing the shorter side of an (H, W) image to ``round(size / crop_fraction)``."""
    short = round(size / crop_fraction)
    if height <= width:
        return short, max(short, round(width * short / height))
    return max(short, round(height * short / width)), short


def resize_centre_crop(images: torch.Tensor, size: int, crop_fraction: float, interpolation: str) -> torch.Tensor:
    """Float images (B, 3, H, W) in [0, 1] -> (B, 3, size, size) in [0, 1] (module docstring)."""
    height, width = images.shape[-2:]
    new_h, new_w = resized_side(height, width, size, crop_fraction)
    if (new_h, new_w) != (height, width):
        images = F.interpolate(
            images, size=(new_h, new_w), mode=MODES[interpolation], antialias=True, align_corners=False
        ).clamp_(0, 1)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return images[..., top : top + size, left : left + size]


def preprocess_batch(
    images: np.ndarray | list[np.ndarray], size: int, crop_fraction: float, interpolation: str
) -> np.ndarray:
    """uint8 images, one (B, H, W, 3) array or a list of (H, W, 3) arrays of any sizes -> uint8 (B, size, size, 3),
    rounded after the resize as an image library's resize is (images already of the target geometry pass
    unchanged, without rounding)."""
    if isinstance(images, np.ndarray) and images.shape[1:3] == resized_side(*images.shape[1:3], size, crop_fraction):
        height, width = images.shape[1:3]
        top, left = (height - size) // 2, (width - size) // 2
        return np.ascontiguousarray(images[:, top : top + size, left : left + size])
    batch = [images] if isinstance(images, np.ndarray) else [image[None] for image in images]
    out = [to_uint8_images(resize_centre_crop(to_float_images(b), size, crop_fraction, interpolation)) for b in batch]
    return np.concatenate(out)
