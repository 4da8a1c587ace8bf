"""Generative augmentation in pretraining: a view's source image is, with probability ``p``, one of its K
pre-generated variants instead of the real image (arXiv 2403.05966, with the standard augmentations on top).

For image ``i`` in epoch ``e`` every view ``w`` draws ``u_w ~ U[0, 1)`` and ``k_w ~ U{0..K-1}``, counter-based from
(seed, e, i, w) (:class:`VariantChoice`, ``assignment: per_step``) or from (seed, i, w) alone, the same in every
epoch (``assignment: per_run``); the view uses variant ``k_w`` when ``u_w < p`` (never for view 0 with
``views: second``). The draws depend only on (seed, epoch, image), not on the batch, the process count or the
resume point, and they are shared by every p: a view replaced at p = 0.25 is also replaced at p = 0.5. The view's
standard augmentations draw from their own generator, untouched by this, so p = 0 gives exactly the standard
pipeline.

The released code (VectorInstitute/GenerativeSSL) replaces the second view only, with p = 1 in its main configs,
and draws a coin and a variant per image whenever it builds its data pipeline, which it rebuilds every epoch:
``views: second, assignment: per_step`` (docs/paper-settings.md, "Generative sampling").

``mode`` sets which standard augmentations follow (the paper's ablation): all of the method's
(``generative+standard``), random resized crop and flip only (``generative+crop``), or none (``generative-only``).
"""

import dataclasses
from typing import Any

import numpy as np
import torch

from genssl.augment.pipeline import ViewSpec
from genssl.errors import ConfigError
from genssl.generate.variant_store import VariantStore
from genssl.seeding import derive_seed
from genssl.train.data import BatchKey, StoreBatches


def uses_variants(augmentation: dict[str, Any]) -> bool:
    """Whether a run with the (resolved) ``augmentation`` reads generated variants: a generator and p > 0."""
    return augmentation.get("generator") is not None and augmentation["p"] > 0


def mode_views(views: list[ViewSpec], mode: str) -> list[ViewSpec]:
    """The views' standard augmentations under ``mode``."""
    if mode == "generative+standard":
        return views
    crop_only = {"jitter_p": 0.0, "grayscale_p": 0.0, "blur_p": 0.0, "solarize_p": 0.0}
    if mode == "generative+crop":
        return [dataclasses.replace(v, **crop_only) for v in views]
    if mode == "generative-only":
        identity = {"crop_scale": (1.0, 1.0), "crop_ratio": (1.0, 1.0), "flip_p": 0.0}
        return [dataclasses.replace(v, **crop_only, **identity) for v in views]
    raise ConfigError(f"augmentations.*.mode: unknown mode {mode!r}")


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's output function on uint64 arrays (wrapping arithmetic): a bijective 64-bit mix."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class VariantChoice:
    """Which views of which images use which variant (module docstring).

    The draws of image ``i``, view ``w`` in epoch ``e`` are counter-based, vectorised over the batch: with
    ``key = derive_seed(seed, "generative", e)`` (``per_step``) or ``derive_seed(seed, "generative", "per_run")``
    (``per_run``) and ``h_d = splitmix64(splitmix64(key ^ i) + 2 w + d)``, ``u = (h_0 >> 11) / 2^53`` and
    ``k = h_1 mod K`` (bias below ``K / 2^64``).
    """

    def __init__(self, k: int, p: float, views: str, n_views: int, seed: int, assignment: str = "per_step") -> None:
        if views == "second" and n_views < 2:
            raise ConfigError(
                "augmentations.*.views: 'second' keeps the first view real, but the method trains on one view, so "
                "no view would use a variant; use views: both"
            )
        if assignment not in ("per_step", "per_run"):
            raise ConfigError(f"augmentations.*.assignment: unknown assignment {assignment!r}")
        self.k, self.p, self.n_views, self.seed, self.assignment = k, p, n_views, seed, assignment
        self.first = 1 if views == "second" else 0

    def __call__(self, indices: np.ndarray, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """``(use (V, B) bool, variant (V, B) int64)`` for the dataset ``indices`` (B,) in ``epoch``."""
        draw = epoch if self.assignment == "per_step" else "per_run"
        key = np.uint64(derive_seed(self.seed, "generative", draw))
        image = splitmix64(np.asarray(indices, dtype=np.uint64) ^ key)
        counters = np.arange(2 * self.n_views, dtype=np.uint64).reshape(self.n_views, 2, 1)
        h = splitmix64(image[None, None, :] + counters)  # (V, 2, B)
        u = (h[:, 0] >> np.uint64(11)).astype(np.float64) * 2.0**-53
        variant = (h[:, 1] % np.uint64(self.k)).astype(np.int64)
        use = u < self.p
        use[: self.first] = False
        return use, variant


class GenerativeBatches(StoreBatches):
    """:class:`StoreBatches` whose images are one uint8 (V, B, H, W, 3) source batch per view: the real images, the
    chosen ones (in the key's epoch) replaced by variants."""

    def __init__(self, store: Any, indices: np.ndarray, variants: VariantStore, choice: VariantChoice) -> None:
        super().__init__(store, indices)
        self.variants, self.choice = variants, choice

    def __getitem__(self, key: BatchKey) -> tuple[torch.Tensor, torch.Tensor]:
        real, positions = super().__getitem__(key)
        indices = self.indices[positions.numpy()]
        use, variant = self.choice(indices, key.epoch)
        views = real.numpy()[None].repeat(self.choice.n_views, axis=0)
        chosen = use.nonzero()
        if chosen[0].size:
            views[chosen] = self.variants.get(indices[chosen[1]], variant[chosen])
        return torch.from_numpy(views), positions
