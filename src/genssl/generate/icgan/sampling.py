"""Sampling variants from an instance-conditioned GAN: what the ``icgan`` and ``icgan_pretrained`` backends share.

A variant of source image x is G(z, h(x)) mapped from [-1, 1] to [0, 1], h(x) = f(x) / ||f(x)|| the backend's
L2-normalised conditioning features and z the truncated noise of the sample (:func:`truncated_noise`). With
truncation t every entry is z_k ~ N(0, 1) conditioned on |z_k| <= 2t, drawn by inverting the normal CDF Phi:

    z_k = Phi^-1(Phi(-2t) + u_k (Phi(2t) - Phi(-2t))),  u_k ~ U[0, 1),

the distribution of ``scipy.stats.truncnorm(-2t, 2t)`` that the IC-GAN demo and the paper's public code sample
(truncation 0.7: |z_k| <= 1.4). The inverse CDF takes exactly one uniform per entry from the sample's generator, so
z depends on nothing but that generator (no rejection loop whose length would depend on the draws).

Batch independence: G runs in eval mode, where its batch norms use their stored statistics and its spectral norms
do not update, so a sample's result depends on its own (z, h) only; the encoder and G run on chunks of exactly
:data:`~genssl.generate.micro_batches.MICRO_BATCH` rows (:func:`~genssl.generate.micro_batches.in_micro_batches`),
so their bits do not depend on the batch shape either, nor on h being encoded once per source image (as
:meth:`~genssl.generate.base.VariantGenerator.generate` does) or once per variant.
"""

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from genssl.generate.base import VariantGenerator, to_float_images
from genssl.generate.icgan.biggan import Generator
from genssl.generate.micro_batches import in_micro_batches

#: Float images (B, 3, H, W) in [0, 1] -> the conditioning encoder's float32 features f(x) (B, F).
Encoder = Callable[[torch.Tensor], torch.Tensor]


def truncated_noise(generators: list[torch.Generator], dim: int, truncation: float | None) -> torch.Tensor:
    """float32 (B, ``dim``): row j drawn from ``generators[j]``, N(0, I) truncated to [-2t, 2t] per entry (the
    module docstring), or plain N(0, I) for ``truncation`` None."""
    if truncation is None:
        return torch.stack([torch.randn(dim, generator=g) for g in generators])
    low = torch.special.ndtr(torch.tensor(-2.0 * truncation, dtype=torch.float64))
    uniforms = torch.stack([torch.rand(dim, generator=g, dtype=torch.float64) for g in generators])
    return torch.special.ndtri(low + uniforms * (1 - 2 * low)).float()


class ICGANVariants(VariantGenerator):
    """G(z, c(h)) with its conditioning encoder h and the map c of h to G's input (the identity by default);
    ``config["truncation"]`` sets the noise truncation."""

    def __init__(
        self,
        name: str,
        config: dict[str, Any],
        device: torch.device,
        dtype: torch.dtype,
        generator: Generator,
        encoder: Encoder,
        condition: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__(name, config, device, dtype)
        self.generator = generator.to(device=device, dtype=dtype).eval()
        self.encoder = encoder
        self.condition = condition

    def _features(self, images: np.ndarray) -> torch.Tensor:
        """f(x) (B, F) float32 on the device of uint8 images (B, H, W, 3)."""
        return in_micro_batches(self.encoder, to_float_images(images).to(self.device))

    @torch.inference_mode()
    def conditioning_features(self, images: np.ndarray) -> np.ndarray:
        """float32 (B, F): the encoder's features f(x) of uint8 images (B, H, W, 3), before G's normalisation
        h = f(x) / ||f(x)||_2."""
        return self._features(np.asarray(images)).cpu().numpy()

    @torch.inference_mode()
    def encode(self, images: np.ndarray) -> torch.Tensor:
        """G's condition c(h) of each source image, h = f(x) / ||f(x)||_2 (B, F) on the device."""
        features = F.normalize(self._features(np.asarray(images)), dim=1)
        return features if self.condition is None else self.condition(features)

    @torch.inference_mode()
    def sample(self, conditions: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        """One variant per condition row: float (B, 3, R, R) in [0, 1] at the generator's resolution R."""
        if len(conditions) != len(generators):
            raise ValueError(f"{len(conditions)} conditions but {len(generators)} generators")
        noise = truncated_noise(generators, self.generator.dim_z, self.config["truncation"]).to(self.device)

        def generate(z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
            return self.generator(z.to(self.dtype), h.to(self.dtype)).float()

        return in_micro_batches(generate, noise, conditions).add(1).div(2).clamp(0, 1)
