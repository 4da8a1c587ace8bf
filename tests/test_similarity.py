"""CKA and orthogonal Procrustes distance: their defining properties, checked against direct computations."""

import itertools

import numpy as np
import pytest
import torch

from genssl.evaluate.similarity.bootstrap import bootstrap_intervals, normal_interval, resample_rows
from genssl.evaluate.similarity.cka import linear_cka, minibatch_cka
from genssl.evaluate.similarity.pairwise import similarity_matrices
from genssl.evaluate.similarity.procrustes import procrustes_distance


def _features(n=200, dims=(16, 24), seed=0, noise=0.5):
    """X and a noisy linear map of it: related, but not identical, representations."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dims[0]))
    y = x @ rng.normal(size=(dims[0], dims[1])) + noise * rng.normal(size=(n, dims[1]))
    return x, y


def _orthogonal(d, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_of_a_representation_with_itself_is_one(debiased):
    x, _ = _features()
    assert linear_cka(x, x, debiased=debiased) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_is_invariant_to_isotropic_scaling_orthogonal_transforms_and_shifts(debiased):
    x, y = _features()
    value = linear_cka(x, y, debiased=debiased)
    transformed = 7.5 * x @ _orthogonal(x.shape[1], 1) + 3.0
    assert linear_cka(transformed, y, debiased=debiased) == pytest.approx(value, rel=1e-10)
    assert linear_cka(y, x, debiased=debiased) == pytest.approx(value, rel=1e-12)
    assert 0.2 < value < 0.99  # related, not identical


def test_cka_is_not_invariant_to_anisotropic_scaling():
    x, y = _features()
    stretched = x * np.linspace(0.1, 10, x.shape[1])
    assert abs(linear_cka(stretched, y) - linear_cka(x, y)) > 0.05


def test_biased_cka_equals_the_gram_matrix_formula():
    x, y = _features(n=50)
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    gram_k, gram_l = h @ (x @ x.T) @ h, h @ (y @ y.T) @ h
    expected = np.trace(gram_k @ gram_l) / np.sqrt(np.trace(gram_k @ gram_k) * np.trace(gram_l @ gram_l))
    assert linear_cka(x, y) == pytest.approx(expected, rel=1e-12)


def _hsic_u_statistic(k, m):
    """Song et al. (2012): the mean over ordered 4-tuples of distinct examples of
    K_ij M_ij + K_ij M_qr - 2 K_ij M_iq."""
    n = len(k)
    terms = [
        k[i, j] * m[i, j] + k[i, j] * m[q, r] - 2 * k[i, j] * m[i, q]
        for i, j, q, r in itertools.permutations(range(n), 4)
    ]
    return np.mean(terms)


def test_debiased_cka_equals_the_u_statistic_computed_directly():
    x, y = _features(n=9, dims=(3, 4), seed=3)
    gram_k, gram_l = x @ x.T, y @ y.T  # uncentred: the U-statistic is invariant to shifts
    expected = _hsic_u_statistic(gram_k, gram_l) / np.sqrt(
        _hsic_u_statistic(gram_k, gram_k) * _hsic_u_statistic(gram_l, gram_l)
    )
    assert linear_cka(x, y, debiased=True) == pytest.approx(expected, rel=1e-10)


def test_minibatch_cka_of_one_batch_is_the_debiased_cka_and_more_batches_approach_it():
    x, y = _features(n=8192, dims=(32, 32), noise=2.0)
    full = linear_cka(x, y, debiased=True)
    generator = torch.Generator().manual_seed(0)
    assert minibatch_cka(x, y, len(x), generator) == pytest.approx(full, rel=1e-10)
    errors = {}
    for batch in (64, 1024):
        values = [minibatch_cka(x, y, batch, torch.Generator().manual_seed(s)) for s in range(5)]
        errors[batch] = np.mean(np.abs(np.array(values) - full))
    assert errors[1024] < 0.01
    assert errors[1024] < errors[64]  # the same data in larger batches: closer to the whole-set estimate


def test_minibatch_cka_of_a_representation_with_itself_is_one():
    x, _ = _features(n=1000)
    assert minibatch_cka(x, x, 100, torch.Generator().manual_seed(0)) == pytest.approx(1.0, abs=1e-12)


def test_procrustes_distance_is_zero_for_an_orthogonally_transformed_copy():
    x, _ = _features()
    copy = 0.3 * x @ _orthogonal(x.shape[1], 2) - 5.0
    assert procrustes_distance(x, copy) == pytest.approx(0.0, abs=1e-10)


def test_procrustes_distance_is_symmetric_and_within_zero_and_two():
    x, y = _features()
    value = procrustes_distance(x, y)
    assert value == pytest.approx(procrustes_distance(y, x), rel=1e-12)
    assert 0 < value < 2
    rng = np.random.default_rng(5)
    for _ in range(20):  # unrelated and anti-related representations stay in range
        a, b = rng.normal(size=(30, 5)), rng.normal(size=(30, 8))
        assert 0 <= procrustes_distance(a, b) <= 2
        assert procrustes_distance(a, -a) == pytest.approx(0.0, abs=1e-10)  # -I is orthogonal


def test_procrustes_distance_equals_the_minimum_over_rotations():
    """2 - 2 ||X^T Y||_* is min_Q ||X - Y Q||_F^2, attained at Q = U V^T of the SVD of Y^T X."""
    x, y = _features(dims=(6, 6))
    xn = (x - x.mean(0)) / np.linalg.norm(x - x.mean(0))
    yn = (y - y.mean(0)) / np.linalg.norm(y - y.mean(0))
    u, _, vt = np.linalg.svd(yn.T @ xn)
    best = np.linalg.norm(xn - yn @ (u @ vt)) ** 2
    assert procrustes_distance(x, y) == pytest.approx(best, rel=1e-10)
    for seed in range(10):
        assert np.linalg.norm(xn - yn @ _orthogonal(6, seed)) ** 2 >= best


def test_unaligned_representations_are_refused():
    x, y = _features()
    with pytest.raises(ValueError, match="200 and 150 examples"):
        linear_cka(x, y[:150])
    with pytest.raises(ValueError, match="aligned rows"):
        similarity_matrices([x, y[:150]])


def test_the_pairwise_matrices_equal_the_pairwise_functions():
    x, y = _features()
    z = np.random.default_rng(9).normal(size=(200, 10))
    matrices = similarity_matrices([x, y, z])
    for i, j in itertools.combinations(range(3), 2):
        a, b = (x, y, z)[i], (x, y, z)[j]
        assert matrices["cka"][i, j] == pytest.approx(linear_cka(a, b), rel=1e-12)
        assert matrices["cka_debiased"][j, i] == pytest.approx(linear_cka(a, b, debiased=True), rel=1e-12)
        assert matrices["opd"][i, j] == pytest.approx(procrustes_distance(a, b), rel=1e-10)
    assert (np.diag(matrices["cka"]) == 1).all() and (np.diag(matrices["opd"]) == 0).all()


def test_bootstrap_intervals_are_seeded_and_cover_the_estimate():
    x, y = _features(n=300)
    features = [x, y]

    def statistic(rows):
        return similarity_matrices(features, rows)

    point = similarity_matrices(features)
    bounds = {"cka": (0.0, 1.0), "opd": (0.0, 2.0)}
    first = bootstrap_intervals(statistic, point, len(x), 50, seed=0, confidence=0.9, bounds=bounds)
    again = bootstrap_intervals(statistic, point, len(x), 50, seed=0, confidence=0.9, bounds=bounds)
    other = bootstrap_intervals(statistic, point, len(x), 50, seed=1, confidence=0.9, bounds=bounds)
    for name in ("cka", "cka_debiased", "opd"):
        low, high = first[name]
        assert (low == again[name][0]).all() and (high == again[name][1]).all()
        assert low[0, 1] < point[name][0, 1] < high[0, 1]
        assert low[0, 1] != other[name][0][0, 1]
    assert first["cka"][1][0, 0] == 1.0  # clipped to the range: CKA(X, X) = 1 in every resample
    assert (resample_rows(300, 3, 0) == resample_rows(300, 3, 0)).all()
    assert not (resample_rows(300, 3, 0) == resample_rows(300, 4, 0)).all()


def test_the_normal_interval_is_the_estimate_plus_minus_z_standard_errors():
    samples = np.array([[0.1], [0.3], [0.2], [0.4]])
    low, high = normal_interval(np.array([0.25]), samples, 0.95, (None, None))
    se = samples.std(ddof=1)
    assert low[0] == pytest.approx(0.25 - 1.959964 * se, rel=1e-6) and high[0] == pytest.approx(0.25 + 1.959964 * se)
    low, high = normal_interval(np.array([0.95]), samples, 0.95, (0.0, 1.0))
    assert high[0] == 1.0
