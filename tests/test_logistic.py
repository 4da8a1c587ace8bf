"""The two solvers of the logistic-regression probe minimise the same objective to the same solution."""

import numpy as np
import pytest
import torch

from genssl.evaluate.logistic import LinearClassifier, Standardiser, fit_sklearn, fit_torch, objective

CPU = torch.device("cpu")


def _data(classes, n=600, d=20, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    features = rng.normal(size=(classes, d))[labels] * 0.7 + rng.normal(size=(n, d))
    return Standardiser.fit(features)(features), labels


@pytest.mark.parametrize("classes", [2, 5])
@pytest.mark.parametrize("c", [0.01, 1.0, 100.0])
def test_sklearn_and_torch_reach_the_same_minimum(classes, c):
    x, y = _data(classes)
    a = fit_sklearn(x, y, classes, c, 2000, 1e-8)
    b = fit_torch(x, y, classes, c, 2000, 1e-8, CPU)
    assert objective(a, x, y, c) == pytest.approx(objective(b, x, y, c), rel=1e-7)
    # Scores are defined up to a constant per example (softmax); compare the centred scores.
    sa, sb = a.scores(x), b.scores(x)
    np.testing.assert_allclose(sa - sa.mean(1, keepdims=True), sb - sb.mean(1, keepdims=True), atol=1e-3)
    assert (sa.argmax(1) == sb.argmax(1)).mean() == 1.0


def test_the_objective_is_minimal_at_the_solution():
    x, y = _data(4)
    solution = fit_torch(x, y, 4, 0.1, 2000, 1e-9, CPU)
    best = objective(solution, x, y, 0.1)
    rng = np.random.default_rng(1)
    for _ in range(5):
        nudged = LinearClassifier(solution.weight + 1e-2 * rng.normal(size=solution.weight.shape), solution.bias)
        assert objective(nudged, x, y, 0.1) > best


def test_stronger_regularisation_shrinks_the_weights():
    x, y = _data(3)
    norms = [np.linalg.norm(fit_sklearn(x, y, 3, c, 1000, 1e-6).weight) for c in (0.001, 0.1, 10.0)]
    assert norms[0] < norms[1] < norms[2]


def test_a_warm_start_reaches_the_same_solution():
    x, y = _data(5)
    cold = fit_torch(x, y, 5, 1.0, 2000, 1e-9, CPU)
    start = fit_torch(x, y, 5, 0.01, 2000, 1e-9, CPU)
    warm = fit_torch(x, y, 5, 1.0, 2000, 1e-9, CPU, start)
    assert objective(warm, x, y, 1.0) == pytest.approx(objective(cold, x, y, 1.0), rel=1e-9)
    warm_sklearn = fit_sklearn(x, y, 5, 1.0, 2000, 1e-9, start)
    assert objective(warm_sklearn, x, y, 1.0) == pytest.approx(objective(cold, x, y, 1.0), rel=1e-7)


def test_standardisation_uses_the_fit_set_and_leaves_constant_features_at_zero():
    features = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    scale = Standardiser.fit(features)
    out = scale(features)
    np.testing.assert_allclose(out[:, 0], [-1.224744871, 0.0, 1.224744871])
    assert (out[:, 1] == 0).all()
