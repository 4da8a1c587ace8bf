"""Batches of the training split of an image store, in a seeded order that is the same for any process count.

The order of epoch ``e`` is torch's ``DistributedSampler`` permutation (seeded with ``seed + e``, tail dropped
so every process gets the same number of images); process ``r`` of ``W`` takes every ``W``-th position from
``r``, and its ``k``-th batch of ``B / W`` images is positions ``k B/W .. (k+1) B/W`` of its share. The union of
the ``k``-th batches of all processes is therefore the same set of images for every ``W``: 2 processes with
``B / 2`` train on the same global batches as 1 process with ``B``. An epoch is a permutation, so a global batch
never holds an image twice (S-DIET's batch cross-entropy needs that).
"""

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, Sampler

from genssl.store import ImageStore


class StoreBatches(Dataset):
    """Dataset over positions ``0 .. len(indices) - 1`` of ``indices`` (store indices); reading a list of
    positions returns the uint8 batch (B, H, W, 3), in one store read, and the positions (B,)."""

    def __init__(self, store: ImageStore, indices: np.ndarray) -> None:
        self.store = store
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, positions: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        positions = np.asarray(positions, dtype=np.int64)
        return torch.from_numpy(self.store.get_batch(self.indices[positions])), torch.from_numpy(positions)


class EpochBatches(Sampler):
    """Yields ``(epoch, batch)`` for each batch of ``batches`` (a BatchSampler over a sampler with ``.epoch``), for
    datasets whose batches depend on the epoch (generative augmentation)."""

    def __init__(self, batches: BatchSampler) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[int, list[int]]]:
        epoch = self.batches.sampler.epoch
        for batch in self.batches:
            yield epoch, batch


def training_loader(
    dataset: StoreBatches,
    local_batch: int,
    seed: int,
    rank: int,
    world_size: int,
    num_workers: int,
    pin_memory: bool,
    with_epoch: bool = False,
) -> tuple[DataLoader, DistributedSampler]:
    """A loader of ``len(dataset) // (local_batch * world_size)`` batches per epoch; call ``sampler.set_epoch(e)``
    before each epoch. With ``with_epoch`` the dataset is indexed by ``(epoch, positions)``."""
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True)
    batches = BatchSampler(sampler, local_batch, drop_last=True)  # dataset[list]: one store read per batch
    loader = DataLoader(
        dataset,
        sampler=EpochBatches(batches) if with_epoch else batches,
        batch_size=None,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )
    return loader, sampler
