"""The random parameters of a view: drawn per sample from a CPU generator in a fixed layout
(:func:`draw_view_params`), then turned on the CPU into the tensors the device ops run with, packed into one buffer
(:func:`pack_params`; every view of a batch: :class:`ViewDraws`) that reaches the device in one copy. So a view
depends on the generator state and the images only, not on the device or on global random state, and the device
never waits for the host nor the host for the device.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import torch

from genssl.augment import ops
from genssl.augment.spec import ViewSpec


@dataclass(frozen=True)
class ViewParams:
    """Per-sample random parameters of one view: CPU tensors with first dimension B. A coin (bool) is true for the
    samples that get the op."""

    boxes: torch.Tensor  # (B, 4) int64: top, left, height, width of the crop
    flip: torch.Tensor  # (B,) bool
    jitter: torch.Tensor  # (B,) bool
    factors: torch.Tensor  # (B, 4) float32: brightness, contrast, saturation, hue
    order: torch.Tensor  # (B, 4) int64: the jitter op at each position
    gray: torch.Tensor  # (B,) bool
    blur: torch.Tensor  # (B,) bool
    sigma: torch.Tensor  # (B,) float64: the blur's standard deviation in pixels of the view
    solarize: torch.Tensor  # (B,) bool


def draw_view_params(
    n: int, height: int, width: int, spec: ViewSpec, out_size: int, rng: torch.Generator
) -> ViewParams:
    """The parameters of ``n`` views of ``spec`` (``out_size`` px) of ``height x width`` images, from ``rng``.

    Every draw, always, in this order, so that the stream layout does not depend on the probabilities: the crop
    boxes (:func:`genssl.augment.ops.sample_crop_boxes`); ``u`` (B, 5) float64, the coins of flip, jitter,
    grayscale, blur and solarize (an op of probability ``p`` where ``u < p``); ``v`` (B, 4) float64, the jitter
    factors ``lo + (hi - lo) v`` with ``[lo, hi] = [max(0, 1 - s), 1 + s]`` for brightness, contrast and
    saturation of strength ``s`` and ``[-h, h]`` for hue; the jitter order, ``argsort`` of (B, 4) float32
    uniforms; and ``w`` (B,) float64, the blur's ``sigma = lo + (hi - lo) w`` with ``[lo, hi] = blur_sigma *
    out_size / 224``.
    """
    boxes = ops.sample_crop_boxes(n, height, width, spec.crop_scale, spec.crop_ratio, rng)
    u = torch.rand((n, 5), generator=rng, dtype=torch.float64)
    v = torch.rand((n, 4), generator=rng, dtype=torch.float64)
    order = torch.argsort(torch.rand((n, 4), generator=rng), dim=1)
    w = torch.rand(n, generator=rng, dtype=torch.float64)

    strength = torch.tensor([spec.brightness, spec.contrast, spec.saturation], dtype=torch.float64)
    low = torch.cat([(1 - strength).clamp(min=0), torch.tensor([-spec.hue], dtype=torch.float64)])
    high = torch.cat([1 + strength, torch.tensor([spec.hue], dtype=torch.float64)])
    lo, hi = (s * out_size / 224 for s in spec.blur_sigma)
    p = torch.tensor([spec.flip_p, spec.jitter_p, spec.grayscale_p, spec.blur_p, spec.solarize_p], dtype=torch.float64)
    coins = u < p
    flip, jitter, gray, blur, solarize = coins.unbind(1)
    factors = (low + (high - low) * v).to(torch.float32)
    return ViewParams(boxes, flip, jitter, factors, order, gray, blur, lo + (hi - lo) * w, solarize)


class DeviceParams(NamedTuple):
    """What the device part of a view runs with (see :func:`pack_params`); None for an op the view lacks."""

    index: torch.Tensor  # (B, 4, S) int64: crop taps (ops.crop_taps)
    frac: torch.Tensor  # (B, 2, S) float32: their weights
    slots: torch.Tensor | None  # (B, J, 3): colour jitter slots (ops.jitter_slots)
    hue: torch.Tensor | None  # (B,): hue factor
    hue_on: torch.Tensor | None  # (B,): 1 where the hue op applies, else 0
    gray: torch.Tensor | None  # (B,): 1 where the sample turns grey, else 0
    kernels: torch.Tensor | None  # (B, K): blur kernels, the unit impulse for a sample not blurred
    solarize: torch.Tensor | None  # (B,): solarize threshold, inf for a sample not solarized


def param_layout(views: Sequence[ViewSpec], out_size: int, kernel_sizes: Sequence[int]) -> dict[str, tuple[int, ...]]:
    """The fields of :class:`DeviceParams` that the ``views`` (blur kernels of ``kernel_sizes`` pixels) run with in
    one pass, in packing order, and the shape of each per sample: the union of what each view needs. An op that no
    view applies has no field (probability 0, a blur kernel of size 1, the hue of a jitter of hue strength 0); the
    jitter has 6 slots when some view has a hue op, else 3; the blur kernels have the largest size."""
    layout: dict[str, tuple[int, ...]] = {"index": (4, out_size), "frac": (2, out_size)}
    hue = any(v.jitter_p > 0 and v.hue > 0 for v in views)
    if any(v.jitter_p > 0 for v in views):
        layout["slots"] = (6 if hue else 3, 3)
    if hue:
        layout["hue"], layout["hue_on"] = (), ()
    if any(v.grayscale_p > 0 for v in views):
        layout["gray"] = ()
    blurred = [k for v, k in zip(views, kernel_sizes, strict=True) if v.blur_p > 0 and k > 1]
    if blurred:
        layout["kernels"] = (max(blurred),)
    if any(v.solarize_p > 0 for v in views):
        layout["solarize"] = ()
    return layout


def pack_params(
    params: ViewParams, spec: ViewSpec, out_size: int, kernel_size: int, layout: dict[str, tuple[int, ...]]
) -> torch.Tensor:
    """The tensors of :class:`DeviceParams` for ``params`` of a view of ``spec`` (blur kernel of ``kernel_size``),
    packed into one float32 CPU buffer (B, width), the fields of ``layout`` (:func:`param_layout`) side by side:
    exact, since the crop taps are pixel indices below ``2^24`` and the rest is float32 already or 0/1. Coins become
    weights 0/1 and the solarize coin a per-sample threshold, which the branch-free ops take. A field for an op the
    view lacks holds that op's identity: its coins are all false (probability 0), so grey weight 0, the unit impulse
    for a kernel, threshold inf, hue off; jitter slots ``(1, 0, 0)``, also after the view's own slots when it has no
    hue op. A kernel shorter than the layout's is padded with zeros on both sides (the same blur, exact in exact
    arithmetic)."""
    index, frac = ops.crop_taps(params.boxes, out_size, params.flip)
    if index.numel() and int(index.max()) >= 2**24:
        raise ValueError(f"images {2**24} px or more high or wide are not supported (crop taps travel as float32)")
    n = index.shape[0]
    parts: dict[str, torch.Tensor] = {"index": index, "frac": frac}
    if "slots" in layout:
        own_hue = spec.jitter_p > 0 and spec.hue > 0
        slots, hue_on = ops.jitter_slots(params.factors, params.order, params.jitter, hue=own_hue)
        identity = torch.tensor([1.0, 0.0, 0.0]).expand(n, layout["slots"][0] - slots.shape[1], 3)
        parts["slots"] = torch.cat([slots, identity], 1)
        if "hue" in layout:
            parts["hue"], parts["hue_on"] = params.factors[:, ops.HUE], hue_on
    if "gray" in layout:
        parts["gray"] = params.gray
    if "kernels" in layout:
        pad = (layout["kernels"][0] - kernel_size) // 2
        kernels = ops.gaussian_kernels(params.sigma, kernel_size, params.blur)
        parts["kernels"] = torch.nn.functional.pad(kernels, (pad, pad))
    if "solarize" in layout:
        parts["solarize"] = torch.where(params.solarize, spec.solarize_threshold, math.inf)
    return torch.cat([parts[name].reshape(n, math.prod(shape)).to(torch.float32) for name, shape in layout.items()], 1)


def unpack_params(packed: torch.Tensor, layout: dict[str, tuple[int, ...]]) -> DeviceParams:
    """:class:`DeviceParams` as views of ``packed`` (B, width), on its device, with the fields of ``layout``
    (:func:`param_layout`); the crop taps get their dtype back."""
    widths = [math.prod(shape) for shape in layout.values()]
    if packed.ndim != 2 or packed.shape[1] != sum(widths):
        raise ValueError(f"view parameters of shape {tuple(packed.shape)}, expected (N, {sum(widths)})")
    n = packed.shape[0]
    fields = {
        name: part.view(n, *shape) for (name, shape), part in zip(layout.items(), packed.split(widths, 1), strict=True)
    }
    return DeviceParams(**{**dict.fromkeys(DeviceParams._fields), **fields, "index": fields["index"].to(torch.int64)})


@dataclass(frozen=True)
class ViewDraws:
    """The random parameters of every view of a batch, for one pass over all of them: :meth:`draw` packs them into
    one float32 CPU buffer (V B, width), view after view, each view's :func:`pack_params` in the views' common
    :attr:`layout`, and :meth:`unpack` turns it, on any device, into the :class:`DeviceParams` of the V B samples.
    Drawing needs only the batch's shape and a generator, not its pixels, so it may run where the batch is read (a
    loader worker), and the buffer travels to the device in one copy. Picklable."""

    views: tuple[ViewSpec, ...]
    out_size: int
    kernel_sizes: tuple[int, ...]

    @cached_property
    def layout(self) -> dict[str, tuple[int, ...]]:
        """The views' common :func:`param_layout`."""
        return param_layout(self.views, self.out_size, self.kernel_sizes)

    def draw(self, n: int, height: int, width: int, rng: torch.Generator) -> torch.Tensor:
        """The buffer of ``n`` samples of ``height x width`` images per view: each view's :func:`draw_view_params`
        from ``rng``, in view order, then packed."""
        drawn = [draw_view_params(n, height, width, v, self.out_size, rng) for v in self.views]
        layout, views = self.layout, zip(drawn, self.views, self.kernel_sizes, strict=True)
        return torch.cat([pack_params(p, v, self.out_size, k, layout) for p, v, k in views])

    def unpack(self, packed: torch.Tensor) -> DeviceParams:
        """The :class:`DeviceParams` of ``packed`` (from :meth:`draw`, on any device), as views of it."""
        return unpack_params(packed, self.layout)
