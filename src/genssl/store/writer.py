"""Streaming writer of a store (format in :mod:`genssl.store.manifest`).

Images are appended one at a time as the bytes :func:`~genssl.store.codec.encode_image` returns; shards are
closed when the next image would exceed ``max_shard_bytes``, so memory does not depend on the dataset size
and the store has as few shards as that limit allows. File hashes are computed while writing.
"""

import hashlib
import os
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from genssl.store.manifest import ENCODINGS, FORMAT, FORMAT_VERSION, sha256_file, write_manifest


class _Shard:
    def __init__(self, directory: Path, number: int, start: int, raw: bool) -> None:
        stem = f"images-{number:05d}"
        self.data_name = f"{stem}.u8" if raw else f"{stem}.bin"
        self.index_name = None if raw else f"{stem}.idx"
        self.start = start
        self.count = 0
        self.bytes = 0
        self.offsets = [0]
        self.hash = hashlib.sha256()
        # Open across many add() calls; StoreWriter closes it when the shard is full or the store is closed.
        self.file: BinaryIO = open(directory / self.data_name, "wb")  # noqa: SIM115

    def append(self, payload: bytes) -> None:
        self.file.write(payload)
        self.hash.update(payload)
        self.count += 1
        self.bytes += len(payload)
        self.offsets.append(self.bytes)


class StoreWriter:
    """Write images into ``directory`` (which must exist and be empty), then :meth:`close` with the metadata.

    ``shape`` is the (H, W, 3) of every image for ``raw`` stores, and ``None`` for encoded stores whose images
    may differ in size.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        encoding: str,
        shape: tuple[int, int, int] | None,
        max_shard_bytes: int = 1 << 30,
    ) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"unknown encoding {encoding!r}; known: {', '.join(ENCODINGS)}")
        if encoding == "raw" and shape is None:
            raise ValueError("a raw store needs the image shape")
        self.directory = Path(directory)
        self.encoding = encoding
        self.shape = tuple(shape) if shape is not None else None
        self.max_shard_bytes = max_shard_bytes
        self.files: dict[str, dict[str, Any]] = {}
        self.shards: list[dict[str, Any]] = []
        self.n = 0
        self._shard: _Shard | None = None
        self._image_bytes = int(np.prod(self.shape)) if encoding == "raw" else None

    def add(self, payload: bytes) -> int:
        """Append one encoded image; return its index in the store."""
        if self._image_bytes is not None and len(payload) != self._image_bytes:
            raise ValueError(f"raw image of {len(payload)} bytes, expected {self._image_bytes} for shape {self.shape}")
        shard = self._shard
        if shard is not None and shard.count and shard.bytes + len(payload) > self.max_shard_bytes:
            self._close_shard()
            shard = None
        if shard is None:
            shard = self._shard = _Shard(self.directory, len(self.shards), self.n, raw=self.encoding == "raw")
        shard.append(payload)
        self.n += 1
        return self.n - 1

    def _close_shard(self) -> None:
        shard = self._shard
        if shard is None:
            return
        shard.file.close()
        self.files[shard.data_name] = {"bytes": shard.bytes, "sha256": shard.hash.hexdigest()}
        entry: dict[str, Any] = {"file": shard.data_name, "start": shard.start, "count": shard.count}
        if shard.index_name is not None:
            self._save_file(shard.index_name, np.asarray(shard.offsets, dtype="<i8").tobytes())
            entry["index"] = shard.index_name
        self.shards.append(entry)
        self._shard = None

    def _save_file(self, name: str, data: bytes) -> None:
        (self.directory / name).write_bytes(data)
        self.files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    def _save_array(self, name: str, array: np.ndarray) -> None:
        np.save(self.directory / name, array, allow_pickle=False)
        path = self.directory / name
        self.files[name] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}

    def close(
        self,
        labels: np.ndarray,
        classes: list[str],
        splits: dict[str, np.ndarray],
        provenance: dict[str, Any],
        skipped: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        """Finish the last shard, write labels, splits and ``manifest.json``; return the manifest."""
        self._close_shard()
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (self.n,):
            raise ValueError(f"{labels.shape[0]} labels for {self.n} images")
        if self.n and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(f"labels must lie in 0..{len(classes) - 1}")
        self._save_array("labels.npy", labels)
        split_entries = {}
        for name, indices in splits.items():
            indices = np.asarray(indices, dtype=np.int64)
            if indices.size and (indices.min() < 0 or indices.max() >= self.n):
                raise ValueError(f"split {name!r} holds indices outside 0..{self.n - 1}")
            file = f"split-{name}.npy"
            self._save_array(file, np.sort(indices))
            split_entries[name] = {"file": file, "n": int(indices.size)}
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "n": self.n,
            "encoding": self.encoding,
            "shape": list(self.shape) if self.shape is not None else None,
            "dtype": "uint8",
            "classes": list(classes),
            "labels": "labels.npy",
            "splits": split_entries,
            "shards": self.shards,
            "files": self.files,
            "skipped": list(skipped or []),
            "provenance": provenance,
        }
        write_manifest(self.directory, manifest)
        return manifest
