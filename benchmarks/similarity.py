"""CKA at scale: time and peak memory of minibatch CKA (Nguyen et al. 2021) for N = 100,000 examples of d = 2048
features, next to the naive Gram-matrix CKA at the largest N it can hold, in one run.

Three computations of linear CKA between two representations X, Y (N x d; Y is a rescaled column permutation of
X plus noise, so CKA is neither 0 nor 1):

- ``naive Gram``: K = X X^T and L = Y Y^T (float32, N x N each), double-centred in place, then
  <K, L> / (||K|| ||L||): O(N^2) memory, so it runs only at the largest N of 5k, 10k, 20k, 40k, ... whose two
  Gram matrices fit in ``--memory-gib``;
- ``exact`` (:func:`genssl.evaluate.similarity.cka.linear_cka`, what ``genssl similarity`` uses): the feature-space
  form ||Y_c^T X_c||^2 / (||X_c^T X_c|| ||Y_c^T Y_c||) in float64 on the whole set in memory: O(N d + d^2);
- ``minibatch`` (:class:`genssl.evaluate.similarity.cka.MinibatchCKA`): batches of ``--batch`` examples generated
  and consumed one at a time (the set is never in memory, as for features larger than memory): O(m d + m^2).

Every measurement runs in a fresh process; peak memory is its maximum resident set size above the size after
imports (data included). The minibatch value estimates the debiased CKA, the others the biased one.

    python benchmarks/similarity.py [--n 100000] [--dim 2048] [--batch 1024] [--memory-gib 8] [--threads T]
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from genssl.evaluate.similarity.cka import MinibatchCKA, linear_cka

CHUNK = 1024


def _chunk(start: int, rows: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``start .. start + rows`` of X and Y, the same for any chunking (seeded per CHUNK-row block)."""
    xs, ys = [], []
    permutation = torch.randperm(dim, generator=torch.Generator().manual_seed(1))
    scale = torch.linspace(0.5, 2.0, dim)
    for block in range(start // CHUNK, -(-(start + rows) // CHUNK)):
        generator = torch.Generator().manual_seed(1000 + block)
        x = torch.randn((CHUNK, dim), generator=generator)
        y = x[:, permutation] * scale + 1.5 * torch.randn((CHUNK, dim), generator=generator)
        xs.append(x)
        ys.append(y)
    offset = start - (start // CHUNK) * CHUNK
    return torch.cat(xs)[offset : offset + rows], torch.cat(ys)[offset : offset + rows]


def _naive(n: int, dim: int) -> float:
    x, y = _chunk(0, n, dim)
    grams = []
    for features in (x, y):
        gram = features @ features.T
        gram -= gram.mean(dim=0, keepdim=True)
        gram -= gram.mean(dim=1, keepdim=True)
        grams.append(gram)
    del x, y
    k, l_ = grams

    def inner(a: torch.Tensor, b: torch.Tensor) -> float:  # <A, B> by row blocks: no N x N temporary
        return sum(float((a[i : i + CHUNK] * b[i : i + CHUNK]).sum(dtype=torch.float64)) for i in range(0, n, CHUNK))

    return inner(k, l_) / (inner(k, k) * inner(l_, l_)) ** 0.5


def _exact(n: int, dim: int) -> float:
    return linear_cka(*_chunk(0, n, dim))


def _minibatch(n: int, dim: int, batch: int) -> float:
    accumulator = MinibatchCKA()
    for start in range(0, n - batch + 1, batch):
        accumulator.update(*_chunk(start, batch, dim))
    return accumulator.value()


def worker(kind: str, n: int, dim: int, batch: int, threads: int) -> None:
    torch.set_num_threads(threads)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    value = {"naive": lambda: _naive(n, dim), "exact": lambda: _exact(n, dim)}.get(
        kind, lambda: _minibatch(n, dim, batch)
    )()
    seconds = time.perf_counter() - started
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    print(json.dumps({"seconds": seconds, "peak_mib": peak, "cka": value}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=1024, help="minibatch size m")
    parser.add_argument("--memory-gib", type=float, default=8.0, help="memory the naive Gram matrices may take")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), args.dim, args.batch, args.threads)
        return
    largest = 5000
    while 2 * (2 * largest) ** 2 * 4 <= args.memory_gib * 2**30:
        largest *= 2
    runs = [("naive", largest), ("exact", largest), ("minibatch", largest), ("exact", args.n), ("minibatch", args.n)]
    print(
        f"d = {args.dim}, minibatch m = {args.batch}, {args.threads} threads; naive Gram at N = {largest:,}, the "
        f"largest whose two float32 N x N matrices fit in {args.memory_gib:g} GiB; torch {torch.__version__}"
    )
    print(f"{'method':<12} {'N':>8} {'seconds':>9} {'peak MiB':>9} {'CKA':>9}")
    for kind, n in runs:
        command = [sys.executable, __file__, "--worker", kind, str(n), "--dim", str(args.dim)]
        command += ["--batch", str(args.batch), "--threads", str(args.threads)]
        result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        print(f"{kind:<12} {n:>8,} {result['seconds']:>9.1f} {result['peak_mib']:>9.0f} {result['cka']:>9.4f}")


if __name__ == "__main__":
    main()
