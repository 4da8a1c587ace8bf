"""Statistics over training runs: mean ± sample sd over seeds, paired differences and Student t intervals.

The unit of replication is a training run (a seed: its initialisation and data order), not a test example. For
the values ``x_1 .. x_n`` of ``n`` seeds,

    mean                x̄ = (1 / n) Σ_i x_i
    sample sd           s = sqrt( Σ_i (x_i − x̄)² / (n − 1) )                   (n ≥ 2)
    level-L t interval  x̄ ± t_{(1 + L) / 2, n − 1} · s / sqrt(n)                (n ≥ 2; L = 0.95 by default)

where ``t_{q, ν}`` is the q-quantile of Student's t distribution with ν degrees of freedom
(``scipy.stats.t.ppf``). The interval assumes the per-seed values are independent draws from a normal
distribution; with n = 3 seeds ``t_{0.975, 2} = 4.303``, so the interval is wide: that is the honest width.

A paired difference compares two conditions run with the same seeds (same initialisation and data order), e.g.
generative − standard: ``d_i = a_i − b_i`` for every seed ``i`` that both conditions ran, and the statistics
above of the ``d_i``. Pairing removes the seed-to-seed variation the two conditions share.

With n = 1 there is no sd and no interval: :class:`Estimate` then holds ``sd = None`` and ``interval = None``
and says so when formatted; nothing stands in for the missing interval.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy import stats

#: The confidence level of every interval of the report.
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A closed interval [low, high] at confidence ``level``."""

    low: float
    high: float
    level: float

    def above(self, value: float) -> bool:
        """The whole interval lies above ``value`` (low > value)."""
        return self.low > value

    def below(self, value: float) -> bool:
        """The whole interval lies below ``value`` (high < value)."""
        return self.high < value

    def excludes_zero(self) -> bool:
        """0 lies outside the interval."""
        return self.above(0.0) or self.below(0.0)


@dataclass(frozen=True)
class Estimate:
    """The mean of per-seed values with its sample sd and t interval (both ``None`` when n = 1).

    ``seeds`` are the seeds the values came from, in increasing order."""

    seeds: tuple[int, ...]
    mean: float
    sd: float | None
    interval: Interval | None

    @property
    def n(self) -> int:
        """The number of seeds."""
        return len(self.seeds)

    def describe(self, scale: float = 1.0, digits: int = 3, signed: bool = False) -> str:
        """``mean ± sd [low, high]`` of the values times ``scale`` with the interval's level and n, e.g.
        ``+1.2 ± 0.8 [−0.8, +3.2] (95 % t, n = 3)``; for n = 1 ``+1.2 (n = 1: no interval)``."""
        sign = "+" if signed else ""

        def fmt(value: float) -> str:
            return f"{value * scale:{sign}.{digits}f}"

        if self.interval is None or self.sd is None:
            return f"{fmt(self.mean)} (n = {self.n}: no interval)"
        bounds = f"[{fmt(self.interval.low)}, {fmt(self.interval.high)}]"
        level = f"{100 * self.interval.level:g} % t, n = {self.n}"
        return f"{fmt(self.mean)} ± {self.sd * scale:.{digits}f} {bounds} ({level})"


def t_quantile(q: float, dof: int) -> float:
    """The q-quantile of Student's t distribution with ``dof`` degrees of freedom."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"a quantile needs 0 < q < 1, got {q}")
    if dof < 1:
        raise ValueError(f"Student's t distribution needs at least 1 degree of freedom, got {dof}")
    return float(stats.t.ppf(q, dof))


def _check_values(values: Sequence[float]) -> list[float]:
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values: an estimate needs at least one seed")
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise ValueError(f"values must be finite, got {bad}")
    return values


def mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """The mean x̄ and the sample sd s (``n − 1`` in the denominator; ``None`` for one value)."""
    values = _check_values(values)
    n = len(values)
    mean = math.fsum(values) / n
    if n == 1:
        return mean, None
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def estimate(per_seed: Mapping[int, float], level: float = LEVEL) -> Estimate:
    """Mean, sample sd and level-``level`` t interval of per-seed values ``{seed: value}`` (module docstring)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"a confidence level needs 0 < level < 1, got {level}")
    seeds = tuple(sorted(per_seed))
    mean, sd = mean_sd([per_seed[s] for s in seeds])
    if sd is None:
        return Estimate(seeds, mean, None, None)
    half = t_quantile((1.0 + level) / 2.0, len(seeds) - 1) * sd / math.sqrt(len(seeds))
    return Estimate(seeds, mean, sd, Interval(mean - half, mean + half, level))


def paired_difference(a: Mapping[int, float], b: Mapping[int, float], level: float = LEVEL) -> Estimate:
    """The estimate of ``d_i = a_i − b_i`` over the seeds ``i`` that both ``a`` and ``b`` ran (module docstring).

    Seeds that only one condition ran are left out (an ablation may run fewer seeds than the main comparison);
    the estimate's ``seeds`` say which were paired. No common seed is an error."""
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError(f"no seed in common to pair: seeds {sorted(a)} against seeds {sorted(b)}")
    return estimate({s: float(a[s]) - float(b[s]) for s in common}, level)
