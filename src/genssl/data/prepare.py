"""The dataset-preparation stage: source -> resize policy -> store with labels, classes, splits and manifest.

``prepare_dataset`` streams the source through the resize policy and the encoder (in worker processes when
``workers > 1``, results kept in source order) into a :class:`~genssl.store.StoreWriter` inside a temporary
sibling of the output directory, which replaces the output only when everything succeeded. Memory for image
data does not depend on the dataset size; per-image metadata (labels, file names) is a few bytes per image.
"""

import logging
import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import PIL
from PIL import Image

from genssl import __version__
from genssl.atomic import atomic_directory
from genssl.config import FIXED_SHAPE_RESIZE, dataset_config
from genssl.data.resize import fit_image
from genssl.data.sources import Source, build_source
from genssl.data.splits import make_splits
from genssl.errors import CorruptImageError, GensslError
from genssl.progress import progress
from genssl.store import StoreWriter
from genssl.store.codec import encode_image

log = logging.getLogger(__name__)

#: Exceptions that mean "this image cannot be decoded".
DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def resolve_encoding(config: dict[str, Any]) -> str:
    """The store encoding of a dataset: ``auto`` is raw for fixed shapes up to 128 px, jpeg otherwise."""
    if config["encoding"] != "auto":
        return config["encoding"]
    fixed = config["resize"] in FIXED_SHAPE_RESIZE
    return "raw" if fixed and config["image_size"] <= 128 else "jpeg"


class _Encoder:
    """Load, resize and encode one item of a source (run in the main process or in a worker)."""

    def __init__(self, source: Source, encoding: str) -> None:
        self.source = source
        self.encoding = encoding
        cfg = source.config
        self.size, self.policy, self.interpolation, self.quality = (
            cfg["image_size"],
            cfg["resize"],
            cfg["interpolation"],
            cfg["quality"],
        )

    def __call__(self, index: int) -> tuple[int, bytes | None, int, str | None]:
        try:
            image, label = self.source.load(index)
            array = fit_image(image, self.size, self.policy, self.interpolation)
        except DECODE_ERRORS as err:
            return index, None, -1, f"{type(err).__name__}: {err}"
        return index, encode_image(array, self.encoding, self.quality), label, None


_worker_encoder: _Encoder | None = None


def _init_worker(encoder: _Encoder) -> None:
    global _worker_encoder
    _worker_encoder = encoder


def _encode_in_worker(index: int) -> tuple[int, bytes | None, int, str | None]:
    assert _worker_encoder is not None
    return _worker_encoder(index)


def _encoded_items(encoder: _Encoder, n: int, workers: int) -> Iterator[tuple[int, bytes | None, int, str | None]]:
    if workers <= 1:
        yield from map(encoder, range(n))
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_init_worker, initargs=(encoder,)) as pool:
        yield from pool.imap(_encode_in_worker, range(n), chunksize=32)


def prepare_dataset(config: dict[str, Any], name: str, out: str | Path, workers: int = 1) -> dict[str, Any]:
    """Prepare dataset ``name`` of the validated ``config`` into the store directory ``out``; return its manifest."""
    cfg = dataset_config(config, name)
    seed = config["seed"]
    started = time.perf_counter()
    source = build_source(name, cfg, seed)
    encoding = resolve_encoding(cfg)
    shape = (cfg["image_size"], cfg["image_size"], 3) if cfg["resize"] in FIXED_SHAPE_RESIZE else None
    n_source = len(source)
    log.info("preparing %s: %d images from source %s, %s store", name, n_source, cfg["source"], encoding)

    with atomic_directory(out) as tmp:
        writer = StoreWriter(tmp, encoding, shape, max_shard_bytes=int(cfg["max_shard_mb"] * 2**20))
        labels: list[int] = []
        kept: list[int] = []
        skipped: list[dict[str, str]] = []
        items = _encoded_items(_Encoder(source, encoding), n_source, workers)
        for index, payload, label, error in progress(items, total=n_source, desc=f"prepare {name}", unit="img"):
            if error is not None:
                item = source.item_name(index)
                if not cfg.get("skip_corrupt", False):
                    raise CorruptImageError(
                        f"dataset '{name}': cannot read image {item}: {error}. Fix or remove the file, or set "
                        f"datasets.{name}.skip_corrupt: true to skip unreadable images (listed in the manifest)"
                    )
                log.warning("skipping unreadable image %s: %s", item, error)
                skipped.append({"item": item, "error": error})
                continue
            assert payload is not None
            writer.add(payload)
            labels.append(label)
            kept.append(index)
        if not kept:
            raise GensslError(f"dataset '{name}': no readable images in the source")

        store_index = np.full(n_source, -1, dtype=np.int64)
        store_index[np.asarray(kept)] = np.arange(len(kept))
        official = source.official_splits()
        if official is not None:
            official = {part: store_index[idx][store_index[idx] >= 0] for part, idx in official.items()}
        label_array = np.asarray(labels, dtype=np.int64)
        splits, split_policy = make_splits(label_array, official, cfg["val_fraction"], cfg["test_fraction"], seed, name)
        provenance = {
            "dataset": name,
            "source": cfg["source"],
            "config": cfg,
            "seed": seed,
            "split_policy": split_policy,
            "genssl_version": __version__,
            "pillow_version": PIL.__version__,
        }
        manifest = writer.close(label_array, source.classes, splits, provenance, skipped)

    total_mb = sum(f["bytes"] for f in manifest["files"].values()) / 2**20
    log.info(
        "prepared %s: %d images (%s), %d shard(s), %.1f MiB, %d skipped, in %.1f s",
        name,
        manifest["n"],
        ", ".join(f"{k} {v['n']}" for k, v in manifest["splits"].items()),
        len(manifest["shards"]),
        total_mb,
        len(skipped),
        time.perf_counter() - started,
    )
    return manifest
