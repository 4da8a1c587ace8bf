"""The standard SSL view pipelines (SimCLR / BYOL style), applied to whole batches on the training device.

Per view, in this order: random resized crop to ``out_size``, horizontal flip, colour jitter (random order per
sample), grayscale, gaussian blur, solarize, normalise (float32 in [0, 1] until the normalisation). Every random
parameter is drawn from the CPU ``torch.Generator`` passed to :meth:`BatchAugment.__call__`, in a fixed layout
that does not depend on the probabilities (a view always draws its crop, then its flip, jitter, order, grayscale,
blur and solarize numbers), and only then moved to the device: the views depend on the generator state and the
images only, not on the device or on global random state. An op with probability 0 costs nothing; with
probability 1 it applies to every sample; otherwise it runs on just the chosen samples (gathered, transformed and
written back). The flip costs nothing: it reverses the crop's column taps.

On the CPU much of the time goes to page faults on freshly allocated intermediates (glibc returns large freed
blocks to the system); a process can avoid that with ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import torch

from genssl.augment import ops


@dataclass(frozen=True)
class ViewSpec:
    """The augmentations of one view. The defaults equal those of the schema's ``views_common`` (solo-learn's),
    which is where the study's values come from; a test keeps the two equal."""

    crop_scale: tuple[float, float] = (0.08, 1.0)  # RandomResizedCrop area fraction
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratio range (sampled log-uniformly)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # in pixels AT 224 px; scaled by out_size / 224
    solarize_p: float = 0.0
    solarize_threshold: float = 0.5  # on [0, 1] intensities


#: Per-channel mean and std every view is normalised with (ImageNet's, as solo-learn and lightly use).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

_RANGES = ("crop_scale", "crop_ratio", "blur_sigma")
_PER_VIEW = ("blur_p", "solarize_p")
_SHARED = tuple(f.name for f in fields(ViewSpec) if f.name not in _PER_VIEW)


def view_specs(config: dict[str, Any]) -> list[ViewSpec]:
    """From a method's `views` config block: keys crop_scale, crop_ratio, flip_p, jitter_p, brightness, contrast,
    saturation, hue, grayscale_p, blur_sigma, solarize_threshold (shared by both views) and blur_p, solarize_p
    which are lists of one value per view (their length = number of views, normally 2).
    Missing keys take the ViewSpec defaults.

    The number of views is the length of ``blur_p`` / ``solarize_p`` (both must agree), or 2 when neither is given.
    An unknown key raises ``ValueError`` (the schema allows none).
    """
    unknown = sorted(set(config) - set(_SHARED) - set(_PER_VIEW))
    if unknown:
        raise ValueError(f"views: unknown key(s) {', '.join(unknown)}; known: {', '.join(_SHARED + _PER_VIEW)}")
    lengths = set()
    for key in _PER_VIEW:
        if key in config:
            if not isinstance(config[key], list | tuple):
                raise ValueError(f"views.{key}: expected a list of one probability per view, got {config[key]!r}")
            lengths.add(len(config[key]))
    if len(lengths) > 1:
        raise ValueError(f"views: blur_p and solarize_p give different numbers of views ({sorted(lengths)})")
    n_views = lengths.pop() if lengths else 2
    shared: dict[str, Any] = {}
    for key in _SHARED:
        if key in config:
            shared[key] = tuple(float(v) for v in config[key]) if key in _RANGES else float(config[key])
    return [
        ViewSpec(**shared, **{key: float(config[key][i]) for key in _PER_VIEW if key in config}) for i in range(n_views)
    ]


def blur_kernel_size(spec: ViewSpec, out_size: int) -> int:
    """``2 ceil(3 sigma_max) + 1`` with ``sigma_max = blur_sigma[1] * out_size / 224``, at least 3, and with the
    radius capped at ``out_size - 1`` (reflect padding needs it smaller than the image)."""
    radius = max(1, math.ceil(3 * spec.blur_sigma[1] * out_size / 224))
    return 2 * min(radius, max(out_size - 1, 0)) + 1


def _coin(u: torch.Tensor, p: float) -> torch.Tensor | None:
    """The samples an op with probability ``p`` touches (``u < p``): None when all of them (``p >= 1``)."""
    return None if p >= 1 else u < p


def _on_samples(
    x: torch.Tensor, chosen: torch.Tensor | None, fn: Callable[..., torch.Tensor], *params: torch.Tensor
) -> torch.Tensor:
    """``fn(x, *params)`` on the samples where the CPU mask ``chosen`` is true (all when None); others as they are.

    The chosen rows are gathered, transformed and written back into ``x`` in place (``x`` is the pipeline's own
    intermediate); ``params`` are per-sample CPU tensors of which only the chosen rows are passed on.
    """
    if chosen is None:
        return fn(x, *params)
    idx = chosen.nonzero().squeeze(1)
    if idx.numel() == 0:
        return x
    if idx.numel() == x.shape[0]:
        return fn(x, *params)
    idx_dev = idx.to(x.device)
    return x.index_copy_(0, idx_dev, fn(x.index_select(0, idx_dev), *(p[idx] for p in params)))


