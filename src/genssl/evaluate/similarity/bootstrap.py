"""Seeded bootstrap over examples: confidence intervals of statistics of aligned representations.

Resample r (r = 0..R-1) draws n row indices uniformly with replacement from a generator seeded with
``derive_seed(seed, "bootstrap", r)``, so every resample, and therefore every interval, depends only on
(seed, r, n): the same for every pair of encoders, for any number of encoders and on every machine.

The interval at level c is the bootstrap's normal interval ``theta +- z_{(1+c)/2} se``, with se the standard
deviation of the R resampled statistics, clipped to the statistic's range. Not the percentile interval: a
resample repeats examples, and repeated rows bias CKA and the Procrustes distance (a resample of n rows holds
about 0.63 n distinct examples, which align more easily than n in d dimensions; measured on the default study,
OPD drops by 0.01 to 0.05, more than its spread), so the resampled quantiles can miss the estimate altogether;
their spread is still the sampling variability the interval should show.
"""

from collections.abc import Callable
from statistics import NormalDist

import numpy as np
import torch

from genssl.progress import progress
from genssl.seeding import derive_seed


def resample_rows(n: int, resample: int, seed: int) -> torch.Tensor:
    """The n row indices of bootstrap resample ``resample`` (int64, with replacement)."""
    generator = torch.Generator().manual_seed(derive_seed(seed, "bootstrap", resample))
    return torch.randint(n, (n,), generator=generator)


def normal_interval(
    point: np.ndarray, samples: np.ndarray, confidence: float, bounds: tuple[float | None, float | None]
) -> tuple[np.ndarray, np.ndarray]:
    """``point -+ z se`` elementwise, se the sample standard deviation over the first axis of ``samples`` (R, ...),
    clipped to ``bounds`` (None: unbounded)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    se = samples.std(axis=0, ddof=1)
    low, high = bounds
    return np.clip(point - z * se, low, high), np.clip(point + z * se, low, high)


def bootstrap_intervals(
    statistic: Callable[[torch.Tensor], dict[str, np.ndarray]],
    point: dict[str, np.ndarray],
    n: int,
    resamples: int,
    seed: int,
    confidence: float,
    bounds: dict[str, tuple[float | None, float | None]] | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{name: (low, high)}`` for every array that ``statistic(rows)`` returns, around ``point[name]`` (its value on
    the whole set), over ``resamples`` resamples; ``bounds[name]`` is the range of a statistic."""
    if resamples < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 resamples, got {resamples}")
    draws: dict[str, list[np.ndarray]] = {}
    for r in progress(range(resamples), desc="bootstrap", unit="resample"):
        for name, value in statistic(resample_rows(n, r, seed)).items():
            draws.setdefault(name, []).append(value)
    bounds = bounds or {}
    return {
        name: normal_interval(point[name], np.stack(values), confidence, bounds.get(name, (None, None)))
        for name, values in draws.items()
    }
