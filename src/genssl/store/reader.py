"""Random access to a store (format in :mod:`genssl.store.manifest`).

``store[i]`` costs O(1) file operations: a binary search over the few shard starts, then one slice of a
memory-mapped shard (raw) or of its offset index and data (encoded). Nothing is read until asked for, so a
store of any size opens instantly; a store pickles without its memory maps, so DataLoader workers reopen
them lazily.

Reads check what they read: the first time a process uses a file of a store (a shard, the labels, a split), its
size and SHA-256 are checked against the manifest, streamed, once per process (:func:`checked_file`; a worker
forked afterwards inherits the check). A damaged file stops the read with an error naming the file and the way to
repair the store. :meth:`ImageStore.verify` checks every file at once (what pretraining does before its loader
starts workers).
"""

import bisect
import os
from pathlib import Path
from typing import Any

import numpy as np

from genssl.errors import StoreError
from genssl.store.codec import decode_image
from genssl.store.manifest import read_manifest, sha256_file

#: ``(path, sha256)`` of every store file this process has checked against its manifest.
_CHECKED: set[tuple[str, str]] = set()


def checked_file(store: Path, name: str, recorded: dict[str, Any]) -> Path:
    """The path of the store's file ``name`` after checking its size and SHA-256 against the manifest's
    ``recorded`` entry (once per process and content)."""
    file = store / name
    if not file.is_file():
        raise StoreError(f"{file}: missing from the store (listed in its manifest); {_REPAIR.format(store=store)}")
    key = (str(file.resolve()), recorded["sha256"])
    if key in _CHECKED:
        return file
    size = file.stat().st_size
    if size != recorded["bytes"]:
        problem = f"{size} bytes, the manifest records {recorded['bytes']}"
    else:
        digest = sha256_file(file)
        problem = (
            None
            if digest == recorded["sha256"]
            else f"sha256 {digest[:12]}…, the manifest records {recorded['sha256'][:12]}…"
        )
    if problem is not None:
        raise StoreError(f"{file}: damaged ({problem}); {_REPAIR.format(store=store)}")
    _CHECKED.add(key)
    return file


#: How to repair a damaged store.
_REPAIR = "check the store with `genssl store verify {store}`, then make it again (rerun the rule that wrote it)"


class ImageStore:
    """Read-only view of the store at ``path``: ``len(store)``, ``store[i]``, labels, classes and splits."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.manifest: dict[str, Any] = read_manifest(self.path)
        self.n: int = self.manifest["n"]
        self.encoding: str = self.manifest["encoding"]
        self.shape: tuple[int, ...] | None = tuple(self.manifest["shape"]) if self.manifest["shape"] else None
        self.classes: list[str] = self.manifest["classes"]
        self._shards: list[dict[str, Any]] = self.manifest["shards"]
        self._starts = [s["start"] for s in self._shards]
        self._maps: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        self._labels: np.ndarray | None = None

    def __len__(self) -> int:
        return self.n

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_maps"] = {}
        return state

    @property
    def labels(self) -> np.ndarray:
        """int64 label of every image."""
        if self._labels is None:
            self._labels = np.load(self._file(self.manifest["labels"]), allow_pickle=False)
        return self._labels

    def split(self, name: str) -> np.ndarray:
        """Sorted int64 indices of split ``name`` (``train``, ``val`` or ``test``)."""
        splits = self.manifest["splits"]
        if name not in splits:
            raise StoreError(f"{self.path}: no split {name!r}; the store has {', '.join(splits) or 'none'}")
        return np.load(self._file(splits[name]["file"]), allow_pickle=False)

    def _file(self, name: str) -> Path:
        return checked_file(self.path, name, self.manifest["files"][name])

    def verify(self) -> None:
        """Check every file of the store against the manifest (those not yet checked by this process)."""
        for name in sorted(self.manifest["files"]):
            self._file(name)

    def _shard(self, s: int) -> tuple[np.ndarray, np.ndarray | None]:
        maps = self._maps.get(s)
        if maps is None:
            shard = self._shards[s]
            data_file = self._file(shard["file"])
            if self.encoding == "raw":
                data = np.memmap(data_file, dtype=np.uint8, mode="r", shape=(shard["count"], *self.shape))
                maps = (data, None)
            else:
                offsets = np.fromfile(self._file(shard["index"]), dtype="<i8")
                data = np.memmap(data_file, dtype=np.uint8, mode="r") if offsets[-1] else np.zeros(0, np.uint8)
                maps = (data, offsets)
            self._maps[s] = maps
        return maps

    def _locate(self, index: int) -> tuple[int, int]:
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for a store of {self.n} images")
        index %= self.n
        s = bisect.bisect_right(self._starts, index) - 1
        return s, index - self._starts[s]

    def __getitem__(self, index: int) -> np.ndarray:
        """The (H, W, 3) uint8 image ``index`` (a read-only view for raw stores)."""
        s, j = self._locate(int(index))
        data, offsets = self._shard(s)
        if offsets is None:
            return data[j]
        return decode_image(memoryview(data[offsets[j] : offsets[j + 1]]))

    def get_batch(self, indices: np.ndarray | list[int]) -> np.ndarray:
        """Images at ``indices`` as one (B, H, W, 3) uint8 array; the images must share one shape.

        For raw stores this is one fancy-indexed read per shard touched, not one per image.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -self.n or idx.max() >= self.n):
            bad = idx[(idx < -self.n) | (idx >= self.n)][0]
            raise IndexError(f"index {bad} out of range for a store of {self.n} images")
        idx %= max(self.n, 1)
        if self.encoding == "raw":
            batch = np.empty((idx.size, *self.shape), dtype=np.uint8)
            shard_of = np.searchsorted(self._starts, idx, side="right") - 1
            for s in np.unique(shard_of):
                chosen = shard_of == s
                batch[chosen] = self._shard(int(s))[0][idx[chosen] - self._starts[s]]
            return batch
        images = [self[i] for i in idx]
        if not images:
            if self.shape is None:
                raise StoreError(f"{self.path}: an empty batch of a store of variable image sizes has no shape")
            return np.zeros((0, *self.shape), dtype=np.uint8)
        shapes = {im.shape for im in images}
        if len(shapes) > 1:
            raise StoreError(f"{self.path}: images of different sizes {sorted(shapes)} cannot form one batch")
        return np.stack(images)
