"""Statistics over seeds: mean ± sample sd, Student t intervals and paired differences, on textbook values."""

import math

import pytest

from genssl.report.statistics import Interval, estimate, mean_sd, paired_difference, t_quantile

# Student's sleep data (Cushny & Peebles 1905; R's `sleep`): extra hours of sleep of ten patients under two drugs.
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_t_quantiles_match_the_printed_table():
    # Two-sided 95 % critical values of a t table.
    for dof, value in ((1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (30, 2.042)):
        assert t_quantile(0.975, dof) == pytest.approx(value, abs=5e-4)
    assert t_quantile(0.95, 1) == pytest.approx(6.314, abs=5e-4)
    with pytest.raises(ValueError, match="degree of freedom"):
        t_quantile(0.975, 0)
    with pytest.raises(ValueError, match="0 < q < 1"):
        t_quantile(1.0, 3)


def test_mean_and_sample_sd():
    assert mean_sd([1.0, 2.0, 3.0, 4.0, 5.0]) == (3.0, pytest.approx(math.sqrt(2.5)))
    assert mean_sd([0.7]) == (0.7, None)
    with pytest.raises(ValueError, match="at least one seed"):
        mean_sd([])
    with pytest.raises(ValueError, match="finite"):
        mean_sd([1.0, math.nan])


def test_a_t_interval_over_five_seeds():
    # 3 ± t(0.975, 4) sqrt(2.5) / sqrt(5) = 3 ± 2.776 * 0.7071 = 3 ± 1.963
    result = estimate({seed: float(seed + 1) for seed in range(5)})
    assert result.seeds == (0, 1, 2, 3, 4) and result.n == 5
    assert result.mean == 3.0 and result.sd == pytest.approx(1.5811, abs=1e-4)
    assert result.interval.low == pytest.approx(1.037, abs=1e-3)
    assert result.interval.high == pytest.approx(4.963, abs=1e-3)
    assert result.interval.level == 0.95
    narrower = estimate({seed: float(seed + 1) for seed in range(5)}, level=0.9)
    assert narrower.interval.high - narrower.interval.low < result.interval.high - result.interval.low


def test_the_paired_interval_of_students_sleep_data():
    # R: t.test(extra ~ group, data = sleep, paired = TRUE): mean difference 1.58, 95 % CI 0.7001142 to 2.4598858.
    result = paired_difference(dict(enumerate(SLEEP_2)), dict(enumerate(SLEEP_1)))
    assert result.mean == pytest.approx(1.58) and result.n == 10
    assert result.interval.low == pytest.approx(0.7001142, abs=1e-6)
    assert result.interval.high == pytest.approx(2.4598858, abs=1e-6)
    assert result.interval.excludes_zero() and result.interval.above(0.0)


def test_pairing_uses_the_seeds_both_conditions_ran():
    a, b = {0: 0.9, 1: 0.8, 2: 0.85}, {1: 0.7, 2: 0.8, 5: 0.1}
    result = paired_difference(a, b)
    assert result.seeds == (1, 2) and result.mean == pytest.approx(0.075)
    with pytest.raises(ValueError, match=r"no seed in common to pair: seeds \[0\] against seeds \[1\]"):
        paired_difference({0: 1.0}, {1: 1.0})


def test_one_seed_has_no_sd_and_no_interval_and_says_so():
    result = paired_difference({3: 0.82}, {3: 0.80})
    assert result.n == 1 and result.sd is None and result.interval is None
    assert result.describe(scale=100, digits=1, signed=True) == "+2.0 (n = 1: no interval)"


def test_an_interval_that_crosses_zero_does_not_exclude_it():
    result = paired_difference({0: 0.80, 1: 0.84, 2: 0.79}, {0: 0.81, 1: 0.80, 2: 0.80})
    assert result.interval.low < 0 < result.interval.high and not result.interval.excludes_zero()
    assert Interval(-2.0, -1.0, 0.95).excludes_zero() and Interval(-2.0, -1.0, 0.95).below(0.0)


def test_estimates_describe_mean_sd_interval_and_n():
    result = estimate({0: 0.01, 1: 0.02, 2: 0.03})
    # 0.02 ± 0.01, half width 4.303 * 0.01 / sqrt(3) = 0.0248
    assert result.describe(scale=100, digits=1, signed=True) == "+2.0 ± 1.0 [-0.5, +4.5] (95 % t, n = 3)"
    assert result.describe(digits=3) == "0.020 ± 0.010 [-0.005, 0.045] (95 % t, n = 3)"
    with pytest.raises(ValueError, match="confidence level"):
        estimate({0: 1.0, 1: 2.0}, level=95)
