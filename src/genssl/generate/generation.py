"""``genssl generate``: K variants of every training image into a sharded, resumable variant store.

:func:`generate_shard` writes one shard (a Snakemake job of rule ``generate_shard``); :func:`gather_store`
gathers the shards into ``results/augment/{dataset}/{generator}/`` with its manifest and ``preview.png``
(rule ``gather_augmentations``); :func:`generate` does both for every shard not yet finished, which is how a
killed run resumes without Snakemake. Shards live in ``{out}.shards/`` beside the store.
"""

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from genssl import __version__
from genssl.config import generator_config
from genssl.errors import ConfigError, GensslError
from genssl.generate.estimate import device_name, projection, timed_call
from genssl.generate.preview import COLUMNS, ROWS, save_preview
from genssl.generate.registry import TRAINED, load_generator
from genssl.generate.variant_store import (
    VariantStore,
    fingerprint,
    gather,
    shard_dir,
    shard_is_complete,
    shard_range,
    write_shard,
)
from genssl.progress import progress_bar
from genssl.store import ImageStore
from genssl.store.manifest import sha256_file

log = logging.getLogger(__name__)


def weights_digest(weights_dir: str | os.PathLike[str] | None) -> str | None:
    """SHA-256 over the (relative path, SHA-256) of every file of a trained generator's directory."""
    if weights_dir is None:
        return None
    root = Path(weights_dir)
    if not root.is_dir():
        raise GensslError(f"{root}: no trained generator here; train it with `genssl train-generator`")
    lines = [f"{p.relative_to(root).as_posix()} {sha256_file(p)}" for p in sorted(root.rglob("*")) if p.is_file()]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def shards_root(out_dir: str | os.PathLike[str]) -> Path:
    """Where the shards of the variant store ``out_dir`` are written: ``{out_dir}.shards``."""
    out = Path(out_dir)
    return out.with_name(out.name + ".shards")


