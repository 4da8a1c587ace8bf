"""Batched augmentation ops: every op transforms a whole batch ``x`` of shape (B, 3, H, W) at once, with one
parameter per sample, as tensor ops on ``x.device`` (no Python loop over samples, no PIL).

Images are float32 in [0, 1] from :func:`resample` until :func:`normalize`. An op with a parameterisation comes in
two parts: a CPU part turning per-sample parameters into the small tensors the op runs with (:func:`crop_taps`,
:func:`jitter_slots`, :func:`gaussian_kernels`), and a device part that is branch-free (:func:`resample`,
:func:`apply_jitter`, :func:`separable_blur`, and :func:`grayscale` / :func:`solarize` with a mask): the same
kernels run whatever the parameters are, a sample an op leaves alone gets parameters that are exactly the identity
or is kept by ``torch.where``, nothing is gathered or scattered by a mask and nothing is read back to the host.
Randomness is never drawn here except in :func:`sample_crop_boxes`, which draws from the CPU generator it is given.

Two luma weightings occur, each for fidelity to its reference: :func:`grayscale` uses ITU-R 601-2
(``0.299 R + 0.587 G + 0.114 B``, as PIL's ``convert("L")``); the colour jitter ops use torchvision's
``0.2989 R + 0.587 G + 0.114 B`` for the grey image they blend with, as ``torchvision.transforms.v2.ColorJitter``.
"""

import math

import torch
import torch.nn.functional as F

LUMA = (0.299, 0.587, 0.114)
JITTER_LUMA = (0.2989, 0.587, 0.114)

#: Indices of the colour jitter ops in ``factors`` / ``order`` of :func:`color_jitter`.
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3


