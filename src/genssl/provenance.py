"""Provenance: the content identity of what an artifact was made from, recorded in it and checked on reuse.

Identities are SHA-256 digests:

- the code: :func:`code_version`, genssl's version and the digest of its installed sources (every ``.py`` file and
  ``schema.yaml`` of the package, by relative path), so that any change of the code changes it;
- a store (a prepared dataset or a variant store): :func:`store_identity`, the digest of its ``manifest.json``, which
  lists the size and SHA-256 of every file of the store;
- a file (an encoder, a feature file): :func:`file_identity`, the digest of its bytes;
- a configuration slice or any JSON record: :func:`digest` of its canonical JSON.

A record (:func:`record`) holds the code version, the configuration slice a stage read and the identities of its
inputs; :func:`differences` names the dotted keys in which two records differ.
"""

import hashlib
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from genssl import __version__
from genssl.store.manifest import MANIFEST, sha256_file

#: The package's files whose content is the code identity.
_CODE_SUFFIXES = (".py", ".yaml")


@cache
def code_version() -> str:
    """``{version}+{first 12 hex digits of the sources' SHA-256}``."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in _CODE_SUFFIXES and "__pycache__" not in p.parts):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return f"{__version__}+{h.hexdigest()[:12]}"


def store_identity(directory: str | os.PathLike[str]) -> str:
    """The SHA-256 of the store's ``manifest.json`` (which holds the SHA-256 of every file of the store)."""
    return sha256_file(Path(directory) / MANIFEST)


def file_identity(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file."""
    return sha256_file(path)


def digest(value: Any) -> str:
    """The SHA-256 of ``value``'s canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def record(config: dict[str, Any], inputs: dict[str, str | None]) -> dict[str, Any]:
    """What an artifact was made from: the code version, the configuration slice the stage read and the identity of
    each input (None for an input the stage did not have)."""
    return {"code": code_version(), "config": config, "inputs": inputs}


def differences(recorded: Any, expected: Any, prefix: str = "") -> list[str]:
    """The dotted keys at which ``recorded`` and ``expected`` differ (nested dicts compared key by key; any other
    difference is reported at its key), sorted."""
    if isinstance(recorded, dict) and isinstance(expected, dict):
        keys = sorted(set(recorded) | set(expected))
        return [d for key in keys for d in differences(recorded.get(key), expected.get(key), f"{prefix}{key}.")]
    return [] if recorded == expected else [prefix.rstrip(".") or "(value)"]
