"""A function of CUDA tensors run as a CUDA graph: captured once per input signature, then one launch per call.

Where a step is bound by kernel launches on the host (small images on a large GPU), a fixed sequence of a hundred
small ops costs the host a hundred launches; replaying its CUDA graph costs one (``torch.cuda.CUDAGraph``).

Contract of the function ``fn(*tensors) -> tensor``: a fixed sequence of device ops that depends only on the
inputs' shapes, dtypes and strides, never on their values (no read back to the host, no copy of host data, no
Python state that changes between calls). Then a replay runs the same kernels on the new inputs as an eager call,
so the result is the eager one bit for bit.

:class:`GraphedFunction` on CUDA inputs: the first call with a new signature runs ``fn`` three times on a side
stream (warm-up, as graph capture requires: lazy initialisation, cuDNN's algorithm choice) and captures it into a
graph with static input buffers; every call copies its inputs into those buffers, replays the graph and returns a
clone of the static output, so a result stays valid after the next call. A capture that fails is logged with a
warning and leaves that signature eager. On any other device ``fn`` runs as is.
"""

import logging
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

#: Eager calls on a side stream before a capture.
WARMUP_CALLS = 3

Signature = tuple[tuple[tuple[int, ...], tuple[int, ...], torch.dtype, torch.device], ...]


def signature(tensors: tuple[torch.Tensor, ...]) -> Signature:
    """What a capture is valid for: each input's shape, strides, dtype and device."""
    return tuple((tuple(t.shape), t.stride(), t.dtype, t.device) for t in tensors)


class _Captured:
    """One captured graph: its static inputs, its static output and the graph."""

    def __init__(self, fn: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...]) -> None:
        self.inputs = tuple(torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=t.device) for t in inputs)
        for static, given in zip(self.inputs, inputs, strict=True):
            static.copy_(given)
        side = torch.cuda.Stream(inputs[0].device)
        side.wait_stream(torch.cuda.current_stream(inputs[0].device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_CALLS):
                fn(*self.inputs)
        torch.cuda.current_stream(inputs[0].device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = fn(*self.inputs)

    def __call__(self, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        for static, given in zip(self.inputs, inputs, strict=True):
            static.copy_(given)
        self.graph.replay()
        return self.output.clone()


class GraphedFunction:
    """``fn`` (module docstring's contract) replayed as a CUDA graph per input signature on CUDA, eager elsewhere
    and for a signature whose capture failed; ``name`` names it in the log."""

    def __init__(self, fn: Callable[..., torch.Tensor], name: str) -> None:
        self.fn, self.name = fn, name
        self.graphs: dict[Signature, _Captured | None] = {}

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        if inputs[0].device.type != "cuda":
            return self.fn(*inputs)
        key = signature(inputs)
        if key not in self.graphs:
            try:
                self.graphs[key] = _Captured(self.fn, inputs)
            except Exception as error:  # capture errors are of many kinds (a sync, an unsupported op, the driver)
                torch.cuda.synchronize(inputs[0].device)
                log.warning(
                    "CUDA graph of the %s failed; running it eagerly: %s", self.name, str(error).splitlines()[0]
                )
                self.graphs[key] = None
        captured = self.graphs[key]
        return self.fn(*inputs) if captured is None else captured(inputs)
