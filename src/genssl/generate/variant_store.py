"""Variant stores: K generated variants of every training image, written in shards, gathered into one store.

A variant store is a genssl store (:mod:`genssl.store.manifest`) of ``n_sources x K`` images in image-major
order, variant ``v`` of the ``p``-th source at store index ``p K + v``, with two additions::

    sources.npy      int64 dataset indices of the sources (sorted), in the order of the store
    manifest.json    + "variants": {"k", "sources", "generator", "fingerprint"}

The fingerprint (:func:`fingerprint`) records what the variants were made from: the data store (the SHA-256 of
its manifest, which lists every file's hash), the generator's settings that change the images, the seed and, for
a trained generator, the hash of its weights. Pretraining refuses a store whose fingerprint differs from what its
configuration asks for (:meth:`VariantStore.check`), naming the field.

Generation writes shard ``s`` of ``S`` (the sources at positions ``s n / S .. (s + 1) n / S - 1`` of the train
split) into its own directory, atomically, so a killed run resumes by writing only the missing shards;
:func:`gather` then links the shards' files into the final store (hard links, or copies across file systems) and
writes its manifest. Nothing in either holds a time or a host name, so an interrupted and resumed generation
gives the same bytes as an uninterrupted one.
"""

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from genssl.atomic import atomic_directory
from genssl.errors import StoreError
from genssl.store import ImageStore, StoreWriter
from genssl.store.codec import encode_image
from genssl.store.manifest import MANIFEST, read_manifest, sha256_file, write_manifest

SOURCES = "sources.npy"
SHARD_INFO = "shard.json"
#: Generator settings that do not change the generated images (batching, placement and kernel choice, which move
#: values by rounding only).
NON_CONTENT_KEYS = ("shards", "batch_size", "device", "channels_last", "compile")


def fingerprint(
    data_dir: str | os.PathLike[str], generator: str, config: dict[str, Any], seed: int, weights_sha256: str | None
) -> dict[str, Any]:
    """What a variant store is made from: data store, generator name and content settings, seed, weights hash."""
    return {
        "data_manifest_sha256": sha256_file(Path(data_dir) / MANIFEST),
        "generator": generator,
        "settings": {k: v for k, v in sorted(config.items()) if k not in NON_CONTENT_KEYS},
        "seed": seed,
        "weights_sha256": weights_sha256,
    }