class GenerationPlan:
    """What every shard of one generation agrees on: sources, settings, fingerprint."""

    def __init__(
        self, config: dict[str, Any], name: str, data_dir: str | os.PathLike[str], weights_dir: Path | None
    ) -> None:
        self.name, self.seed = name, config["seed"]
        self.gen = generator_config(config, name)
        if self.gen["backend"] in TRAINED and weights_dir is None:
            raise ConfigError(f"generators.{name}: backend {self.gen['backend']} needs its trained weights (--weights)")
        self.weights_dir = weights_dir
        self.data = ImageStore(data_dir)
        if self.data.shape is None:
            raise ConfigError(
                f"{data_dir}: generation needs a store of one image shape (resize center_crop or stretch)"
            )
        self.size = self.data.shape[0]
        self.sources = self.data.split("train")
        self.fingerprint = fingerprint(data_dir, name, self.gen, self.seed, weights_digest(weights_dir))

    @property
    def encoding(self) -> str:
        """The store's image encoding: ``encoding``, where ``auto`` is raw up to 64 px and JPEG above."""
        requested = self.gen["encoding"]
        return ("raw" if self.size <= 64 else "jpeg") if requested == "auto" else requested

    @property
    def per_call(self) -> int:
        """Images per ``generate()`` call: the batches are aligned on multiples of this over the train split."""
        return max(1, self.gen["batch_size"] // self.gen["variants"])

    def shard_info(self, shard: int) -> dict[str, Any]:
        """Shard ``shard``: a whole number of calls, so every batch holds the same samples for any shard count
        (batched kernels may round differently for other batch compositions) and a resumed run redoes whole
        shards of exactly those batches."""
        calls = -(-len(self.sources) // self.per_call)
        first, last = shard_range(calls, shard, self.gen["shards"])
        start, stop = first * self.per_call, min(last * self.per_call, len(self.sources))
        return {
            "shard": shard,
            "shards": self.gen["shards"],
            "start": start,
            "stop": stop,
            "k": self.gen["variants"],
            "fingerprint": self.fingerprint,
        }


def _batches(plan: GenerationPlan, info: dict[str, Any]) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The shard's ``generate()`` calls; the second (or only) call, timed with the encoding of its variants, gives
    the log's projection of the whole store (:mod:`genssl.generate.estimate`)."""
    generator = load_generator(plan.name, plan.gen, plan.weights_dir)
    per_call = plan.per_call
    positions = range(info["start"], info["stop"], per_call)
    started, done, k = time.perf_counter(), 0, plan.gen["variants"]
    samples = (info["stop"] - info["start"]) * k
    with progress_bar(samples, desc=f"{plan.name} shard {info['shard']}", unit="img") as bar:  # generated images/s
        for call, start in enumerate(positions):
            indices = plan.sources[start : min(start + per_call, info["stop"])]
            if call == 1 or len(positions) == 1:
                variants, seconds, stored = timed_call(generator, plan, indices)
                timed = projection(plan, seconds, variants.shape[0] * k, stored, device_name(generator))
                log.info("shard %d: projected from call %d: %s", info["shard"], call, timed.summary())
            else:
                variants = generator.generate(plan.data.get_batch(indices), indices, plan.seed, plan.size)
            done += len(indices)
            bar.update(len(indices) * k)
            yield indices, plan.data.labels[indices], variants
    seconds = time.perf_counter() - started
    log.info(
        "shard %d: %d images x %d variants in %.1f s (%.2f images/s)",
        info["shard"],
        done,
        plan.gen["variants"],
        seconds,
        done * plan.gen["variants"] / max(seconds, 1e-9),
    )


def generate_shard(
    config: dict[str, Any],
    name: str,
    shard: int,
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    weights_dir: str | os.PathLike[str] | None = None,
    plan: GenerationPlan | None = None,
) -> Path:
    """Write shard ``shard`` of the variant store ``out_dir`` (skipped when already finished); return its directory."""
    plan = plan or GenerationPlan(config, name, data_dir, None if weights_dir is None else Path(weights_dir))
    info = plan.shard_info(shard)
    directory = shard_dir(shards_root(out_dir), shard)
    if shard_is_complete(directory, info):
        log.info("shard %d of %s is already complete: %s", shard, name, directory)
        return directory
    write_shard(directory, info, _batches(plan, info), (plan.size, plan.size, 3), plan.encoding)
    return directory


def gather_store(
    config: dict[str, Any],
    name: str,
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    weights_dir: str | os.PathLike[str] | None = None,
    plan: GenerationPlan | None = None,
) -> dict[str, Any]:
    """Gather the finished shards into the variant store ``out_dir`` with ``preview.png``; return its manifest."""
    plan = plan or GenerationPlan(config, name, data_dir, None if weights_dir is None else Path(weights_dir))
    root = shards_root(out_dir)
    directories = []
    for shard in range(plan.gen["shards"]):
        directory = shard_dir(root, shard)
        if not shard_is_complete(directory, plan.shard_info(shard)):
            raise GensslError(f"{directory}: shard {shard} of {name} is missing or was made with other settings")
        directories.append(directory)

    def add_preview(store_dir: Path) -> None:
        store = VariantStore(store_dir)
        rows = np.linspace(0, len(store.sources) - 1, min(ROWS, len(store.sources))).round().astype(np.int64)
        columns = min(COLUMNS, store.k)
        indices = store.sources[rows]
        variants = np.stack([store.get(indices, np.full(len(rows), v)) for v in range(columns)], axis=1)
        save_preview(store_dir / "preview.png", plan.data.get_batch(indices), variants)

    provenance = {"generator": name, "config": plan.gen, "seed": plan.seed, "package_version": __version__}
    variants_info = {"k": plan.gen["variants"], "generator": name, "fingerprint": plan.fingerprint}
    return gather(directories, out_dir, plan.data.classes, variants_info, provenance, finish=add_preview)


def generate(
    config: dict[str, Any],
    name: str,
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    weights_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Every shard not yet finished, then the gathered store (the shards are removed once gathered): rerunning
    after a kill completes only what is missing, and a complete store with the same fingerprint is kept."""
    plan = GenerationPlan(config, name, data_dir, None if weights_dir is None else Path(weights_dir))
    if (Path(out_dir) / "manifest.json").is_file():
        done = VariantStore(out_dir)
        if done.fingerprint == plan.fingerprint and done.k == plan.gen["variants"]:
            log.info("%s is complete and up to date", out_dir)
            return done.images.manifest
    for shard in range(plan.gen["shards"]):
        generate_shard(config, name, shard, data_dir, out_dir, plan=plan)
    manifest = gather_store(config, name, data_dir, out_dir, plan=plan)
    shutil.rmtree(shards_root(out_dir))  # the store holds hard links (or copies) of the shards' files
    return manifest
