"""S-DIET's own cost per step on the host: its head rows (read, catch-up, copy to the device, AdamW step, write-back).

S-DIET keeps its N x m head on disk; a step reads the batch's B rows and their moments, catches them up over the
steps they missed (:class:`genssl.optim.multistep_adamw.RowAdamW`), computes the batch cross-entropy against them,
updates them and queues their write-back. That is all this benchmark runs: the backbone is one m x m linear layer
on ready m-dimensional features (no projector), and the backbone's compute is stood in for by ``--compute-ms`` of
work before each step's forward (matrix products on the main thread on the CPU; ``torch.cuda._sleep``, a kernel that
keeps the GPU busy, on CUDA). The figure is the main thread's time per step in S-DIET's forward + backward +
``update_external``, without the stood-in compute, side by side:

- ``ahead``: the next batch named before each step (:meth:`genssl.methods.sdiet.SDIET.prefetch_external`), as the
  trainer does;
- ``plain``: no read-ahead (every read and catch-up on the critical path).

On CUDA a step that synchronises the host with the device (e.g. a copy from pageable host memory) waits for the
stood-in compute, and its figure grows by about ``--compute-ms``. ``--threads`` (default 1) leaves the other cores
to the store's reader and writer threads, as ``genssl pretrain --threads`` does. The steps are timed after a
warm-up epoch, so rows catch up gaps of a whole epoch (``N / B`` steps), as in a real run.

    python benchmarks/sdiet_rows.py [--n 100000] [--batch 256] [--dim 256] [--steps 100] [--device cpu]
"""

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from genssl.config import validate_config
from genssl.methods import RunContext, build_method


def _batches(n: int, batch: int, steps: int, seed: int = 0) -> list[np.ndarray]:
    """Batches of an epoch-by-epoch permutation (distinct rows within a batch), ``steps`` of them."""
    rng = np.random.default_rng(seed)
    per_epoch = n // batch
    out: list[np.ndarray] = []
    while len(out) < steps:
        order = rng.permutation(n)
        out += [order[i * batch : (i + 1) * batch] for i in range(per_epoch)]
    return out[:steps]


def _cycles_per_ms() -> float:
    """GPU clock cycles per millisecond, timed with CUDA events around a ``torch.cuda._sleep`` kernel."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    cycles = 10_000_000
    torch.cuda._sleep(cycles)  # warm-up
    start.record()
    torch.cuda._sleep(cycles)
    end.record()
    end.synchronize()
    return cycles / start.elapsed_time(end)


def _compute(device: torch.device, ms: float, cycles_per_ms: float, work: torch.Tensor) -> None:
    """The backbone's compute, stood in for: ``ms`` of matrix products on the main thread (CPU; torch releases the
    GIL in them, as in a backbone's ops), or a kernel that keeps the GPU busy ``ms`` (CUDA)."""
    if device.type == "cuda":
        torch.cuda._sleep(int(ms * cycles_per_ms))
        return
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        work @ work


def run(args: argparse.Namespace, ahead: bool) -> float:
    """Median main-thread ms per timed step of S-DIET's own work."""
    device = torch.device(args.device)
    config = validate_config(
        {
            "datasets": {"d": {"source": "digits"}},
            "pretrain": {"dataset": "d", "batch_size": args.batch},
            "methods": {"sdiet": {"projector": False}},
        }
    )["methods"]["sdiet"]
    warm = args.n // args.batch
    total = warm + args.steps
    out = Path(tempfile.mkdtemp(prefix="sdiet-rows-"))
    try:
        context = RunContext(args.n, total + 1, lambda t: 1e-3, out, 0)
        torch.manual_seed(0)
        backbone = torch.nn.Linear(args.dim, args.dim, bias=False)  # a parameter on the device, as in a run
        method = build_method("sdiet", backbone, args.dim, config, context).to(device).train()
        method.open_external(None, 0)
        features = torch.randn(args.batch, args.dim, device=device)
        batches = _batches(args.n, args.batch, total + 1)
        cycles_per_ms = _cycles_per_ms() if device.type == "cuda" else 0.0
        work = torch.randn(128, 128)
        times = []
        for t in range(1, total + 1):
            if ahead:
                method.prefetch_external(torch.from_numpy(batches[t]))
            _compute(device, args.compute_ms, cycles_per_ms, work)
            start = time.perf_counter()
            method([features], torch.from_numpy(batches[t - 1])).backward()
            method.update_external(t, 1.0, skipped=False)
            times.append(time.perf_counter() - start)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        method.close_external(False)
        return 1000 * statistics.median(times[warm:])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="training images N (rows of the head)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dim", type=int, default=256, help="head dimension m")
    parser.add_argument("--steps", type=int, default=100, help="timed steps, after a warm-up epoch")
    parser.add_argument("--compute-ms", type=float, default=20.0, help="the backbone's compute per step, stood in")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"S-DIET rows, N = {args.n}, B = {args.batch}, m = {args.dim}, {args.device}, "
        f"backbone compute stood in by {args.compute_ms:g} ms: main-thread ms per step"
    )
    for name, ahead in (("ahead", True), ("plain", False)):
        print(f"  {name:6s} {run(args, ahead):7.2f}")


if __name__ == "__main__":
    main()
