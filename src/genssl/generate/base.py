"""The generator interface: K variants per source image, deterministic in (seed, image index, variant index).

A backend implements two steps. :meth:`VariantGenerator.encode` computes the condition of each source image (what
its K variants share: an encoder's embedding), once per image; :meth:`VariantGenerator.sample` draws one generated
image per row of conditions, with one CPU ``torch.Generator`` per row. Everything random about sample ``j`` (its
initial noise, an embedding's noise augmentation, a DDIM/DDPM step's noise) must be drawn from ``generators[j]``
alone, so a sample does not depend on which other samples share its batch.

:meth:`VariantGenerator.generate` is what callers use: it encodes the images (in chunks of ``batch_size`` images),
repeats each condition K times, seeds the generator of (image ``i``, variant ``v``) with
``derive_seed(seed, "generate", name, i, v)`` (:func:`variant_generators`), runs :meth:`sample` on batches of
``batch_size`` samples and resizes the results to ``out_size``. The variants of an image therefore depend only on
(seed, generator name, image index, variant index) and the source image, exactly with respect to the shard count
and the resume point (the generation driver keeps every call's images the same:
:meth:`genssl.generate.generation.GenerationPlan.shard_info`), and up to rounding with respect to the batch size:
batched kernels (MKL and oneDNN on the CPU, cuDNN on GPUs) may round differently for another batch shape, which
moves a few output values by one level (tested per backend). Encoding once per image rather than once per
variant is the same computation on fewer rows (tested per backend against per-variant encoding).
"""

import abc
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from genssl.errors import ConfigError
from genssl.seeding import derive_seed


def variant_generators(seed: int, name: str, indices: np.ndarray, variants: int) -> list[torch.Generator]:
    """CPU generators of the samples ``(indices[0], 0), (indices[0], 1), ..., (indices[-1], variants - 1)``
    (image-major), sample ``(i, v)`` seeded with ``derive_seed(seed, "generate", name, i, v)``."""
    return [
        torch.Generator().manual_seed(derive_seed(seed, "generate", name, int(i), v))
        for i in np.asarray(indices).tolist()
        for v in range(variants)
    ]


def to_uint8_images(images: torch.Tensor) -> np.ndarray:
    """Float (B, 3, H, W) in [0, 1] -> uint8 (B, H, W, 3) (rounded, clipped)."""
    return images.float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def to_float_images(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W) in [0, 1]."""
    return torch.as_tensor(np.asarray(images)).permute(0, 3, 1, 2).float().div(255)


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Float (B, 3, H, W) -> (B, 3, size, size): centre crop to a square, then antialiased bilinear resize."""
    height, width = images.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    images = images[..., top : top + side, left : left + side]
    if side == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def generation_device(requested: str) -> torch.device:
    """``auto``: CUDA when available, else the CPU; ``cuda`` without a device is an error."""
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("generators.*.device: 'cuda' requested but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


def generation_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The weights' dtype: fp32 on the CPU always; on CUDA fp16 for ``auto``/``fp16``, bf16, or fp32."""
    if device.type != "cuda" or precision == "fp32":
        return torch.float32
    return torch.bfloat16 if precision == "bf16" else torch.float16


class VariantGenerator(abc.ABC):
    """An instance-conditioned generator. ``name`` is the key of ``generators`` in the config (it seeds the
    samples); ``config`` that entry, resolved by the schema (``batch_size``, ``variants``, the backend's keys)."""

    def __init__(self, name: str, config: dict[str, Any], device: torch.device, dtype: torch.dtype) -> None:
        self.name, self.config, self.device, self.dtype = name, config, device, dtype

    @abc.abstractmethod
    def encode(self, images: np.ndarray) -> torch.Tensor:
        """The condition of each source image: uint8 (B, H, W, 3) in, a tensor (B, ...) on the device out, which
        :meth:`sample` takes one row per sample."""

    @abc.abstractmethod
    def sample(self, conditions: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        """One generated image per row of ``conditions`` (from :meth:`encode`): float (B, 3, h, w) in [0, 1] out
        (any device, any size). ``generators[j]`` is the only source of randomness of sample ``j``."""

    @abc.abstractmethod
    def conditioning_features(self, images: np.ndarray) -> np.ndarray:
        """float32 (B, D): the features of uint8 source images (B, H, W, 3) that the generator is conditioned on,
        from its conditioning encoder, before any normalisation the generator applies to them (what the
        similarity analysis compares the SSL encoders with)."""

    def generate(self, images: np.ndarray, indices: np.ndarray, seed: int, out_size: int) -> np.ndarray:
        """uint8 (B, H, W, 3) source images with their dataset indices (B,) -> uint8 (B, K, out_size, out_size, 3)
        with K = ``config["variants"]``, computed in batches of ``config["batch_size"]`` samples."""
        images = np.asarray(images)
        indices = np.asarray(indices, dtype=np.int64)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"expected uint8 images (B, H, W, 3), got {images.dtype} {images.shape}")
        if len(indices) != len(images):
            raise ValueError(f"{len(images)} images but {len(indices)} indices")
        variants, batch = self.config["variants"], self.config["batch_size"]
        generators = variant_generators(seed, self.name, indices, variants)
        out = np.empty((len(images) * variants, out_size, out_size, 3), dtype=np.uint8)
        with torch.inference_mode():
            conditions = torch.cat([self.encode(images[i : i + batch]) for i in range(0, len(images), batch)])
            rows = torch.arange(len(images), device=conditions.device).repeat_interleave(variants)
            for start in range(0, len(out), batch):
                stop = min(start + batch, len(out))
                samples = self.sample(conditions[rows[start:stop]], generators[start:stop])
                out[start:stop] = to_uint8_images(resize_images(samples.float(), out_size))
        return out.reshape(len(images), variants, out_size, out_size, 3)
