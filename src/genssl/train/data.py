"""Batches of the training split of an image store, in a seeded order that is the same for any process count.

The order of epoch ``e`` is torch's ``DistributedSampler`` permutation (seeded with ``seed + e``, tail dropped
so every process gets the same number of images); process ``r`` of ``W`` takes every ``W``-th position from
``r``, and its ``k``-th batch of ``B / W`` images is positions ``k B/W .. (k+1) B/W`` of its share. The union of
the ``k``-th batches of all processes is therefore the same set of images for every ``W``: 2 processes with
``B / 2`` train on the same global batches as 1 process with ``B``. An epoch is a permutation, so a global batch
never holds an image twice (S-DIET's batch cross-entropy needs that).

The loader is indexed by :class:`BatchKey` ``(epoch, number, positions)``. With a :class:`BatchViews` it also
draws the random parameters of the batch's views where it reads the batch, in a worker process when there are
workers, so the training process only applies them (:meth:`genssl.augment.BatchAugment.apply`): batch ``number`` of
``epoch`` on process ``rank`` draws from the CPU generator seeded with ``derive_seed(seed, "views", method, epoch,
number, rank)``, the same wherever it is drawn.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, Sampler

from genssl.augment.params import ViewDraws
from genssl.seeding import derive_seed
from genssl.store import ImageStore


class BatchKey(NamedTuple):
    """A batch of the loader: the ``number``-th (from 0) of ``epoch``, at ``positions`` of the training split."""

    epoch: int
    number: int
    positions: list[int]


class StoreBatches(Dataset):
    """Dataset over positions ``0 .. len(indices) - 1`` of ``indices`` (store indices); reading a
    :class:`BatchKey` returns the uint8 batch (B, H, W, 3) at its positions, in one store read, and the positions
    (B,)."""

    def __init__(self, store: ImageStore, indices: np.ndarray) -> None:
        self.store = store
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: BatchKey) -> tuple[torch.Tensor, torch.Tensor]:
        positions = np.asarray(key.positions, dtype=np.int64)
        return torch.from_numpy(self.store.get_batch(self.indices[positions])), torch.from_numpy(positions)


class EpochBatches(Sampler):
    """Yields a :class:`BatchKey` for each batch of ``batches`` (a BatchSampler over a sampler with ``.epoch``)."""

    def __init__(self, batches: BatchSampler) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[BatchKey]:
        epoch = self.batches.sampler.epoch
        for number, batch in enumerate(self.batches):
            yield BatchKey(epoch, number, batch)


@dataclass(frozen=True)
class BatchViews:
    """The random parameters of the views of each batch (module docstring): ``draws`` with the generator of batch
    ``number`` of ``epoch`` on process ``rank`` of the run ``(seed, method)``. Picklable (loader workers)."""

    draws: ViewDraws
    seed: int
    method: str
    rank: int

    def __call__(self, key: BatchKey, images: torch.Tensor) -> torch.Tensor:
        """The packed parameters (V B, width) for the uint8 ``images`` (B, H, W, 3) or (V, B, H, W, 3) of ``key``."""
        n, height, width = images.shape[-4:-1]
        rng = torch.Generator().manual_seed(
            derive_seed(self.seed, "views", self.method, key.epoch, key.number, self.rank)
        )
        return self.draws.draw(n, height, width, rng)


class ViewBatches(Dataset):
    """``dataset``'s batches with the parameters of their views: a :class:`BatchKey` gives ``(images, positions,
    view parameters)``."""

    def __init__(self, dataset: Dataset, views: BatchViews) -> None:
        self.dataset, self.views = dataset, views

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: BatchKey) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images, positions = self.dataset[key]
        return images, positions, self.views(key, images)


def training_loader(
    dataset: StoreBatches,
    local_batch: int,
    seed: int,
    rank: int,
    world_size: int,
    num_workers: int,
    pin_memory: bool,
    views: BatchViews | None = None,
) -> tuple[DataLoader, DistributedSampler]:
    """A loader of ``len(dataset) // (local_batch * world_size)`` batches per epoch, ``dataset`` indexed by
    :class:`BatchKey`; call ``sampler.set_epoch(e)`` before each epoch. With ``views`` each batch also carries the
    parameters of its views (:class:`ViewBatches`)."""
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True)
    batches = BatchSampler(sampler, local_batch, drop_last=True)  # dataset[BatchKey]: one store read per batch
    loader = DataLoader(
        dataset if views is None else ViewBatches(dataset, views),
        sampler=EpochBatches(batches),
        batch_size=None,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )
    return loader, sampler
