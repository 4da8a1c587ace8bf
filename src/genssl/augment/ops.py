"""Batched augmentation ops: every op transforms a whole batch ``x`` of shape (B, 3, H, W) at once, with one
parameter per sample, as tensor ops on ``x.device`` (no Python loop over samples, no PIL).

Images are float32 in [0, 1] from :func:`resized_crop` until :func:`normalize`. Parameters that decide *which*
samples an op touches (boxes, the jitter order, subsets) are best passed as CPU tensors: the CPU copy picks the
work without a device synchronisation, and the rest is moved to ``x.device`` here. Randomness is never drawn
here except in :func:`sample_crop_boxes`, which draws from the CPU generator it is given.

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
    generator: torch.Generator,
) -> torch.Tensor:
    """Draw ``n`` crop boxes like ``torchvision.transforms.RandomResizedCrop.get_params``, vectorised.

    Per sample, 10 attempts of area ``a = A * U(scale)`` (``A = height * width``) and aspect ratio
    ``r = exp(U(log ratio))`` give ``w = round(sqrt(a r))``, ``h = round(sqrt(a / r))`` (half to even, as Python's
    ``round``); the first attempt with ``0 < w <= width`` and ``0 < h <= height`` is taken, at
    ``top = floor(U * (height - h + 1))``, ``left = floor(U * (width - w + 1))``. A sample without a valid attempt
    falls back to the central crop of the whole image clamped to the ratio range. All draws come from the CPU
    ``generator`` at once (float64, 2 x (n, 10) then 2 x (n,)), so the result depends only on its state.

    Returns (n, 4) int64 on the CPU: ``top, left, height, width``.
    """
    area = height * width
    u_area = torch.rand((n, 10), generator=generator, dtype=torch.float64)
    u_ratio = torch.rand((n, 10), generator=generator, dtype=torch.float64)
    u_top = torch.rand(n, generator=generator, dtype=torch.float64)
    u_left = torch.rand(n, generator=generator, dtype=torch.float64)

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


def _lerp_rows(
    flat: torch.Tensor, i0: torch.Tensor, i1: torch.Tensor, frac: torch.Tensor, c: int, length: int
) -> torch.Tensor:
    """Rows ``a + frac (b - a)`` of ``flat`` (B*c*length, L), ``a``/``b`` the rows ``i0``/``i1`` (B, S) of each
    sample's ``c`` channels: (B, c, S, L) float32. One ``index_select`` (a copy of whole rows) for both taps."""
    n, s = i0.shape
    base = (torch.arange(n * c, device=flat.device) * length).view(n, c, 1)
    idx = torch.stack([i0.view(n, 1, s) + base, i1.view(n, 1, s) + base]).view(-1)
    a, b = flat.index_select(0, idx).view(2, n, c, s, -1).to(torch.float32).unbind(0)
    return torch.addcmul(a, b - a, frac.view(n, 1, s, 1))


def resized_crop(
    images: torch.Tensor, boxes: torch.Tensor, out_size: int, flip: torch.Tensor | None = None
) -> torch.Tensor:
    """Crop box ``i`` of image ``i`` and resize it to ``out_size x out_size``, all samples at once.

    ``images``: (B, C, H, W), uint8 (scaled to [0, 1] by ``/ 255``) or float (taken as is), any layout or device.
    ``boxes``: (B, 4) int64 ``top, left, height, width`` (best on the CPU). The result equals, per sample,
    ``F.interpolate(crop, out_size, mode="bilinear", align_corners=False, antialias=False)`` of the cropped
    region (torchvision's ``resized_crop`` without antialiasing), computed separably: two-tap rows gathered with
    ``index_select`` and blended ``a + frac (b - a)``, first along the columns (on the transposed image), then
    along the rows. A box of size ``out_size`` reproduces its pixels exactly. ``flip`` (B,) bool mirrors the
    chosen samples left-right for free (the column taps are reversed). Returns float32 (B, C, S, S), contiguous.
    """
    n, c, height, width = images.shape
    boxes = boxes.cpu()
    dev = images.device
    r0, r1, fr = (t.to(dev) for t in _source_taps(boxes[:, 0], boxes[:, 2], out_size))
    reverse = None if flip is None else flip.cpu()
    c0, c1, fc = (t.to(dev) for t in _source_taps(boxes[:, 1], boxes[:, 3], out_size, reverse))
    columns = images.transpose(2, 3).contiguous().view(n * c * width, height)  # (B, C, W, H) rows = columns
    x = _lerp_rows(columns, c0, c1, fc, c, width)  # (B, C, S, H)
    x = x.transpose(2, 3).contiguous().view(n * c * height, out_size)  # (B, C, H, S)
    x = _lerp_rows(x, r0, r1, fr, c, height)  # (B, C, S, S)
    return x.div_(255.0) if images.dtype == torch.uint8 else x


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
    out = torch.empty_like(x)
    ramps = ((hue - 3.0).abs_().neg_().add_(2.0), (hue - 2.0).abs_().sub_(1.0), (hue - 4.0).abs_().sub_(1.0))
    for c, ramp in enumerate(ramps):
        torch.addcmul(maxc, delta, ramp.clamp_(0.0, 1.0), value=-1.0, out=out[:, c])
    return out


