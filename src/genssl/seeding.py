"""Seeds derived from (global seed, stage, item).

Every random choice in genssl draws from a generator seeded by :func:`derive_seed`, so a result depends only
on the keys that name it (for example the global seed, the stage ``"split"`` and the dataset name), never on
batch size, worker count, shard count or resume point.
"""

import hashlib

import numpy as np


def derive_seed(*keys: int | str) -> int:
    """Return a 63-bit seed that is a pure function of ``keys``.

    Each key is written as ``"<type name>:<value>"`` (so ``0`` and ``"0"`` differ), the parts are joined with
    the unit separator ``"\x1f"``, and the seed is the first 8 bytes of the SHA-256 of that UTF-8 text read as a
    little-endian integer, shifted right by one bit. ``derive_seed(0, "split", "digits")`` is therefore the same
    on every machine and Python version, and different keys give unrelated seeds.
    """
    text = "\x1f".join(f"{type(k).__name__}:{k}" for k in keys)
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def rng(*keys: int | str) -> np.random.Generator:
    """A NumPy generator seeded with :func:`derive_seed` of ``keys``."""
    return np.random.default_rng(derive_seed(*keys))
