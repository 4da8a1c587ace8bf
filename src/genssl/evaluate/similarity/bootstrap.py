"""Seeded bootstrap over examples: percentile confidence intervals of statistics of aligned representations.

Resample r (r = 0..R-1) draws n row indices uniformly with replacement from a generator seeded with
``derive_seed(seed, "bootstrap", r)``, so every resample, and therefore every interval, depends only on
(seed, r, n): the same for every pair of encoders, for any number of encoders and on every machine. The interval
at level c is the empirical (1 - c) / 2 and (1 + c) / 2 quantiles of the R resampled statistics (linear
interpolation). A resample repeats examples, which the debiased HSIC treats as distinct pairs; the intervals are
therefore a little wider than those of a subsampling scheme would be, which errs on the safe side.
"""

from collections.abc import Callable

import numpy as np
import torch

from genssl.progress import progress
from genssl.seeding import derive_seed


def resample_rows(n: int, resample: int, seed: int) -> torch.Tensor:
    """The n row indices of bootstrap resample ``resample`` (int64, with replacement)."""
    generator = torch.Generator().manual_seed(derive_seed(seed, "bootstrap", resample))
    return torch.randint(n, (n,), generator=generator)


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise (low, high) quantiles at (1 -+ confidence) / 2 over the first axis of ``samples`` (R, ...)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    low, high = np.quantile(samples, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
    return low, high


def bootstrap_intervals(
    statistic: Callable[[torch.Tensor], dict[str, np.ndarray]],
    n: int,
    resamples: int,
    seed: int,
    confidence: float,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{name: (low, high)}`` for every array that ``statistic(rows)`` returns, over ``resamples`` resamples."""
    if resamples < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 resamples, got {resamples}")
    draws: dict[str, list[np.ndarray]] = {}
    for r in progress(range(resamples), desc="bootstrap", unit="resample"):
        for name, value in statistic(resample_rows(n, r, seed)).items():
            draws.setdefault(name, []).append(value)
    return {name: percentile_interval(np.stack(values), confidence) for name, values in draws.items()}