def shard_range(n: int, shard: int, shards: int) -> tuple[int, int]:
    """Positions ``[start, stop)`` of shard ``shard`` of ``shards`` over ``n`` sources (sizes differ by at most 1)."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is not in 0..{shards - 1}")
    return shard * n // shards, (shard + 1) * n // shards


def shard_dir(shards_root: str | os.PathLike[str], shard: int) -> Path:
    """The directory of shard ``shard`` under ``shards_root``."""
    return Path(shards_root) / f"shard-{shard:05d}"


def shard_is_complete(directory: Path, expected: dict[str, Any]) -> bool:
    """Whether ``directory`` holds a finished shard made for ``expected`` (its shard.json)."""
    info = directory / SHARD_INFO
    return info.is_file() and json.loads(info.read_text()) == expected


def write_shard(
    directory: str | os.PathLike[str],
    info: dict[str, Any],
    batches: Any,
    shape: tuple[int, int, int],
    encoding: str,
) -> None:
    """Write one shard atomically: ``batches`` yields ``(indices (b,), labels (b,), variants uint8 (b, K, H, W, 3))``;
    ``info`` (JSON: shard number, range, fingerprint, K) goes to shard.json, written last."""
    with atomic_directory(directory) as tmp:
        writer = StoreWriter(tmp, encoding, shape if encoding == "raw" else None, max_shard_bytes=1 << 62)
        sources, labels = [], []
        for indices, batch_labels, variants in batches:
            for image_variants in variants:
                for image in image_variants:
                    writer.add(encode_image(image, encoding))
            sources.append(np.asarray(indices, dtype=np.int64))
            labels.append(np.repeat(np.asarray(batch_labels, dtype=np.int64), info["k"]))
        sources_all = np.concatenate(sources) if sources else np.zeros(0, np.int64)
        labels_all = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        n_classes = int(labels_all.max()) + 1 if labels_all.size else 1
        writer.close(labels_all, [str(c) for c in range(n_classes)], {}, {"shard": info})
        np.save(tmp / SOURCES, sources_all, allow_pickle=False)
        (tmp / SHARD_INFO).write_text(json.dumps(info, sort_keys=True, indent=1) + "\n")


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def gather(
    shard_dirs: list[Path],
    out_dir: str | os.PathLike[str],
    classes: list[str],
    variants_info: dict[str, Any],
    provenance: dict[str, Any],
    finish: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """Gather finished shards (in order) into the variant store ``out_dir``; return its manifest. ``finish`` is
    called with the complete store's temporary directory before it is renamed into place (to add a preview)."""
    manifests = []
    for directory in shard_dirs:
        if not (directory / SHARD_INFO).is_file():
            raise StoreError(f"{directory}: shard not finished (no {SHARD_INFO}); run its generation first")
        manifests.append(read_manifest(directory))
    encodings = {m["encoding"] for m in manifests}
    shapes = {tuple(m["shape"]) if m["shape"] else None for m in manifests}
    if len(encodings) != 1 or len(shapes) != 1:
        raise StoreError(f"shards {shard_dirs[0].parent} differ in encoding or shape: {encodings}, {shapes}")
    with atomic_directory(out_dir) as tmp:
        files: dict[str, dict[str, Any]] = {}
        shards, start = [], 0
        sources, labels = [], []
        for number, (directory, manifest) in enumerate(zip(shard_dirs, manifests, strict=True)):
            for entry in manifest["shards"]:  # one data file per generation shard (or none when empty)
                renamed = {"start": start, "count": entry["count"]}
                for key in ("file", "index"):
                    if key in entry:
                        name = f"images-{number:05d}{Path(entry[key]).suffix}"
                        _link(directory / entry[key], tmp / name)
                        files[name] = manifest["files"][entry[key]]
                        renamed[key] = name
                shards.append(renamed)
                start += entry["count"]
            sources.append(np.load(directory / SOURCES, allow_pickle=False))
            labels.append(np.load(directory / manifest["labels"], allow_pickle=False))
        sources_all, labels_all = np.concatenate(sources), np.concatenate(labels)
        if np.any(np.diff(sources_all) <= 0):
            raise StoreError(f"shards of {out_dir} overlap or are out of order (sources not increasing)")
        for name, array in (("labels.npy", labels_all), (SOURCES, sources_all)):
            np.save(tmp / name, array, allow_pickle=False)
            files[name] = {"bytes": (tmp / name).stat().st_size, "sha256": sha256_file(tmp / name)}
        manifest = {
            "format": manifests[0]["format"],
            "format_version": manifests[0]["format_version"],
            "n": start,
            "encoding": encodings.pop(),
            "shape": manifests[0]["shape"],
            "dtype": "uint8",
            "classes": classes,
            "labels": "labels.npy",
            "splits": {},
            "shards": shards,
            "files": files,
            "skipped": [],
            "provenance": provenance,
            "variants": {**variants_info, "sources": SOURCES},
        }
        write_manifest(tmp, manifest)
        if finish is not None:
            finish(tmp)
    return manifest


class VariantStore:
    """Read variants by (dataset index, variant index) from the variant store at ``path``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.images = ImageStore(self.path)
        info = self.images.manifest.get("variants")
        if info is None:
            raise StoreError(f"{self.path}: not a variant store (its manifest has no 'variants'); run genssl generate")
        self.k: int = int(info["k"])
        self.fingerprint: dict[str, Any] = info["fingerprint"]
        self.sources = np.load(self.path / info["sources"], allow_pickle=False)

    def positions(self, indices: np.ndarray) -> np.ndarray:
        """Positions of the dataset ``indices`` among the sources; an index without variants is an error."""
        indices = np.asarray(indices, dtype=np.int64)
        pos = np.searchsorted(self.sources, indices)
        bad = (pos >= len(self.sources)) | (self.sources[np.minimum(pos, len(self.sources) - 1)] != indices)
        if bad.any():
            raise StoreError(f"{self.path}: image {int(indices[bad][0])} has no variants (not a source of this store)")
        return pos

    def get(self, indices: np.ndarray, variants: np.ndarray) -> np.ndarray:
        """uint8 (B, H, W, 3): variant ``variants[j]`` of dataset image ``indices[j]``."""
        return self.images.get_batch(self.positions(indices) * self.k + np.asarray(variants, dtype=np.int64))

    def check(self, expected: dict[str, Any]) -> None:
        """Refuse the store unless its fingerprint equals ``expected``, naming the first field that differs."""
        for key in sorted(set(expected) | set(self.fingerprint)):
            mine, wanted = self.fingerprint.get(key), expected.get(key)
            if mine == wanted:
                continue
            if key == "settings":
                diff = sorted(k for k in set(mine or {}) | set(wanted or {}) if (mine or {}).get(k) != wanted.get(k))
                detail = "; ".join(f"{k}: store {(mine or {}).get(k)!r}, config {wanted.get(k)!r}" for k in diff)
            else:
                detail = f"store {mine!r}, expected {wanted!r}"
            raise StoreError(
                f"{self.path}: made for another {key.replace('_', ' ')} ({detail}); regenerate it "
                "(genssl generate / rule gather_augmentations) rather than use it"
            )
