"""The weighted kNN classifier against a brute-force computation."""

import numpy as np
import pytest
import torch

from genssl.evaluate import knn as knn_module
from genssl.evaluate.knn import knn_accuracy, knn_scores, topk_accuracy


def _brute_force_scores(bank, labels, queries, k, temperature, classes):
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = np.zeros((len(queries), classes))
    for q, query in enumerate(queries):
        similarity = bank @ query
        for j in np.argsort(-similarity)[: min(k, len(bank))]:
            scores[q, labels[j]] += np.exp(similarity[j] / temperature)
    return scores


@pytest.mark.parametrize("k", [1, 5, 40, 500])
def test_knn_scores_equal_a_brute_force_computation(k, monkeypatch):
    monkeypatch.setattr(knn_module, "BLOCK_ENTRIES", 7 * 300)  # several query blocks
    rng = np.random.default_rng(0)
    bank, queries = rng.normal(size=(300, 12)), rng.normal(size=(50, 12))
    labels = rng.integers(0, 6, 300)
    expected = _brute_force_scores(bank, labels, queries, k, 0.1, 6)
    scores = knn_scores(torch.from_numpy(bank), torch.from_numpy(labels), torch.from_numpy(queries), k, 0.1, 6)
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-4)


def test_knn_accuracy_counts_top1_and_top5_hits():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(8, 16)) * 3
    labels = rng.integers(0, 8, 400)
    bank = centres[labels] + rng.normal(size=(400, 16))
    query_labels = rng.integers(0, 8, 100)
    queries = centres[query_labels] + rng.normal(size=(100, 16))
    result = knn_accuracy(bank, labels, queries, query_labels, [20, 200], 0.07, 8)
    scores = _brute_force_scores(bank, labels, queries, 20, 0.07, 8)
    top1 = (scores.argmax(1) == query_labels).mean()
    top5 = np.mean([query_labels[i] in np.argsort(-scores[i])[:5] for i in range(100)])
    assert result["20"] == {"top1": pytest.approx(top1), "top5": pytest.approx(top5)}
    assert result["20"]["top1"] > 0.9  # separable clusters
    assert set(result) == {"20", "200"}


def test_topk_accuracy_is_an_exact_fraction_and_caps_k_at_the_class_count():
    scores = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    labels = torch.tensor([1, 1, 1])
    assert topk_accuracy(scores, labels) == {1: 2 / 3, 5: 1.0}
