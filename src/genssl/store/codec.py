"""Turning an RGB image into the bytes a shard holds, and back."""

import io

import numpy as np
from PIL import Image

_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def encode_image(image: np.ndarray, encoding: str, quality: int = 95) -> bytes:
    """Bytes of an (H, W, 3) uint8 image: the C-order array for ``raw``, the encoded file otherwise.

    PNG is lossless; JPEG is written with 4:4:4 chroma and WebP in its lossy mode at ``quality``.
    Encoding is deterministic for a given Pillow build.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
    if encoding == "raw":
        return np.ascontiguousarray(image).tobytes()
    buffer = io.BytesIO()
    pil = Image.fromarray(image, mode="RGB")
    if encoding == "png":
        pil.save(buffer, format="PNG")
    elif encoding == "jpeg":
        pil.save(buffer, format="JPEG", quality=quality, subsampling=0)
    elif encoding == "webp":
        pil.save(buffer, format="WEBP", quality=quality, method=4)
    else:
        raise ValueError(f"unknown encoding {encoding!r}; known: raw, {', '.join(_PIL_FORMATS)}")
    return buffer.getvalue()


def decode_image(data: bytes | memoryview) -> np.ndarray:
    """The (H, W, 3) uint8 array of an encoded image."""
    with Image.open(io.BytesIO(data)) as pil:
        return np.asarray(pil.convert("RGB"))
