"""``genssl probe``: linear probe and kNN accuracy of a frozen encoder on a downstream dataset (rule linear_probe, or
evaluate_encoder with :mod:`genssl.evaluate.encoder`).

Protocol ``features`` (the default): multinomial logistic regression (:mod:`genssl.evaluate.logistic`) on the
cached features of the feature file. For each C of ``probe.C`` (ascending, each fit warm-started from the
previous one) the classifier is fitted on the standardised train split and scored on the val split; the C with
the best val top-1 (the smallest such C on ties: the strongest regularisation) is refitted on train + val
(standardised on train + val) and scored on the test split. Protocol ``augmented`` (the paper's): a linear layer
on the frozen backbone trained on augmented train images (:mod:`genssl.evaluate.augmented_probe`), scored on
the test features. Both also report the weighted kNN accuracy (:mod:`genssl.evaluate.knn`) of the test split
against the train split for every k of ``probe.knn_k``.

The result (``results/probe/{dataset}/{method}/{augmentation}/{downstream}.json``) holds top1 and top5 (fractions
of the test split), ``knn`` per k, the protocol and its settings, the chosen C with every C's val top-1, the
sample counts and the feature file it was computed from.
"""

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genssl import devices
from genssl.atomic import atomic_file
from genssl.errors import GensslError
from genssl.evaluate.feature_file import FeatureSet, load_feature_set
from genssl.evaluate.knn import knn_accuracy, topk_accuracy
from genssl.evaluate.logistic import LinearClassifier, Standardiser, fit_sklearn, fit_torch
from genssl.provenance import record
from genssl.stages import config_slice, probe_keys
from genssl.store.manifest import sha256_file

log = logging.getLogger(__name__)


def solver(config: dict[str, Any]) -> tuple[str, torch.device]:
    """The logistic-regression backend and device ``probe.backend`` / ``probe.device`` select."""
    probe = config["probe"]
    device = devices.select_device(probe["device"], "probe.device")
    backend = probe["backend"]
    if backend == "auto":
        backend = "torch" if device.type == "cuda" else "sklearn"
    return backend, device


def _fit(
    backend: str,
    device: torch.device,
    features: np.ndarray,
    labels: np.ndarray,
    classes: int,
    c: float,
    config: dict[str, Any],
    start: LinearClassifier | None,
) -> LinearClassifier:
    probe = config["probe"]
    if backend == "torch":
        return fit_torch(features, labels, classes, c, probe["max_iter"], probe["tol"], device, start)
    return fit_sklearn(features, labels, classes, c, probe["max_iter"], probe["tol"], start)


def _accuracy(classifier: LinearClassifier, features: np.ndarray, labels: np.ndarray) -> dict[int, float]:
    return topk_accuracy(torch.from_numpy(classifier.scores(features)), torch.from_numpy(labels).long())


def logistic_probe(features: FeatureSet, config: dict[str, Any]) -> dict[str, Any]:
    """The ``features`` protocol (module docstring): top1, top5 and the regularisation path."""
    train, val, test = features.split("train"), features.split("val"), features.split("test")
    if len(val.labels) == 0:
        raise GensslError(
            f"{features.path}: the val split is empty, so the regularisation cannot be chosen; give the dataset "
            f"{features.meta['dataset']['name']!r} a val_fraction > 0"
        )
    classes = len(features.meta["dataset"]["classes"])
    missing = sorted(set(range(classes)) - set(np.unique(train.labels).tolist()))
    if missing:
        raise GensslError(f"{features.path}: the train split has no examples of classes {missing}")
    backend, device = solver(config)
    scale = Standardiser.fit(train.features)
    x_train, x_val = scale(train.features), scale(val.features)
    path, fits, classifier = {}, {}, None
    for c in sorted(config["probe"]["C"]):
        classifier = _fit(backend, device, x_train, train.labels, classes, c, config, classifier)
        fits[c] = classifier
        path[c] = _accuracy(classifier, x_val, val.labels)[1]
        log.info("C = %g: val top-1 %.4f", c, path[c])
    best = max(path, key=lambda c: (path[c], -c))
    fit_features = np.concatenate([train.features, val.features])
    fit_labels = np.concatenate([train.labels, val.labels])
    scale = Standardiser.fit(fit_features)
    final = _fit(backend, device, scale(fit_features), fit_labels, classes, best, config, fits[best])
    accuracy = _accuracy(final, scale(test.features), test.labels)
    return {
        "top1": accuracy[1],
        "top5": accuracy[5],
        "backend": backend,
        "selection": {"C": best, "val_top1": {str(c): v for c, v in path.items()}},
    }


def run_probe(
    config: dict[str, Any],
    features_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    encoder_path: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Probe the features in ``features_path`` with ``probe.protocol`` and write the result to ``out_path``.

    The ``augmented`` protocol also needs the encoder file and the downstream store; the encoder must be the one
    the features were extracted with (its SHA-256 is checked)."""
    started = time.perf_counter()
    probe = config["probe"]
    features = load_feature_set(features_path)
    train, val, test = features.split("train"), features.split("val"), features.split("test")
    classes = len(features.meta["dataset"]["classes"])
    if probe["protocol"] == "features":
        result = logistic_probe(features, config)
    else:
        from genssl.evaluate.augmented_probe import augmented_probe

        if encoder_path is None or data_dir is None:
            raise GensslError(
                "probe.protocol augmented trains on the images: give the encoder (--encoder) and data (--data)"
            )
        recorded = features.meta["encoder"].get("sha256")
        if recorded != sha256_file(encoder_path):
            raise GensslError(f"{encoder_path}: not the encoder that {features.path} was extracted with")
        result = augmented_probe(config, encoder_path, data_dir, features)
    features_sha256 = sha256_file(features.path)
    result = {
        "protocol": probe["protocol"],
        **result,
        "knn": knn_accuracy(
            train.features, train.labels, test.features, test.labels, probe["knn_k"], probe["knn_temperature"], classes
        ),
        "knn_temperature": probe["knn_temperature"],
        "n": {"train": len(train.labels), "val": len(val.labels), "test": len(test.labels)},
        "classes": classes,
        "dataset": features.meta["dataset"]["name"],
        "encoder": features.meta["encoder"],
        "features": {"file": str(features.path), "sha256": features_sha256, "dim": features.dim},
        "provenance": record(
            config_slice(config, probe_keys(config, features.meta["dataset"]["name"])),
            {
                "features": features_sha256,
                "encoder": features.meta["encoder"].get("sha256"),
                "data": features.meta["dataset"]["manifest_sha256"],
            },
        ),
    }
    seconds = time.perf_counter() - started
    log.info(
        "%s: top-1 %.4f, top-5 %.4f, kNN %s (%s protocol, %.1f s)",
        features.meta["dataset"]["name"],
        result["top1"],
        result["top5"],
        ", ".join(f"k={k} {v['top1']:.4f}" for k, v in result["knn"].items()),
        probe["protocol"],
        seconds,
    )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out_path) as tmp:
        tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result
