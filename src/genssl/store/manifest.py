"""The on-disk format of a store and its integrity check.

A store is a directory::

    manifest.json            format, N, shape, encoding, classes, splits, shards, per-file sha256, provenance
    labels.npy               int64 label of every image (N,)
    split-{name}.npy         int64 sorted indices of each split (train, val, test)
    images-00000.u8          raw encoding: uint8 array (count, H, W, 3), C order, no header
    images-00000.bin         encoded (png/jpeg/webp): the images' bytes back to back
    images-00000.idx         encoded: int64 little-endian byte offsets (count + 1) into the .bin file

Shard ``s`` holds the images ``start .. start + count - 1``. Every file is listed in ``manifest["files"]``
with its size and SHA-256, which :func:`verify_store` rechecks. The manifest holds no timestamps or host
names, so preparing the same data twice gives byte-identical stores.
"""

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from genssl.errors import StoreError

FORMAT = "genssl.store"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ENCODINGS = ("raw", "png", "jpeg", "webp")


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in chunks (memory independent of its size)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check the manifest of the store at ``path`` (the directory or its manifest.json)."""
    path = Path(path)
    file = path if path.name == MANIFEST else path / MANIFEST
    if not file.is_file():
        raise StoreError(f"{path}: not a store (no {MANIFEST}); prepare it with `genssl prepare`")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise StoreError(f"{file}: not valid JSON ({err})") from None
    if manifest.get("format") != FORMAT:
        raise StoreError(f"{file}: format is {manifest.get('format')!r}, expected {FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise StoreError(
            f"{file}: format_version {manifest.get('format_version')!r} is not supported "
            f"(this genssl reads version {FORMAT_VERSION}); prepare the store again"
        )
    return manifest


def write_manifest(directory: str | os.PathLike[str], manifest: dict[str, Any]) -> None:
    """Write ``manifest.json`` with sorted keys and a trailing newline (byte-stable)."""
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    Path(directory, MANIFEST).write_text(text, encoding="utf-8")


def verify_store(path: str | os.PathLike[str]) -> list[str]:
    """Recompute size and SHA-256 of every file in the manifest; return one line per problem (empty if intact)."""
    path = Path(path)
    if path.name == MANIFEST:
        path = path.parent
    manifest = read_manifest(path)
    problems = []
    for name, recorded in sorted(manifest["files"].items()):
        file = path / name
        if not file.is_file():
            problems.append(f"{file}: missing")
            continue
        size = file.stat().st_size
        if size != recorded["bytes"]:
            problems.append(f"{file}: {size} bytes, manifest records {recorded['bytes']}")
            continue
        digest = sha256_file(file)
        if digest != recorded["sha256"]:
            problems.append(f"{file}: sha256 {digest} does not match the manifest's {recorded['sha256']}")
    total = sum(s["count"] for s in manifest["shards"])
    if total != manifest["n"]:
        problems.append(f"{path / MANIFEST}: shards hold {total} images, manifest records n = {manifest['n']}")
    return problems
