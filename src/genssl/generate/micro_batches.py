"""Networks run on chunks of a fixed number of rows, so a sample's bits do not depend on its batch.

CPU kernels (MKL, oneDNN) and cuDNN choose their algorithm, and so the order of a sum, by the batch shape: the same
sample computed in batches of different sizes differs in the last bits (measured on the icdiffusion UNet: up to
1e-6, enough to flip a pixel's uint8 value), while at one shape a row's result does not depend on its position or
on the other rows. :func:`in_micro_batches` therefore always calls a network on exactly :data:`MICRO_BATCH` rows,
zero-padding the last chunk; a batch size that is not a multiple of it wastes the padded rows' compute.
"""

from collections.abc import Callable

import torch

#: Rows per network call.
MICRO_BATCH = 32


def in_micro_batches(function: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
    """``function`` applied to chunks of exactly :data:`MICRO_BATCH` rows of ``inputs`` (which share their first
    dimension B; the last chunk padded with zeros), the results concatenated and cut back to B rows."""
    rows = len(inputs[0])
    pad = -rows % MICRO_BATCH
    padded = [torch.cat([v, v.new_zeros((pad, *v.shape[1:]))]) for v in inputs]
    chunks = [function(*(v[i : i + MICRO_BATCH] for v in padded)) for i in range(0, rows + pad, MICRO_BATCH)]
    return torch.cat(chunks)[:rows]
