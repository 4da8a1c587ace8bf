"""Random-access read throughput: image store vs the same images as individual PNG files.

Prepares the `shapes` dataset (N images at SIZE px) into a raw (memory-mapped) store and PNG- and JPEG-encoded
stores (JPEG is what `encoding: auto` picks above 128 px), exports the same images as one PNG file each, then
reads READS random indices (seeded, the same sequence for every layout) into uint8 arrays and prints images/s
for each layout and the ratio to the PNG files. Each layout is read once untimed first, so all are measured
with a warm page cache (same machine, same run).

    python benchmarks/store_read.py [--n 2000] [--size 64] [--reads 5000]
"""

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from genssl.config import validate_config
from genssl.data.prepare import prepare_dataset
from genssl.store import ImageStore


def _rate(read: Callable[[int], np.ndarray], indices: np.ndarray) -> float:
    for i in indices:
        read(i)
    start = time.perf_counter()
    for i in indices:
        read(i)
    elapsed = time.perf_counter() - start
    return len(indices) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="images in the dataset (a multiple of 10)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--reads", type=int, default=5000, help="random reads per layout")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        stores = {}
        for encoding in ("raw", "png", "jpeg"):
            config = validate_config(
                {
                    "datasets": {
                        "shapes": {
                            "source": "shapes",
                            "image_size": args.size,
                            "n_per_class": args.n // 10,
                            "encoding": encoding,
                        }
                    }
                }
            )
            prepare_dataset(config, "shapes", tmp / encoding, workers=2)
            stores[encoding] = ImageStore(tmp / encoding)
        files = tmp / "files"
        files.mkdir()
        raw = stores["raw"]
        for i in range(len(raw)):
            Image.fromarray(raw[i]).save(files / f"{i:06d}.png")

        def read_file(i: int) -> np.ndarray:
            with Image.open(files / f"{i:06d}.png") as image:
                return np.asarray(image.convert("RGB"))

        indices = np.random.default_rng(0).integers(0, len(raw), size=args.reads)
        assert all(np.array_equal(raw[i], read_file(i)) for i in indices[:50])
        rates = {
            "store, raw (memory-mapped)": _rate(lambda i: np.array(raw[i]), indices),
            "store, png-encoded shards": _rate(stores["png"].__getitem__, indices),
            "store, jpeg-encoded shards": _rate(stores["jpeg"].__getitem__, indices),
            "individual PNG files": _rate(read_file, indices),
        }
    baseline = rates["individual PNG files"]
    print(f"random access, {args.reads} reads of {len(raw)} images at {args.size} px (warm page cache)")
    print(f"{'layout':<30} {'images/s':>12} {'vs PNG files':>14}")
    for name, rate in rates.items():
        print(f"{name:<30} {rate:>12,.0f} {rate / baseline:>13.1f}x")


if __name__ == "__main__":
    main()
