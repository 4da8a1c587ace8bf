"""The device prefetcher yields the loader's batches in order, on the device, with the next batch's positions."""

import torch

from genssl.train.prefetch import DevicePrefetcher


def test_the_prefetcher_yields_each_batch_and_names_the_next_one():
    batches = [
        (torch.full((2, 4, 4, 3), k, dtype=torch.uint8), torch.tensor([2 * k, 2 * k + 1]), torch.full((2, 5), -k))
        for k in range(3)
    ]
    prefetcher = DevicePrefetcher(batches, torch.device("cpu"))
    seen = []
    for images, indices, host, params in prefetcher:
        nxt = None if prefetcher.next_indices is None else prefetcher.next_indices.tolist()
        seen.append((int(images[0, 0, 0, 0]), indices.tolist(), host.tolist(), int(params[1, 4]), nxt))
    assert seen == [(0, [0, 1], [0, 1], 0, [2, 3]), (1, [2, 3], [2, 3], -1, [4, 5]), (2, [4, 5], [4, 5], -2, None)]
    assert [int(batch.images[0, 0, 0, 0]) for batch in prefetcher] == [0, 1, 2]  # iterable again
