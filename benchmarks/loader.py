"""SSL loader throughput with generative augmentation (p = 0.5) vs standard augmentation only, one run.

Both read the same raw store of N random images (``--size`` px) through ``genssl.train.data.training_loader``
(the pretraining loader: a seeded permutation, one store read per batch); the generative loader is
``GenerativeBatches`` over a variant store of K variants per image in the real format, drawing per (epoch,
image, view) which views use a variant and reading those. Each batch then goes through the method's two
standard views (``BatchAugment``, SimCLR's views at the schema defaults) as the training step does. Reported:
images/s of the loader alone and of loader + views, in alternating rounds (ABBA) so machine noise hits both;
the target is generative / standard >= 0.9 for loader + views.

    python benchmarks/loader.py [--n 20000] [--size 32] [--k 10] [--batch 256] [--batches 20] [--rounds 4]
        [--workers 0] [--p 0.5]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from genssl.augment import BatchAugment, view_specs
from genssl.config import validate_config
from genssl.generate.variant_store import VariantStore, gather, shard_dir, write_shard
from genssl.store import ImageStore, StoreWriter
from genssl.train.data import StoreBatches, training_loader
from genssl.train.generative import GenerativeBatches, VariantChoice

TARGET = 0.9


def _random_store(path: Path, n: int, size: int, rng: np.random.Generator) -> ImageStore:
    path.mkdir()
    writer = StoreWriter(path, "raw", (size, size, 3))
    for _ in range(n):
        writer.add(rng.integers(0, 256, (size, size, 3), dtype=np.uint8).tobytes())
    writer.close(np.zeros(n, np.int64), ["0"], {"train": np.arange(n)}, {"source": "benchmark"})
    return ImageStore(path)


def _variant_store(path: Path, store: ImageStore, k: int, rng: np.random.Generator) -> VariantStore:
    sources = store.split("train")
    info = {"shard": 0, "k": k, "fingerprint": {}}
    chunks = (
        (part, store.labels[part], rng.integers(0, 256, (len(part), k, *store.shape), dtype=np.uint8))
        for part in np.array_split(sources, max(1, len(sources) // 1000))
    )
    write_shard(shard_dir(f"{path}.shards", 0), info, chunks, store.shape, "raw")
    gather([shard_dir(f"{path}.shards", 0)], path, store.classes, {"k": k, "generator": "bench", "fingerprint": {}}, {})
    return VariantStore(path)


def _rate(loader, sampler, augment, batches: int, epoch: int, views: bool) -> float:
    sampler.set_epoch(epoch)
    rng = torch.Generator().manual_seed(epoch)
    started, images = time.perf_counter(), 0
    for step, (batch, _) in enumerate(loader):
        if views:
            augment(batch, rng)
        images += batch.shape[-4]
        if step + 1 == batches:
            break
    return images / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="training images")
    parser.add_argument("--size", type=int, default=32, help="image size in px")
    parser.add_argument("--k", type=int, default=10, help="variants per image")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=20, help="batches per round")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds (ABBA)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument("--p", type=float, default=0.5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    views = view_specs(
        validate_config({"datasets": {"digits": {"source": "digits"}}, "methods": {"simclr": {}}})["methods"]["simclr"][
            "views"
        ]
    )
    augment = BatchAugment(views, out_size=args.size)
    with tempfile.TemporaryDirectory() as tmp:
        store = _random_store(Path(tmp) / "data", args.n, args.size, rng)
        variants = _variant_store(Path(tmp) / "variants", store, args.k, rng)
        train = store.split("train")
        loaders = {
            "standard": training_loader(StoreBatches(store, train), args.batch, 0, 0, 1, args.workers, False),
            "generative": training_loader(
                GenerativeBatches(store, train, variants, VariantChoice(args.k, args.p, "both", 2, seed=0)),
                args.batch,
                0,
                0,
                1,
                args.workers,
                False,
            ),
        }
        print(
            f"N = {args.n:,} images of {args.size} px, K = {args.k}, batch {args.batch}, p = {args.p} (both views), "
            f"{args.workers} workers, {torch.get_num_threads()} torch threads; {args.rounds} ABBA rounds of "
            f"{args.batches} batches"
        )
        print(f"{'measure':<16} {'standard img/s':>15} {'generative img/s':>17} {'ratio':>6}  target")
        for with_views in (False, True):
            rates: dict[str, list[float]] = {"standard": [], "generative": []}
            order = ["standard", "generative"]
            for r in range(args.rounds):
                for name in order if r % 2 == 0 else order[::-1]:
                    rates[name].append(_rate(*loaders[name], augment, args.batches, r, with_views))
            standard, generative = (statistics.median(rates[n]) for n in order)
            ratio = generative / standard
            label = "loader + views" if with_views else "loader only"
            verdict = ("PASS" if ratio >= TARGET else "FAIL") if with_views else "(info)"
            print(f"{label:<16} {standard:>15.0f} {generative:>17.0f} {ratio:>6.2f}  {verdict}")
        print(f"target: generative / standard >= {TARGET} for loader + views (what a training step waits for)")


if __name__ == "__main__":
    main()
