"""Batches on the training device one step ahead: while step ``k`` computes, batch ``k + 1`` is already read and
(on CUDA) copied to the device on a side stream, from the loader's pinned host memory.

:class:`DevicePrefetcher` iterates :class:`DeviceBatch`: the batch (images, positions and the parameters of its views,
:class:`genssl.train.data.ViewBatches`) on the device, and its positions also on the host (for a method that looks
them up there, e.g. S-DIET's head rows, without waiting for the device).
It keeps the next batch at hand, so that
:attr:`DevicePrefetcher.next_indices` (the CPU positions of the batch after the current one) lets a method prepare
it early: S-DIET reads that batch's head rows from disk while the current step computes
(:meth:`genssl.methods.base.Method.prefetch_external`). On the CPU the copy is the identity and only the
look-ahead remains.

Contract of the CUDA copy: the side stream copies with ``non_blocking=True`` from pinned memory; before the
compute stream uses a batch it waits for the side stream (``wait_stream``), and the batch's tensors are marked as
used by the compute stream (``record_stream``), so the caching allocator does not reuse their memory early.
"""

from collections.abc import Iterable, Iterator
from typing import NamedTuple

import torch


class DeviceBatch(NamedTuple):
    """A training batch on the device: uint8 ``images``, their positions ``indices`` (also on the host:
    ``host_indices``) and the packed ``view_params`` of their views."""

    images: torch.Tensor
    indices: torch.Tensor
    host_indices: torch.Tensor
    view_params: torch.Tensor


class DevicePrefetcher:
    """The ``(images, indices, view_params)`` host batches of ``batches`` as :class:`DeviceBatch` on ``device``, each
    copied while the previous one computes."""

    def __init__(
        self, batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], device: torch.device
    ) -> None:
        self.batches = batches
        self.device = device
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self._iterator: Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None
        self._next: DeviceBatch | None = None

    def _load(self) -> None:
        """Take the next host batch and start its copy into ``_next``."""
        assert self._iterator is not None
        try:
            images, indices, view_params = next(self._iterator)
        except StopIteration:
            self._next = None
            return
        if self.stream is None:
            self._next = DeviceBatch(images, indices, indices, view_params)
            return
        with torch.cuda.stream(self.stream):
            images_d, indices_d, params_d = (
                t.to(self.device, non_blocking=True) for t in (images, indices, view_params)
            )
        self._next = DeviceBatch(images_d, indices_d, indices, params_d)

    def __iter__(self) -> Iterator[DeviceBatch]:
        self._iterator = iter(self.batches)
        self._load()
        while self._next is not None:
            batch = self._next
            if self.stream is not None:
                current = torch.cuda.current_stream(self.device)
                current.wait_stream(self.stream)
                for tensor in (batch.images, batch.indices, batch.view_params):
                    tensor.record_stream(current)
            self._load()
            yield batch

    @property
    def next_indices(self) -> torch.Tensor | None:
        """The CPU positions of the batch after the one last yielded (None at the end)."""
        return None if self._next is None else self._next.host_indices
