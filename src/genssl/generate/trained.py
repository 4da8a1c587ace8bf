"""The directory of a generator trained in the workflow (``results/generators/{dataset}/{generator}/``): the files
every such backend writes beside its weights, and the checks made before sampling from one.

Every trained directory holds :data:`ENCODER_FILE` (a copy of the frozen conditioning encoder), :data:`RECORD_FILE`
(``generator.json``: the generator's config entry, seed, image size and training figures) and :data:`LOSSES_FILE`
(the per-step losses); the backend adds its weights.
"""

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from genssl.errors import ConfigError, GensslError
from genssl.provenance import code_version, file_identity, store_identity
from genssl.store import ImageStore

ENCODER_FILE = "encoder.safetensors"
RECORD_FILE = "generator.json"
LOSSES_FILE = "losses.csv"
#: How a missing or stale directory is made.
HOW = "it is made by `genssl train-generator` (rule train_generator)"


def training_inputs(name: str, data_dir: Path, encoder_path: Path, k: int) -> tuple[ImageStore, np.ndarray]:
    """The prepared store at ``data_dir`` and its train split's indices, for training generator ``name`` with
    ``k`` nearest neighbours conditioned on the encoder file ``encoder_path``; a missing store or encoder, or a
    ``k`` above the split's size, is refused with the path or config key."""
    if not data_dir.is_dir():
        raise GensslError(f"{data_dir}: no prepared dataset store; prepare it first (genssl prepare)")
    if not encoder_path.is_file():
        raise GensslError(f"{encoder_path}: no conditioning encoder file for generator {name!r}; pretrain it first")
    store = ImageStore(data_dir)
    indices = store.split("train")
    if k > len(indices):
        raise ConfigError(
            f"generators.{name}.neighbours: k = {k} exceeds the {len(indices)} images of the train split of {data_dir}"
        )
    return store, indices


def square_image_size(store: ImageStore, backend: str, key: str, halvings: int) -> int:
    """The side of the store's square images, which the network at config ``key`` halves ``halvings`` times (or
    doubles from 4 px up to); a store of mixed or non-square images, or a side not divisible by ``2**halvings``,
    is refused."""
    if store.shape is None or store.shape[0] != store.shape[1]:
        raise GensslError(
            f"{store.path}: {backend} trains on square images of one size; the store holds {store.shape or 'mixed'}"
        )
    size = store.shape[0]
    if size % 2**halvings:
        raise ConfigError(f"{key}: {halvings} halvings of the resolution, which {size} px images do not allow")
    return size


def input_identities(data_dir: Path, encoder_path: Path) -> dict[str, str]:
    """What a generator trained in the workflow records of its inputs: the content identity of the data store and
    of the conditioning encoder, and the code version (:mod:`genssl.provenance`)."""
    return {
        "data_manifest_sha256": store_identity(data_dir),
        "encoder_sha256": file_identity(encoder_path),
        "code": code_version(),
    }


def check_trained_directory(
    name: str,
    backend: str,
    config: dict[str, Any],
    weights_dir: Path | None,
    required: Iterable[str],
    trained_keys: Iterable[str],
) -> dict[str, Any]:
    """The directory's ``generator.json`` record, after checking that every ``required`` file is there and that
    it was trained with this config's ``trained_keys`` (the keys that define the weights; the others only affect
    sampling). Errors name the directory, the missing files or the keys that differ, and how to remake it."""
    if weights_dir is None:
        raise GensslError(f"generators.{name}: {backend} needs the directory of its trained weights; {HOW}")
    weights_dir = Path(weights_dir)
    if not weights_dir.is_dir():
        raise GensslError(f"{weights_dir}: no trained {backend} generator {name!r}; {HOW}")
    missing = [file for file in required if not (weights_dir / file).is_file()]
    if missing:
        raise GensslError(f"{weights_dir}: incomplete {backend} generator (no {', '.join(missing)}); {HOW}")
    record = json.loads((weights_dir / RECORD_FILE).read_text())
    changed = [key for key in trained_keys if record["config"].get(key) != config.get(key)]
    if changed:
        keys = ", ".join(f"generators.{name}.{key}" for key in changed)
        raise GensslError(f"{weights_dir}: trained with other settings of {keys} than the config's; retrain it ({HOW})")
    return record
