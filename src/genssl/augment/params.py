"""The random parameters of a view: drawn per sample from a CPU generator in a fixed layout
(:func:`draw_view_params`), then turned into the tensors the device ops run with and moved to the device in one
copy (:func:`device_params`), so a view depends on the generator state and the images only, not on the device or
on global random state, and the device never waits for the host nor the host for the device.
"""

import math
from dataclasses import dataclass
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
    """What the device part of a view runs with (see :func:`device_params`); None for an op the view lacks."""

    index: torch.Tensor  # (B, 4, S) int64: crop taps (ops.crop_taps)
    frac: torch.Tensor  # (B, 2, S) float32: their weights
    slots: torch.Tensor | None  # (B, J, 3): colour jitter slots (ops.jitter_slots)
    hue: torch.Tensor | None  # (B,): hue factor
    hue_on: torch.Tensor | None  # (B,): 1 where the hue op applies, else 0
    gray: torch.Tensor | None  # (B,): 1 where the sample turns grey, else 0
    kernels: torch.Tensor | None  # (B, K): blur kernels, the unit impulse for a sample not blurred
    solarize: torch.Tensor | None  # (B,): solarize threshold, inf for a sample not solarized


def device_params(
    params: ViewParams, spec: ViewSpec, out_size: int, kernel_size: int, device: torch.device
) -> DeviceParams:
    """The tensors of :class:`DeviceParams` for ``params`` of a view of ``spec``, on ``device``.

    The parameters of an op the view never applies are None: an op of probability 0, a blur kernel of size 1, the
    hue of a jitter of hue strength 0.
    Everything is computed on the CPU, packed into one float32 buffer (exact: the crop taps are pixel indices below
    ``2^24``, the rest float32 already or 0/1) and copied to ``device`` at once, from pinned memory without blocking
    on CUDA; the taps get their dtype back on the device. Coins become weights 0/1 and the solarize coin a
    per-sample threshold, which the branch-free ops take.
    """
    index, frac = ops.crop_taps(params.boxes, out_size, params.flip)
    if index.numel() and int(index.max()) >= 2**24:
        raise ValueError(f"images {2**24} px or more high or wide are not supported (crop taps travel as float32)")
    floats: dict[str, torch.Tensor] = {"frac": frac}
    if spec.jitter_p > 0:
        floats["slots"], hue_on = ops.jitter_slots(params.factors, params.order, params.jitter, hue=spec.hue > 0)
        if spec.hue > 0:
            floats["hue"], floats["hue_on"] = params.factors[:, ops.HUE], hue_on
    if spec.grayscale_p > 0:
        floats["gray"] = params.gray
    if spec.blur_p > 0 and kernel_size > 1:
        floats["kernels"] = ops.gaussian_kernels(params.sigma, kernel_size, params.blur)
    if spec.solarize_p > 0:
        floats["solarize"] = torch.where(params.solarize, spec.solarize_threshold, math.inf)

    n = index.shape[0]
    parts = {"index": index, **floats}
    widths = [math.prod(t.shape[1:]) for t in parts.values()]
    packed = torch.cat([t.reshape(n, w).to(torch.float32) for t, w in zip(parts.values(), widths, strict=True)], 1)
    cuda = device.type == "cuda"
    packed = (packed.pin_memory() if cuda else packed).to(device, non_blocking=cuda)
    moved = {name: part.view(parts[name].shape) for name, part in zip(parts, packed.split(widths, dim=1), strict=True)}
    return DeviceParams(
        index=moved["index"].to(torch.int64),
        frac=moved["frac"],
        slots=moved.get("slots"),
        hue=moved.get("hue"),
        hue_on=moved.get("hue_on"),
        gray=moved.get("gray"),
        kernels=moved.get("kernels"),
        solarize=moved.get("solarize"),
    )
