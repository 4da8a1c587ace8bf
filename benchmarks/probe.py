"""Linear probe: our ``features`` protocol vs scikit-learn's default ``LogisticRegression`` on the same features,
in one run (time ratio and test-accuracy difference).

- ``sklearn default``: ``LogisticRegression()`` (C = 1, lbfgs, 100 iterations, tol 1e-4) fitted on the raw train
  features, the way a probe is often written, and the same on standardised features;
- ``genssl (sklearn)`` / ``genssl (torch, cpu|cuda)``: :func:`genssl.evaluate.probe.logistic_probe`, which
  standardises, fits the C path of the schema's default (6 values, warm-started, tol 1e-6) on train, picks C on
  val and refits on train + val.

The features are a feature file (``--features``, e.g. results/features/digits/simclr/standard/digits.npz) or, by
default, synthetic ones shaped like a CIFAR-10 ResNet-18 probe: 10 classes, d = 512, 45,000 / 5,000 / 10,000
train / val / test examples, class means in a 32-dimensional subspace under anisotropic noise, feature scales
spread over three orders of magnitude as raw pooled features are.

    python benchmarks/probe.py [--features FILE] [--train 45000] [--dim 512] [--classes 10] [--threads T]
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from genssl.config import validate_config
from genssl.evaluate.feature_file import FeatureSet, SplitFeatures, load_feature_set
from genssl.evaluate.logistic import Standardiser
from genssl.evaluate.probe import logistic_probe


def synthetic(train: int, dim: int, classes: int) -> FeatureSet:
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(dim, 32)))[0]
    means = rng.normal(size=(classes, 32)) @ basis.T * 0.08
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    scales = np.logspace(-1.5, 1.5, dim)
    splits = {}
    for name, n in (("train", train), ("val", train // 9), ("test", 2 * train // 9)):
        labels = rng.integers(0, classes, n)
        features = (means[labels] + rng.normal(size=(n, dim)) @ mixing) * scales
        splits[name] = SplitFeatures(features.astype(np.float32), labels, np.arange(n))
    meta = {"dataset": {"name": "synthetic", "manifest_sha256": "", "classes": [str(c) for c in range(classes)]}}
    return FeatureSet(Path("synthetic"), {**meta, "feature_dim": dim}, splits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", help="a genssl feature file (default: synthetic features)")
    parser.add_argument("--train", type=int, default=45_000, help="synthetic train examples")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    features = load_feature_set(args.features) if args.features else synthetic(args.train, args.dim, args.classes)
    train, test = features.split("train"), features.split("test")
    print(
        f"{features.path}: {len(train.labels):,} train / {len(features.split('val').labels):,} val / "
        f"{len(test.labels):,} test, d = {features.dim}, {len(features.meta['dataset']['classes'])} classes; "
        f"{args.threads} threads"
    )

    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        default = LogisticRegression().fit(train.features, train.labels)
    baseline_seconds = time.perf_counter() - started
    baseline = float((default.predict(test.features) == test.labels).mean())
    converged = "not converged" if any(issubclass(w.category, ConvergenceWarning) for w in caught) else "converged"
    rows = [("sklearn default", baseline_seconds, baseline, f"C = 1, {converged}")]
    scale = Standardiser.fit(train.features)
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        standardised = LogisticRegression().fit(scale(train.features), train.labels)
    seconds = time.perf_counter() - started
    top1 = float((standardised.predict(scale(test.features)) == test.labels).mean())
    converged = "not converged" if any(issubclass(w.category, ConvergenceWarning) for w in caught) else "converged"
    rows.append(("sklearn default, std.", seconds, top1, f"C = 1 on standardised features, {converged}"))
    backends = [("sklearn", "cpu"), ("torch", "cpu")] + ([("torch", "cuda")] if torch.cuda.is_available() else [])
    for backend, device in backends:
        config = validate_config({"probe": {"backend": backend, "device": device}})
        started = time.perf_counter()
        result = logistic_probe(features, config)
        seconds = time.perf_counter() - started
        name = f"genssl ({backend})" if backend == "sklearn" else f"genssl (torch, {device})"
        rows.append((name, seconds, result["top1"], f"C = {result['selection']['C']:g} chosen on val"))
    print(f"{'probe':<22} {'seconds':>8} {'x default':>10} {'test top-1':>11} {'- default':>10}  notes")
    for name, seconds, top1, notes in rows:
        ratio = seconds / baseline_seconds
        print(f"{name:<22} {seconds:8.2f} {ratio:9.2f}x {top1:11.4f} {top1 - baseline:+10.4f}  {notes}")


if __name__ == "__main__":
    main()
