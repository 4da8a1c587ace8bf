"""Feature files (``results/features/.../{downstream}.npz``): frozen-encoder features of a dataset's splits.

An uncompressed NumPy ``.npz`` archive with, for every split ``s`` of the dataset store (train, val, test),

    {s}_features   float32 (n_s, D)  pooled features, row j of the image at dataset index {s}_indices[j]
    {s}_labels     int64 (n_s,)
    {s}_indices    int64 (n_s,)      dataset indices, sorted (the store's split order)

and ``meta``, a JSON text: the encoder (its file and SHA-256, or the generator whose conditioning encoder it is),
the dataset (name, the SHA-256 of its store manifest, classes), the preprocessing and the feature dimension. The
archive members carry a fixed timestamp, so extracting the same features twice gives the same bytes.
Feature sets compared example by example must hold the same indices of the same dataset store:
:func:`aligned` refuses anything else, naming the files.
"""

import io
import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genssl.atomic import atomic_file
from genssl.errors import GensslError

SPLITS = ("train", "val", "test")
#: The timestamp of every archive member (zip's earliest), for byte-identical files.
_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class SplitFeatures:
    """The features, labels and dataset indices of one split."""

    features: np.ndarray
    labels: np.ndarray
    indices: np.ndarray


@dataclass(frozen=True)
class FeatureSet:
    """A feature file: its path, metadata and splits."""

    path: Path
    meta: dict[str, Any]
    splits: dict[str, SplitFeatures]

    @property
    def dim(self) -> int:
        """The feature dimension D."""
        return int(self.meta["feature_dim"])

    def split(self, name: str) -> SplitFeatures:
        """Split ``name``; one the file does not hold names the file and the splits it has."""
        if name not in self.splits:
            raise GensslError(f"{self.path}: no {name!r} split; the file holds {', '.join(self.splits) or 'none'}")
        return self.splits[name]


def save_feature_set(path: str | os.PathLike[str], splits: dict[str, SplitFeatures], meta: dict[str, Any]) -> None:
    """Write a feature file atomically (deterministic bytes)."""
    arrays: dict[str, np.ndarray] = {}
    for name, split in splits.items():
        arrays[f"{name}_features"] = np.ascontiguousarray(split.features, dtype=np.float32)
        arrays[f"{name}_labels"] = np.ascontiguousarray(split.labels, dtype=np.int64)
        arrays[f"{name}_indices"] = np.ascontiguousarray(split.indices, dtype=np.int64)
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH), buffer.getvalue())


def load_feature_set(path: str | os.PathLike[str]) -> FeatureSet:
    """Read a feature file; a missing or malformed one is refused naming the file."""
    path = Path(path)
    if not path.is_file():
        raise GensslError(f"{path}: no feature file; extract it first (genssl features or genssl evaluate)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise GensslError(f"{path}: not a genssl feature file ({error})") from None
    splits = {}
    for name in SPLITS:
        if f"{name}_features" in arrays:
            split = SplitFeatures(arrays[f"{name}_features"], arrays[f"{name}_labels"], arrays[f"{name}_indices"])
            if not len(split.features) == len(split.labels) == len(split.indices):
                raise GensslError(f"{path}: split {name} holds features, labels and indices of different lengths")
            splits[name] = split
    return FeatureSet(path, meta, splits)


def aligned(feature_sets: Sequence[FeatureSet], split: str) -> list[np.ndarray]:
    """The features of ``split`` of every set, after checking that all hold the same examples in the same order:
    the same dataset store (manifest hash) and the same dataset indices."""
    first = feature_sets[0]
    reference = first.split(split)
    for other in feature_sets[1:]:
        if other.meta["dataset"]["manifest_sha256"] != first.meta["dataset"]["manifest_sha256"]:
            raise GensslError(
                f"{other.path} and {first.path} were extracted from different stores of "
                f"{other.meta['dataset']['name']!r} / {first.meta['dataset']['name']!r}; examples cannot be aligned"
            )
        indices = other.split(split).indices
        if len(indices) != len(reference.indices):
            raise GensslError(
                f"{other.path}: {len(indices)} {split} examples, {first.path}: {len(reference.indices)}; "
                "feature sets compared example by example must hold the same examples"
            )
        if not np.array_equal(indices, reference.indices):
            position = int(np.flatnonzero(indices != reference.indices)[0])
            raise GensslError(
                f"{other.path}: {split} example {position} is dataset image {int(indices[position])}, in "
                f"{first.path} image {int(reference.indices[position])}; the examples are ordered differently"
            )
    return [s.split(split).features for s in feature_sets]