def _per_sample(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``values`` (B,) as a (B, 1, 1, 1) tensor of ``x``'s dtype on ``x``'s device, for broadcasting."""
    return values.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def _select(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``y`` where ``weight`` is 1, ``x`` where it is 0: ``torch.lerp(x, y, weight)``, which is exact for these
    weights (``x + 0 (y - x)``, ``y - (y - x) 0``). Boolean masks and ``torch.where`` are several times slower
    on the CPU."""
    return torch.lerp(x, y, weight)


def _luma(x: torch.Tensor, weights: tuple[float, float, float]) -> torch.Tensor:
    """``w_r R + w_g G + w_b B`` of (B, 3, H, W) as (B, 1, H, W)."""
    r, g, b = x.unbind(dim=1)
    return (r * weights[0]).add_(g, alpha=weights[1]).add_(b, alpha=weights[2]).unsqueeze(1)


def sample_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    rng: torch.Generator,
) -> torch.Tensor:
    """Draw ``n`` crop boxes like ``torchvision.transforms.RandomResizedCrop.get_params``, vectorised.

    Per sample, 10 attempts of area ``a = A * U(scale)`` (``A = height * width``) and aspect ratio
    ``r = exp(U(log ratio))`` give ``w = round(sqrt(a r))``, ``h = round(sqrt(a / r))`` (half to even, as Python's
    ``round``); the first attempt with ``0 < w <= width`` and ``0 < h <= height`` is taken, at
    ``top = floor(U * (height - h + 1))``, ``left = floor(U * (width - w + 1))``. A sample without a valid attempt
    falls back to the central crop of the whole image clamped to the ratio range. All draws come from the CPU
    ``rng`` at once (float64, 2 x (n, 10) then 2 x (n,)), so the result depends only on its state.

    Returns (n, 4) int64 on the CPU: ``top, left, height, width``.
    """
    area = height * width
    u_area = torch.rand((n, 10), generator=rng, dtype=torch.float64)
    u_ratio = torch.rand((n, 10), generator=rng, dtype=torch.float64)
    u_top = torch.rand(n, generator=rng, dtype=torch.float64)
    u_left = torch.rand(n, generator=rng, dtype=torch.float64)

    target = area * (scale[0] + (scale[1] - scale[0]) * u_area)
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(lo + (hi - lo) * u_ratio)
    w = torch.round(torch.sqrt(target * aspect)).long()
    h = torch.round(torch.sqrt(target / aspect)).long()
    valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = valid.to(torch.uint8).argmax(dim=1, keepdim=True)  # first valid attempt (0 when none is valid)
    w = w.gather(1, first).squeeze(1)
    h = h.gather(1, first).squeeze(1)
    top = torch.floor(u_top * (height - h + 1)).long().clamp_(max=height - h)
    left = torch.floor(u_left * (width - w + 1)).long().clamp_(max=width - w)

    found = valid.any(dim=1)
    if not bool(found.all()):
        in_ratio = width / height
        if in_ratio < min(ratio):
            fw, fh = width, round(width / min(ratio))
        elif in_ratio > max(ratio):
            fw, fh = round(height * max(ratio)), height
        else:
            fw, fh = width, height
        h = torch.where(found, h, fh)
        w = torch.where(found, w, fw)
        top = torch.where(found, top, (height - fh) // 2)
        left = torch.where(found, left, (width - fw) // 2)
    return torch.stack([top, left, h, w], dim=1)


def _source_taps(
    start: torch.Tensor, size: torch.Tensor, out_size: int, reverse: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bilinear taps ``(i0, i1, frac)`` of ``out_size`` outputs over ``[start, start + size)``, per sample, (B, S).

    As ``F.interpolate(..., mode="bilinear", align_corners=False)`` on the crop: output ``o`` reads the crop at
    ``s = max((o + 0.5) * size / out_size - 0.5, 0)``, i.e. ``floor(s)`` and ``floor(s) + 1`` clamped to the
    crop, weighted ``1 - frac`` and ``frac``. Where ``reverse`` is true the outputs come in mirrored order.
    Computed in float64 on the CPU (int64 indices, float32 weights).
    """
    size = size.to(torch.float64).unsqueeze(1)
    o = torch.arange(out_size, dtype=torch.float64).unsqueeze(0)
    s = ((o + 0.5) * (size / out_size) - 0.5).clamp_(min=0.0)
    i0 = torch.floor(s).clamp_(max=size - 1)
    frac = (s - i0).to(torch.float32)
    i1 = (i0 + 1).clamp_(max=size - 1)
    i0, i1 = i0.long() + start.unsqueeze(1), i1.long() + start.unsqueeze(1)
    if reverse is not None:
        flip = reverse.view(-1, 1)
        i0, i1, frac = (torch.where(flip, t.flip(1), t) for t in (i0, i1, frac))
    return i0, i1, frac


def crop_taps(
    boxes: torch.Tensor, out_size: int, flip: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The taps of :func:`resample` for crop ``boxes`` (B, 4) ``top, left, height, width`` resized to ``out_size``
    (see :func:`_source_taps`), the columns mirrored where ``flip`` (B,) is true: ``index`` (B, 4, S) int64, the
    first and second row taps then the first and second column taps, and ``frac`` (B, 2, S) float32, the row and
    column weights. On the CPU."""
    boxes = boxes.cpu()
    r0, r1, fr = _source_taps(boxes[:, 0], boxes[:, 2], out_size)
    c0, c1, fc = _source_taps(boxes[:, 1], boxes[:, 3], out_size, None if flip is None else flip.cpu())
    return torch.stack([r0, r1, c0, c1], dim=1), torch.stack([fr, fc], dim=1)


def _lerp_rows(
    flat: torch.Tensor, i0: torch.Tensor, i1: torch.Tensor, frac: torch.Tensor, c: int, length: int
) -> torch.Tensor:
    """Rows ``a + frac (b - a)`` of ``flat`` (B*c*length, L), ``a``/``b`` the rows ``i0``/``i1`` (B, S) of each
    sample's ``c`` channels: (B, c, S, L) float32. One ``index_select`` (a copy of whole rows) for both taps, then
    in place on that copy."""
    n, s = i0.shape
    base = (torch.arange(n * c, device=flat.device) * length).view(n, c, 1)
    idx = torch.stack([i0.view(n, 1, s) + base, i1.view(n, 1, s) + base]).view(-1)
    a, b = flat.index_select(0, idx).view(2, n, c, s, -1).to(torch.float32).unbind(0)
    return a.addcmul_(b.sub_(a), frac.reshape(n, 1, s, 1))


def resample(images: torch.Tensor, index: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
    """Every image resampled at its taps ``index`` / ``frac`` of :func:`crop_taps` (on ``images.device``): the crop
    resized to ``S x S``, all samples in one batched two-pass sampling.

    ``images``: (B, C, H, W), uint8 (scaled to [0, 1] by ``/ 255``) or float (taken as is), any layout. The result
    equals, per sample, ``F.interpolate(crop, S, mode="bilinear", align_corners=False, antialias=False)`` of the
    cropped region (torchvision's ``resized_crop`` without antialiasing), computed separably: two-tap rows
    gathered with ``index_select`` and blended ``a + frac (b - a)``, first along the columns (on the transposed
    image), then along the rows. A box of size ``S`` reproduces its pixels exactly. Returns float32
    (B, C, S, S), contiguous.
    """
    n, c, height, width = images.shape
    columns = images.transpose(2, 3).contiguous().view(n * c * width, height)  # (B, C, W, H) rows = columns
    x = _lerp_rows(columns, index[:, 2], index[:, 3], frac[:, 1], c, width)  # (B, C, S, H)
    x = x.transpose(2, 3).contiguous().view(n * c * height, index.shape[-1])  # (B, C, H, S)
    x = _lerp_rows(x, index[:, 0], index[:, 1], frac[:, 0], c, height)  # (B, C, S, S)
    return x.div_(255.0) if images.dtype == torch.uint8 else x


def resized_crop(
    images: torch.Tensor, boxes: torch.Tensor, out_size: int, flip: torch.Tensor | None = None
) -> torch.Tensor:
    """Crop box ``i`` of image ``i`` and resize it to ``out_size x out_size``, the samples where ``flip`` (B,) is
    true mirrored left-right: :func:`resample` at the :func:`crop_taps` of ``boxes`` (B, 4) int64
    ``top, left, height, width``."""
    index, frac = crop_taps(boxes, out_size, flip)
    return resample(images, index.to(images.device), frac.to(images.device))


def adjust_hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by ``factor`` (B,) in [-0.5, 0.5] turns, per sample, in HSV (torchvision's ``adjust_hue``).

    RGB -> HSV: ``V = max(R, G, B)``, ``D = V - min(R, G, B)``, hue in sixths of a turn ``H = (G - B) / D`` if
    ``V = R``, else ``2 + (B - R) / D`` if ``V = G``, else ``4 + (R - G) / D`` (0 when ``D = 0``); then
    ``H' = (H + 6 h) mod 6``. Back to RGB with ``V S = D``: ``(R, G, B) = V - D clamp((2 - |H' - 3|,
    |H' - 2| - 1, |H' - 4| - 1), 0, 1)``, the closed form of torchvision's sector table. Values stay in [0, 1].
    The branch is chosen with the 0/1 floats ``sign(V - R)``, ``sign(V - G)`` (exact) rather than boolean masks
    and ``where``, which are several times slower on the CPU; ties pick R, then G, as torchvision does.
    """
    r, g, b = x.unbind(dim=1)
    maxc = torch.maximum(torch.maximum(r, g), b)
    delta = maxc - torch.minimum(torch.minimum(r, g), b)
    # s_r = 0 where V = R, else 1; s_g likewise: the branch is R if s_r = 0, else G if s_g = 0, else B. With
    # them H = (G - B) + s_r (N - (G - B)) over D, N = (B - R) + s_g (2R - G - B), plus 2 s_r (1 + s_g).
    s_r, s_g = torch.sign(maxc - r), torch.sign(maxc - g)
    g_b = g - b
    n_gb = torch.addcmul(b - r, s_g, (r - g).add_(r - b))
    hue = torch.addcmul(g_b, s_r, n_gb.sub_(g_b)).div_(delta.clamp(min=1e-30))  # 0 where D = 0
    hue = hue.addcmul_(s_r, s_g.add_(1.0), value=2.0).add_(_per_sample(factor, x).view(-1, 1, 1), alpha=6.0)
    hue = hue.sub_(torch.floor(hue / 6.0), alpha=6.0)  # mod 6
    # Per channel on (B, H, W) planes (broadcasting across the channel axis is much slower on the CPU).
    ramps = ((hue - 3.0).abs_().neg_().add_(2.0), (hue - 2.0).abs_().sub_(1.0), (hue - 4.0).abs_().sub_(1.0))
    return torch.stack([torch.addcmul(maxc, delta, ramp.clamp_(0.0, 1.0), value=-1.0) for ramp in ramps], dim=1)


def jitter_slots(
    factors: torch.Tensor, order: torch.Tensor, chosen: torch.Tensor | None = None, hue: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """The blend slots of :func:`apply_jitter` for torchvision's ``ColorJitter`` with per-sample factors and order.

    ``factors`` (B, 4): brightness ``b``, contrast ``c``, saturation ``s`` (1 = identity) and hue ``h`` (0 =
    identity) of each sample; ``order`` (B, 4) int64: ``order[i, p]`` is the op (:data:`BRIGHTNESS`,
    :data:`CONTRAST`, :data:`SATURATION`, :data:`HUE`) sample ``i`` applies at position ``p``; ``chosen`` (B,) bool:
    the samples jittered at all (all when None). Per sample the three blend ops, in their order, fall before or
    after its hue op: ``slots`` (B, 6, 3) float32 holds them as slots 0-2 (before) and 3-5 (after), each slot
    ``(a, w_gray, w_mean)`` with the op's factor ``a``, ``w_gray = [op = s] (1 - a)``, ``w_mean = [op = c] (1 - a)``,
    and the identity ``(1, 0, 0)`` where the slot's op is on the other side of the hue op or the sample is not
    chosen. ``hue_on`` (B,) bool: chosen with ``h != 0``. With ``hue`` False (no hue op anywhere) there is one
    stage: ``slots`` (B, 3, 3). Any device (all tensor ops).
    """
    factors = factors.to(torch.float32)
    on = torch.ones(order.shape[0], dtype=torch.bool, device=order.device) if chosen is None else chosen
    is_hue = order == HUE
    positions = torch.argsort(is_hue.to(torch.uint8), dim=1, stable=True)[:, :3]  # the blends', ascending
    blends = order.gather(1, positions)
    if hue:
        after = positions > is_hue.to(torch.uint8).argmax(dim=1, keepdim=True)
        stages = torch.cat([~after, after], dim=1) & on.unsqueeze(1)
        blends = blends.repeat(1, 2)
    else:
        stages = on.unsqueeze(1).expand_as(blends)
    a = torch.where(stages, factors.gather(1, blends), torch.ones((), dtype=torch.float32, device=factors.device))
    slots = torch.stack([a, (blends == SATURATION) * (1 - a), (blends == CONTRAST) * (1 - a)], dim=2)
    return slots, on & (factors[:, HUE] != 0)


def _blend(x: torch.Tensor, slot: torch.Tensor, inplace: bool) -> torch.Tensor:
    """``clamp(a x + w_gray g + w_mean mean(g), 0, 1)`` per sample, ``g`` the grey image, ``slot`` (B, 3)."""
    a, w_gray, w_mean = (_per_sample(w, x) for w in slot.unbind(1))
    gray = _luma(x, JITTER_LUMA)
    mean = gray.mean(dim=(2, 3), keepdim=True)
    ref = gray.mul_(w_gray).add_(mean * w_mean)
    return torch.addcmul(ref, x, a, out=x if inplace else None).clamp_(0.0, 1.0)


def apply_jitter(
    x: torch.Tensor, slots: torch.Tensor, hue_factor: torch.Tensor | None = None, hue_on: torch.Tensor | None = None
) -> torch.Tensor:
    """The colour jitter of :func:`jitter_slots` on ``x``, branch-free: the blend slots before the hue op, the hue
    op (:func:`adjust_hue` by ``hue_factor`` (B,) where ``hue_on`` (B,) is true or 1, everywhere when None; with
    ``hue_factor`` None there is no hue op and one stage of slots), then the slots after it.

    Each slot is torchvision's ``adjust_brightness`` (``b x``), ``adjust_contrast`` (``c x + (1 - c) m``, ``m`` the
    mean grey of the image) or ``adjust_saturation`` (``s x + (1 - s) g``, ``g`` the grey image
    ``0.2989 R + 0.587 G + 0.114 B``), clamped to [0, 1], as one ``clamp(a x + w_gray g + w_mean m, 0, 1)``; the
    identity slot ``(1, 0, 0)`` leaves a sample exactly unchanged. The input is not modified.
    """
    split = slots.shape[1] // 2 if hue_factor is not None else slots.shape[1]
    for j in range(split):
        x = _blend(x, slots[:, j], inplace=j > 0)
    if hue_factor is not None:
        hued = adjust_hue(x, hue_factor)
        x = hued if hue_on is None else _select(x, hued, _per_sample(hue_on, x))
        for j in range(split, slots.shape[1]):
            x = _blend(x, slots[:, j], inplace=True)
    return x


def color_jitter(
    x: torch.Tensor, factors: torch.Tensor, order: torch.Tensor, chosen: torch.Tensor | None = None
) -> torch.Tensor:
    """torchvision's ``ColorJitter`` with per-sample ``factors`` (B, 4) and ``order`` (B, 4) of the four ops on the
    ``chosen`` (B,) samples (all when None): :func:`apply_jitter` of :func:`jitter_slots`, on ``x.device``. A zero
    hue factor skips the hue op. The input is not modified."""
    factors, order = factors.to(x.device), order.to(x.device)
    slots, hue_on = jitter_slots(factors, order, None if chosen is None else chosen.to(x.device))
    return apply_jitter(x, slots.to(x.dtype), factors[:, HUE].to(x.dtype), hue_on)


def grayscale(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Replace the samples where ``mask`` (B,) is true or 1 (all when None) by ``0.299 R + 0.587 G + 0.114 B`` x 3.

    The samples are selected by ``lerp(x, gray, mask)``, exact for weights 0 and 1 (see :func:`_select`)."""
    gray = _luma(x, LUMA).expand_as(x)
    if mask is None:
        return gray.contiguous()
    return _select(x, gray, _per_sample(mask, x))


def gaussian_kernels(sigma: torch.Tensor, kernel_size: int, chosen: torch.Tensor | None = None) -> torch.Tensor:
    """(B, K) normalised 1-D kernels ``exp(-t^2 / (2 sigma^2)) / sum``, ``t = -K//2 .. K//2``; float64, CPU.

    Where ``chosen`` (B,) is false the kernel is the unit impulse at ``t = 0``, which blurs a sample into itself
    exactly (``1 x + 0 y + ...``)."""
    t = torch.arange(kernel_size, dtype=torch.float64) - kernel_size // 2
    kernels = torch.exp(-(t.unsqueeze(0) ** 2) / (2 * sigma.cpu().to(torch.float64).unsqueeze(1) ** 2))
    kernels = kernels / kernels.sum(dim=1, keepdim=True)
    if chosen is None:
        return kernels
    return torch.where(chosen.cpu().unsqueeze(1), kernels, (t == 0).to(torch.float64))


def separable_blur(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Sample ``i`` convolved with kernel ``kernels[i]`` (B, K odd, on ``x.device`` in ``x.dtype``) along rows, then
    along columns: one grouped conv2d (``groups = B * 3``) each, after reflect padding by ``K // 2`` (which must be
    less than the image side), as torchvision's ``gaussian_blur``."""
    n, c, h, w = x.shape
    kernel_size = kernels.shape[1]
    pad = kernel_size // 2
    weight = kernels.unsqueeze(1).expand(n, c, kernel_size).reshape(n * c, 1, 1, kernel_size)
    y = F.pad(x.reshape(1, n * c, h, w), (pad, pad, 0, 0), mode="reflect")
    y = F.conv2d(y, weight, groups=n * c)
    y = F.pad(y, (0, 0, pad, pad), mode="reflect")
    y = F.conv2d(y, weight.view(n * c, 1, kernel_size, 1), groups=n * c)
    return y.view(n, c, h, w)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Gaussian blur of sample ``i`` with standard deviation ``sigma[i]`` (pixels), kernel ``kernel_size`` (odd):
    :func:`separable_blur` with the kernels of :func:`gaussian_kernels` (torchvision's, reflect padding)."""
    return separable_blur(x, gaussian_kernels(sigma, kernel_size).to(device=x.device, dtype=x.dtype))


def solarize(x: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
    """``where(x >= t, 1 - x, x)`` with ``t = threshold``, one for all or one per sample (B,); a sample with
    ``t = inf`` is left alone. Computed as ``lerp(x, 1 - x, s)`` with ``s = min(sign(x - t) + 1, 1)``, which is
    exactly 1 where ``x >= t`` and 0 elsewhere (see :func:`_select`)."""
    t = threshold if isinstance(threshold, float) else _per_sample(threshold, x)
    return _select(x, 1.0 - x, (x - t).sign_().add_(1.0).clamp_(max=1.0))


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` per channel, in place; ``mean`` and ``std`` shaped (1, 3, 1, 1) on ``x.device``."""
    return x.sub_(mean).div_(std)
