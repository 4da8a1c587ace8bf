"""The neighbourhoods of the IC-GAN formulation: exact k nearest neighbours by cosine similarity (computed in blocks
of rows) and the (source, target) training pairs drawn from them."""

import torch
import torch.nn.functional as F

#: Similarities held at once: ``block`` rows x N columns (64 MiB of float32).
BLOCK_ENTRIES = 1 << 24


def nearest_neighbours(features: torch.Tensor, k: int, block: int | None = None) -> torch.Tensor:
    """int64 (N, k): row i holds i, then the k - 1 other rows j with the largest cos(f_i, f_j), most similar first.

    The features (N, D) are L2-normalised here, the similarities of ``block`` rows against all N rows are formed
    at a time (default ``BLOCK_ENTRIES // N`` rows, so memory is O(block x N)), and row i's own similarity is
    set to +inf so that i comes first even when another row has the same features. Ties among the others are
    broken as ``torch.topk`` breaks them.
    """
    n = len(features)
    if not 1 <= k <= n:
        raise ValueError(f"k = {k} neighbours of {n} points")
    unit = F.normalize(features, dim=1)
    block = block or max(1, BLOCK_ENTRIES // max(n, 1))
    out = torch.empty((n, k), dtype=torch.int64)
    for start in range(0, n, block):
        stop = min(start + block, n)
        similarity = unit[start:stop] @ unit.T
        rows = torch.arange(stop - start)
        similarity[rows, rows + start] = float("inf")
        out[start:stop] = similarity.topk(k, dim=1).indices.cpu()
    return out


def draw_pairs(neighbours: torch.Tensor, batch: int, draws: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` training pairs (positions in the train split): sources i uniform over the N rows of
    ``neighbours`` (N, k), and targets j uniform over row i (i itself when k = 1)."""
    n, k = neighbours.shape
    sources = torch.randint(n, (batch,), generator=draws)
    return sources, neighbours[sources, torch.randint(k, (batch,), generator=draws)]
