"""The standard SSL view pipelines (SimCLR / BYOL style), applied to whole batches on the training device.

Per view, in this order: random resized crop to ``out_size``, horizontal flip, colour jitter (random order per
sample), grayscale, gaussian blur, solarize, normalise (float32 in [0, 1] until the normalisation). Every random
parameter is drawn from a CPU ``torch.Generator`` (:func:`genssl.augment.params.draw_view_params`) and turned into
the tensors the ops run with, packed for all views of the batch into one buffer (:meth:`BatchAugment.draw`, which
needs the batch's shape only, so a loader worker can run it), which reaches the device in one copy. The rest
(:meth:`BatchAugment.apply`) is a fixed sequence of batched tensor ops that does not depend on the parameters'
values: a sample an op leaves alone gets identity parameters, nothing is gathered or scattered by a mask and nothing
is read back to the host, so the device never waits for the host. All views of a batch run as one batch, so each op
is launched once, not once per view. An op that no view applies costs nothing; any other runs on every sample. The
flip costs nothing: it reverses the crop's column taps. With ``compile``, the elementwise colour ops run through
``torch.compile``, which fuses them into a few kernels.

On the CPU much of the time goes to page faults on freshly allocated intermediates (glibc returns large freed
blocks to the system); a process can avoid that with ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``.
"""

from collections.abc import Callable

import torch

from genssl.augment import ops
from genssl.augment.params import DeviceParams, ViewDraws
from genssl.augment.spec import MEAN, STD, ViewSpec, blur_kernel_size, view_specs
from genssl.cuda_graphs import GraphedFunction

#: On the CPU the samples run in passes of about this many bytes of float32 view, so that each op's tensors stay in
#: the caches: on 2 cores (1 MiB L2 each, 16 MiB L3), one thread, a SimCLR view costs 59 us per sample at 32 px in
#: passes of 128 samples vs 70 / 86 us in passes of 512 / 1,024, and 3.4 vs 4.2 ms at 224 px in passes of 2-8 vs
#: 32-128 samples. On a GPU, where a step is bound by kernel launches, every sample runs in one pass.
CPU_PASS_BYTES = 2 * 2**20

__all__ = ["MEAN", "STD", "BatchAugment", "ViewSpec", "blur_kernel_size", "colour", "finish", "view_specs"]


def colour(x: torch.Tensor, params: DeviceParams) -> torch.Tensor:
    """The colour ops of a view before the blur: jitter and grayscale (each skipped where its ``params`` are None)."""
    if params.slots is not None:
        x = ops.apply_jitter(x, params.slots, params.hue, params.hue_on)
    if params.gray is not None:
        x = ops.grayscale(x, params.gray)
    return x