class BatchAugment:
    """Turn a batch of images into one augmented, normalised batch per :class:`ViewSpec`."""

    def __init__(
        self,
        views: list[ViewSpec],
        out_size: int,
        mean: tuple[float, float, float] = MEAN,
        std: tuple[float, float, float] = STD,
    ) -> None:
        if not views:
            raise ValueError("BatchAugment needs at least one view")
        if out_size < 1:
            raise ValueError(f"out_size must be positive, got {out_size}")
        self.views = list(views)
        self.out_size = out_size
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self._kernel_sizes = [blur_kernel_size(v, out_size) for v in self.views]
        self._stats: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def _mean_std(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._stats:
            mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1).to(device)
            std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1).to(device)
            self._stats[device] = (mean, std)
        return self._stats[device]

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        """images: uint8 (B, H, W, 3) (as read from the image store) or (B, 3, H, W), on any device.
        Returns one float32 tensor (B, 3, out_size, out_size) per view, normalised with mean/std, on images.device,
        contiguous. `generator` is a CPU torch.Generator: ALL random parameters (crop boxes, flips, jitter factors,
        the random order of the four jitter ops per sample, blur sigmas, coin flips) are drawn from it on the CPU
        and then moved to the device, so the result is the same on every device for the same generator state,
        and depends only on the generator state (not on the device or on anything global).

        A trailing dimension of 3 means channels-last (the store's layout); float images are taken as [0, 1].
        A 5-dimensional ``images`` (V, B, ...) holds one source batch per view (generative augmentation).
        """
        sources = list(images) if images.ndim == 5 else [images] * len(self.views)
        if len(sources) != len(self.views):
            raise ValueError(f"{len(sources)} source batches for {len(self.views)} views")
        out = []
        for x, spec, k in zip(sources, self.views, self._kernel_sizes, strict=True):
            if x.ndim != 4 or 3 not in (x.shape[1], x.shape[3]):
                raise ValueError(f"expected images (B, H, W, 3) or (B, 3, H, W), got shape {tuple(x.shape)}")
            out.append(self._view(x.permute(0, 3, 1, 2) if x.shape[3] == 3 else x, spec, k, generator))
        return out

    def _view(self, images: torch.Tensor, spec: ViewSpec, kernel_size: int, generator: torch.Generator) -> torch.Tensor:
        n, _, height, width = images.shape
        size = self.out_size
        # Every draw, always, in this order (so the stream layout does not depend on the probabilities).
        boxes = ops.sample_crop_boxes(n, height, width, spec.crop_scale, spec.crop_ratio, generator)
        u = torch.rand((n, 5), generator=generator, dtype=torch.float64)  # flip, jitter, gray, blur, solarize
        u_factors = torch.rand((n, 4), generator=generator, dtype=torch.float64)
        order = torch.argsort(torch.rand((n, 4), generator=generator), dim=1)
        u_sigma = torch.rand(n, generator=generator, dtype=torch.float64)

        x = ops.resized_crop(images, boxes, size, flip=u[:, 0] < spec.flip_p if spec.flip_p > 0 else None)
        if spec.jitter_p > 0:
            strength = torch.tensor([spec.brightness, spec.contrast, spec.saturation], dtype=torch.float64)
            low = torch.cat([(1 - strength).clamp(min=0), torch.tensor([-spec.hue], dtype=torch.float64)])
            high = torch.cat([1 + strength, torch.tensor([spec.hue], dtype=torch.float64)])
            factors = (low + (high - low) * u_factors).to(torch.float32)
            x = _on_samples(x, _coin(u[:, 1], spec.jitter_p), ops.color_jitter, factors, order)
        if spec.grayscale_p > 0:
            x = _on_samples(x, _coin(u[:, 2], spec.grayscale_p), ops.grayscale)
        if spec.blur_p > 0 and kernel_size > 1:
            lo, hi = (s * size / 224 for s in spec.blur_sigma)
            sigma = lo + (hi - lo) * u_sigma
            x = _on_samples(x, _coin(u[:, 3], spec.blur_p), lambda t, s: ops.gaussian_blur(t, s, kernel_size), sigma)
        if spec.solarize_p > 0:
            threshold = spec.solarize_threshold
            x = _on_samples(x, _coin(u[:, 4], spec.solarize_p), lambda t: ops.solarize(t, threshold))
        mean, std = self._mean_std(x.device)
        return ops.normalize(x, mean, std).contiguous()