def color_jitter(x: torch.Tensor, factors: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """torchvision's ``ColorJitter`` with per-sample factors and a per-sample order of the four ops.

    ``factors`` (B, 4): brightness ``b``, contrast ``c``, saturation ``s`` (1 = identity) and hue ``h`` (0 =
    identity) of each sample; ``order`` (B, 4) int64: ``order[i, p]`` is the op (:data:`BRIGHTNESS`,
    :data:`CONTRAST`, :data:`SATURATION`, :data:`HUE`) sample ``i`` applies at position ``p``; both are best on
    the CPU. Each op is torchvision's ``adjust_*`` (brightness ``b x``, contrast ``c x + (1 - c) m`` with ``m`` the
    image's mean grey, saturation ``s x + (1 - s) g`` with ``g`` the grey image ``0.2989 R + 0.587 G + 0.114 B``,
    hue by :func:`adjust_hue`), clamped to [0, 1]. At each position the three blend ops are one batched
    ``clamp(a x + (1 - a) ref, 0, 1)`` with the sample's factor ``a`` and ``ref`` = 0 (brightness), ``m``
    (contrast) or ``g`` (saturation), i.e. ``ref = [op = s] g + [op = c] m``;
    ``a = 1`` leaves a sample exactly unchanged. The hue op runs on just the samples that have it at that
    position with a nonzero factor. The input is not modified.
    """
    factors = factors.cpu().to(torch.float32)
    order = order.cpu()
    n = x.shape[0]
    # Per position p (columns): the blend factor a (1 for hue), and the weights of the grey image and of its mean
    # in ref * (1 - a); all positions at once on the CPU, then one transfer.
    a = torch.cat([factors[:, :3], torch.ones(n, 1)], dim=1).gather(1, order)
    gray_w, mean_w = (order == SATURATION) * (1 - a), (order == CONTRAST) * (1 - a)
    blends, needs_gray = (a != 1).any(dim=0).tolist(), ((gray_w != 0) | (mean_w != 0)).any(dim=0).tolist()
    weights = torch.stack([a, gray_w, mean_w]).to(device=x.device, dtype=x.dtype).view(3, n, 4, 1, 1)
    hue_factor = factors[:, HUE].to(device=x.device, dtype=x.dtype)
    hue_at = (order == HUE) & (factors[:, HUE] != 0).unsqueeze(1)
    owned = False  # whether x is a tensor made here (which may be written in place), not the caller's
    for p in range(4):
        if blends[p]:
            ref = torch.zeros((), dtype=x.dtype, device=x.device)
            if needs_gray[p]:
                gray = _luma(x, JITTER_LUMA)
                ref = (gray * weights[1, :, p : p + 1]).add_(
                    gray.mean(dim=(2, 3), keepdim=True) * weights[2, :, p : p + 1]
                )
            x = torch.addcmul(ref, x, weights[0, :, p : p + 1], out=x if owned else None).clamp_(0.0, 1.0)
            owned = True
        hue_idx = hue_at[:, p].nonzero().squeeze(1)
        if hue_idx.numel() == n:
            x, owned = adjust_hue(x, hue_factor), True
        elif hue_idx.numel() > 0:
            idx = hue_idx.to(x.device)
            hued = adjust_hue(x.index_select(0, idx), hue_factor[idx])
            x, owned = (x.index_copy_(0, idx, hued) if owned else x.index_copy(0, idx, hued)), True
    return x


def grayscale(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Replace the samples where ``mask`` (B,) is true (all when None) by ``0.299 R + 0.587 G + 0.114 B`` x 3."""
    gray = _luma(x, LUMA).expand_as(x)
    if mask is None:
        return gray.contiguous()
    return torch.where(mask.to(x.device).view(-1, 1, 1, 1), gray, x)


def gaussian_kernels(sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """(B, K) normalised 1-D kernels ``exp(-t^2 / (2 sigma^2)) / sum``, ``t = -K//2 .. K//2``; float64, CPU."""
    t = torch.arange(kernel_size, dtype=torch.float64) - kernel_size // 2
    kernels = torch.exp(-(t.unsqueeze(0) ** 2) / (2 * sigma.cpu().to(torch.float64).unsqueeze(1) ** 2))
    return kernels / kernels.sum(dim=1, keepdim=True)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Gaussian blur of sample ``i`` with standard deviation ``sigma[i]`` (pixels), kernel ``kernel_size`` (odd).

    Separable and batched: the (B*3, 1, 1, K) kernels of :func:`gaussian_kernels` run as one grouped conv2d
    (``groups = B * 3``) along rows, then along columns, each after reflect padding by ``K // 2`` (which must be
    less than the image side), as torchvision's ``gaussian_blur`` (reflect padding, same kernel).
    """
    n, c, h, w = x.shape
    pad = kernel_size // 2
    kernels = gaussian_kernels(sigma, kernel_size).to(device=x.device, dtype=x.dtype)
    weight = kernels.repeat_interleave(c, dim=0).view(n * c, 1, 1, kernel_size)
    y = F.pad(x.reshape(1, n * c, h, w), (pad, pad, 0, 0), mode="reflect")
    y = F.conv2d(y, weight, groups=n * c)
    y = F.pad(y, (0, 0, pad, pad), mode="reflect")
    y = F.conv2d(y, weight.view(n * c, 1, kernel_size, 1), groups=n * c)
    return y.view(n, c, h, w)


def solarize(x: torch.Tensor, threshold: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``where(x >= threshold, 1 - x, x)`` on the samples where ``mask`` (B,) is true (all when None)."""
    hit = x >= threshold
    if mask is not None:
        hit = hit & mask.to(x.device).view(-1, 1, 1, 1)
    return torch.where(hit, 1.0 - x, x)


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` per channel, in place; ``mean`` and ``std`` shaped (1, 3, 1, 1) on ``x.device``."""
    return x.sub_(mean).div_(std)
