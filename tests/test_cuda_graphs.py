"""CUDA graphs of a function and of the views: bit for bit the eager result, one capture per input signature, an
eager fallback for a function that cannot be captured; nothing changes on the CPU."""

import logging

import pytest
import torch

from genssl.augment import BatchAugment, ViewSpec, view_specs
from genssl.cuda_graphs import GraphedFunction

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
SPECS = [*view_specs({"blur_p": [1.0, 0.1], "solarize_p": [0.0, 0.2]}), ViewSpec(hue=0.0, blur_p=0.3)]


def _images(n: int, size: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _affine(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (x * w).add_(1.0).relu_()


def test_graphed_function_and_views_are_eager_on_the_cpu():
    graphed = GraphedFunction(_affine, "affine")
    x, w = torch.randn(4, 3), torch.randn(3)
    assert torch.equal(graphed(x, w), _affine(x, w)) and graphed.graphs == {}
    plain, graphed_views = BatchAugment(SPECS, out_size=12), BatchAugment(SPECS, out_size=12, cuda_graph=True)
    images = _images(5, 16, 0)
    params = plain.draw(5, 16, 16, torch.Generator().manual_seed(1))
    for a, b in zip(graphed_views.apply(images, params), plain.apply(images, params), strict=True):
        assert torch.equal(a, b)


@needs_cuda
def test_cuda_graphed_function_replays_the_eager_result_per_signature():
    graphed = GraphedFunction(_affine, "affine")
    results = []
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        x, w = torch.randn(64, 32, generator=g).cuda(), torch.randn(32, generator=g).cuda()
        results.append((graphed(x, w), _affine(x, w)))
    for replayed, eager in results:  # earlier results stay valid after later replays
        assert torch.equal(replayed, eager)
    graphed(torch.randn(8, 32).cuda(), torch.randn(32).cuda())
    assert len(graphed.graphs) == 2 and all(g is not None for g in graphed.graphs.values())


@needs_cuda
def test_cuda_graph_of_a_function_that_reads_the_host_falls_back_to_eager(caplog):
    def reads_back(x: torch.Tensor) -> torch.Tensor:
        return x * float(x.sum())

    graphed = GraphedFunction(reads_back, "reader")
    x = torch.ones(4).cuda()
    with caplog.at_level(logging.WARNING):
        assert torch.equal(graphed(x), x * 4.0) and torch.equal(graphed(x * 2), x * 2 * 8.0)
    assert list(graphed.graphs.values()) == [None] and "CUDA graph of the reader failed" in caplog.text


@needs_cuda
def test_cuda_graphed_views_equal_the_eager_views_bit_for_bit():
    plain, graphed = BatchAugment(SPECS, out_size=24), BatchAugment(SPECS, out_size=24, cuda_graph=True)
    outputs = []
    for seed, n in ((0, 16), (1, 16), (2, 16), (3, 10)):  # a last batch of another size: a second capture
        images = _images(n, 32, seed).cuda()
        params = plain.draw(n, 32, 32, torch.Generator().manual_seed(seed)).cuda()
        outputs.append((graphed.apply(images, params), plain.apply(images, params)))
    for replayed, eager in outputs:
        for a, b in zip(replayed, eager, strict=True):
            assert torch.equal(a, b) and a.is_contiguous()
    captured = graphed._pass.graphs
    assert len(captured) == 2 and all(g is not None for g in captured.values())
