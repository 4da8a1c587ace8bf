"""Fixed train/val/test splits: the source's official ones where it has them, seeded and stratified otherwise.

With labels ``y`` and a pool ``P`` (the official training split, or every image when there is none):

* ``test`` is the official test split, or else, for each class ``c``, ``round_half_up(test_fraction * n_c)`` images of
  ``P`` with label ``c`` chosen by a seeded permutation;
* ``val`` is the official validation split, or else, for each class, ``round_half_up(val_fraction * m_c)`` of the
  ``m_c`` images of class ``c`` left in ``P``;
* ``train`` is what remains of ``P``.

A class keeps at least one training image whenever it has any. The generator is seeded with
``(seed, "split", dataset name)``, so splits do not depend on anything else.
"""

import math

import numpy as np

from genssl.seeding import rng


def _holdout(pool: np.ndarray, labels: np.ndarray, fraction: float, generator: np.random.Generator) -> np.ndarray:
    """Per class (in increasing label order), a seeded random ``floor(fraction * n_c + 0.5)`` of the pool's indices."""
    chosen = []
    for c in np.unique(labels[pool]):
        members = pool[labels[pool] == c]
        k = min(math.floor(fraction * members.size + 0.5), members.size - 1)
        order = generator.permutation(members.size)
        chosen.append(members[order[:k]])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def make_splits(
    labels: np.ndarray,
    official: dict[str, np.ndarray] | None,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    dataset: str,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Return the sorted index arrays of ``train``, ``val``, ``test`` and how each was made (official/seeded)."""
    labels = np.asarray(labels, dtype=np.int64)
    official = official or {}
    generator = rng(seed, "split", dataset)
    pool = np.asarray(official.get("train", np.arange(labels.size)), dtype=np.int64)
    policy = {}
    if "test" in official:
        test = np.asarray(official["test"], dtype=np.int64)
        policy["test"] = "official"
    else:
        test = _holdout(pool, labels, test_fraction, generator)
        pool = np.setdiff1d(pool, test)
        policy["test"] = "seeded"
    if "val" in official:
        val = np.asarray(official["val"], dtype=np.int64)
        policy["val"] = "official"
    else:
        val = _holdout(pool, labels, val_fraction, generator)
        policy["val"] = "seeded"
    train = np.setdiff1d(pool, val)
    policy["train"] = "official" if "train" in official else "seeded"
    splits = {"train": train, "val": np.sort(val), "test": np.sort(test)}
    return splits, {k: policy[k] for k in splits}