def finish(x: torch.Tensor, params: DeviceParams, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """The ops of a view after the blur: solarize (skipped where ``params.solarize`` is None) and the normalisation
    with ``mean`` and ``std`` (1, 3, 1, 1)."""
    if params.solarize is not None:
        x = ops.solarize(x, params.solarize)
    return ops.normalize(x, mean, std)


class BatchAugment:
    """Turn a batch of images into one augmented, normalised batch per :class:`ViewSpec`.

    ``compile``: run :func:`colour` and :func:`finish`, the elementwise bulk of the views, through ``torch.compile``
    (full graph; compiled on the first call, and once more, with a dynamic batch size, for the first batch of
    another size), which fuses them into a few kernels. The crop and the blur stay eager (gathers and
    convolutions, which compiling makes slower on the CPU). The views then equal the eager ones within float32
    rounding, not bit for bit.

    ``cuda_graph``: on CUDA, run the pass over a batch's views as a CUDA graph (:mod:`genssl.cuda_graphs`; captured
    on the first batch of each size): one launch instead of one per op, the same views bit for bit (the ops do not
    depend on the parameters' values, which reach the graph as a tensor). Elsewhere it changes nothing.
    """

    def __init__(
        self,
        views: list[ViewSpec],
        out_size: int,
        mean: tuple[float, float, float] = MEAN,
        std: tuple[float, float, float] = STD,
        compile: bool = False,
        cuda_graph: bool = False,
    ) -> None:
        if not views:
            raise ValueError("BatchAugment needs at least one view")
        if out_size < 1:
            raise ValueError(f"out_size must be positive, got {out_size}")
        self.views = list(views)
        self.out_size = out_size
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.draws = ViewDraws(tuple(self.views), out_size, tuple(blur_kernel_size(v, out_size) for v in views))
        self._stats: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self._colour: Callable[..., torch.Tensor] = torch.compile(colour, fullgraph=True) if compile else colour
        self._finish: Callable[..., torch.Tensor] = torch.compile(finish, fullgraph=True) if compile else finish
        self._pass: Callable[..., torch.Tensor] = GraphedFunction(self._run, "views") if cuda_graph else self._run

    def _mean_std(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._stats:
            mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1).to(device)
            std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1).to(device)
            self._stats[device] = (mean, std)
        return self._stats[device]

    def draw(self, n: int, height: int, width: int, rng: torch.Generator) -> torch.Tensor:
        """The random parameters of the views of ``n`` images of ``height x width``, from the CPU generator ``rng``:
        one float32 CPU buffer (V B, width), view after view, for :meth:`apply`
        (:class:`~genssl.augment.params.ViewDraws`). ALL random parameters (crop boxes, flips, jitter factors, the
        random order of the four jitter ops per sample, blur sigmas, coin flips) come from ``rng``, view after view,
        so the views depend only on its state, not on the device or on anything global."""
        return self.draws.draw(n, height, width, rng)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, rng: torch.Generator) -> list[torch.Tensor]:
        """:meth:`apply` with the parameters :meth:`draw` gives for ``images`` and ``rng``."""
        if images.ndim not in (4, 5):
            raise ValueError(f"expected images (B, H, W, 3) or (B, 3, H, W), got shape {tuple(images.shape)}")
        n, height, width = images.shape[-4:-1] if images.shape[-1] == 3 else (images.shape[-4], *images.shape[-2:])
        return self.apply(images, self.draw(n, height, width, rng))

    @torch.no_grad()
    def apply(self, images: torch.Tensor, params: torch.Tensor) -> list[torch.Tensor]:
        """images: uint8 (B, H, W, 3) (as read from the image store) or (B, 3, H, W), on any device; ``params``:
        :meth:`draw`'s buffer for them, on the CPU (copied over, from pinned memory without blocking on CUDA) or
        already on images.device. Returns one float32 tensor (B, 3, out_size, out_size) per view, normalised with
        mean/std, on images.device, contiguous. The result depends only on the images and ``params``, so it is the
        same on every device for the same generator state.

        All views run as one batch of V B samples: one launch of each op, not one per view (on the CPU in passes of
        :data:`CPU_PASS_BYTES`, which give the same values). A view that lacks an op another view has gets that
        op's identity (:func:`~genssl.augment.params.pack_params`), so its output is the one of its own ops alone:
        bit for bit where the views have the same ops or the missing ones are exact identities (every method's
        views; BYOL's view 1 gets a solarize at threshold inf), else within float32 rounding.

        A trailing dimension of 3 means channels-last (the store's layout); float images are taken as [0, 1].
        A 5-dimensional ``images`` (V, B, ...) holds one source batch per view (generative augmentation).
        """
        views = len(self.views)
        if images.ndim == 5 and images.shape[0] != views:
            raise ValueError(f"{images.shape[0]} source batches for {views} views")
        sources = images if images.ndim == 5 else images.expand(views, *images.shape)
        if sources.ndim != 5 or 3 not in (sources.shape[2], sources.shape[4]):
            raise ValueError(f"expected images (B, H, W, 3) or (B, 3, H, W), got shape {tuple(images.shape)}")
        n = sources.shape[1]
        if params.shape[0] != views * n:
            raise ValueError(f"view parameters of {params.shape[0]} samples for {views} views of {n} images")
        if params.device != images.device:
            cuda = images.device.type == "cuda"
            params = (params.pin_memory() if cuda and not params.is_pinned() else params).to(
                images.device, non_blocking=cuda
            )
        x = sources.reshape(views * n, *sources.shape[2:])
        x = x.permute(0, 3, 1, 2) if x.shape[3] == 3 else x
        rows = views * n if x.device.type != "cpu" else max(1, CPU_PASS_BYTES // (3 * self.out_size**2 * 4))
        passes = [self._pass(x[i : i + rows], params[i : i + rows]) for i in range(0, len(x), rows)]
        out = passes[0] if len(passes) == 1 else torch.cat(passes)
        return list(out.view(views, n, *out.shape[1:]).unbind(0))

    def _run(self, images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """One pass over ``images`` (N, 3, H, W) with their packed ``params`` (N, width) on their device."""
        on_device = self.draws.unpack(params)
        x = self._colour(ops.resample(images, on_device.index, on_device.frac), on_device)
        if on_device.kernels is not None:
            x = ops.separable_blur(x, on_device.kernels)
        return self._finish(x, on_device, *self._mean_std(images.device)).contiguous()
