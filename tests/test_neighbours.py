"""The IC-GAN neighbourhoods shared by the trained generators: exact cosine k-NN and the training pairs drawn
from them."""

import numpy as np
import torch

from genssl.generate.neighbours import draw_pairs, nearest_neighbours


def test_neighbours_equal_brute_force():
    features = torch.from_numpy(np.random.default_rng(0).normal(size=(97, 8)))
    unit = features.numpy() / np.linalg.norm(features.numpy(), axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, np.inf)
    expected = np.argsort(-similarity, axis=1, kind="stable")[:, :5]
    for block in (None, 1, 10, 97):
        got = nearest_neighbours(features, 5, block=block)
        assert got.dtype == torch.int64 and got.shape == (97, 5)
        np.testing.assert_array_equal(got.numpy(), expected)


def test_neighbours_put_each_point_first_even_among_duplicates():
    features = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    np.testing.assert_array_equal(nearest_neighbours(features, 1).numpy(), [[0], [1], [2], [3]])
    assert nearest_neighbours(features, 3)[:, 0].tolist() == [0, 1, 2, 3]


def test_training_targets_are_neighbours_and_the_image_itself_for_k_1():
    features = torch.from_numpy(np.random.default_rng(1).normal(size=(50, 4)))
    draws = torch.Generator().manual_seed(0)
    sources, targets = draw_pairs(nearest_neighbours(features, 1), 200, draws)
    assert torch.equal(sources, targets)
    neighbours = nearest_neighbours(features, 4)
    sources, targets = draw_pairs(neighbours, 2000, draws)
    assert all(int(t) in neighbours[s].tolist() for s, t in zip(sources, targets, strict=True))
    assert not torch.equal(sources, targets)
    assert set((targets[sources == 7]).tolist()) == set(neighbours[7].tolist())
