"""``genssl evaluate``: one encoder's whole evaluation in one process (rule evaluate_encoder, with
``features.one_job_per_encoder``).

The features of every evaluation dataset (:func:`genssl.evaluate.features.extract_encoder_features`), then the linear
probe and kNN of every probed dataset on its features (:func:`genssl.evaluate.probe.run_probe`, given the encoder and
the dataset's store for the augmented protocol): the same files, with the same contents and provenance records, as
``genssl features`` followed by ``genssl probe``, without a second process's start-up (importing torch and
scikit-learn costs more than encoding and probing a small dataset on a CPU). The files stand or fall together: an
error removes every one of them (:func:`genssl.atomic.all_or_none`).
"""

import os
from typing import Any, NamedTuple

from genssl.atomic import all_or_none
from genssl.errors import ConfigError
from genssl.evaluate.features import extract_encoder_features
from genssl.evaluate.probe import run_probe


class Encoding(NamedTuple):
    """A dataset to encode (a key of ``datasets``), its store and the feature file to write."""

    dataset: str
    store: str
    features: str


def evaluate_encoder(
    config: dict[str, Any],
    encoder_path: str | os.PathLike[str],
    encodings: list[Encoding],
    probes: dict[str, str],
) -> None:
    """Write the features of every dataset of ``encodings`` from the encoder ``encoder_path``, then probe each dataset
    of ``probes`` (``{dataset: result file}``, datasets of ``encodings``) on its features; on an error, none of the
    files is left."""
    encoded = {encoding.dataset: encoding for encoding in encodings}
    if unknown := [dataset for dataset in probes if dataset not in encoded]:
        raise ConfigError(
            f"cannot probe {', '.join(unknown)} without encoding it: the datasets to probe must be among the encoded "
            f"ones ({', '.join(encoded)})"
        )
    with all_or_none([*(encoding.features for encoding in encodings), *probes.values()]):
        for encoding in encodings:
            extract_encoder_features(config, encoding.dataset, encoder_path, encoding.store, encoding.features)
        for dataset, out in probes.items():
            run_probe(config, encoded[dataset].features, out, encoder_path, encoded[dataset].store)
