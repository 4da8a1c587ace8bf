"""``genssl similarity``: CKA and orthogonal Procrustes distance between the study's encoders (rule similarity).

The encoders are compared on a fixed evaluation set, the ``similarity.split`` of ``similarity.dataset``: the
feature files of every pretraining run of every seed (``{method}/{run directory}``: ``simclr/standard``,
``simclr/standard-seed1``) and of every generator's conditioning encoder (``conditioning/{generator}``, or
``conditioning/{generator}+{generator}`` for generators that share one: :func:`genssl.stages.conditioning_encoders`),
aligned example by example (:func:`genssl.evaluate.feature_file.aligned`). For every pair of encoders: linear CKA,
biased and debiased, and OPD (:mod:`.pairwise`), and with ``similarity.minibatch_size`` also minibatch CKA.

The seeded bootstrap interval over examples (:mod:`.bootstrap`) is computed for the pairs of *first-seed* encoders
(the runs of the study's first seed and the conditioning encoders): it covers the sampling of test examples only,
not the training run, which the report's intervals over seeds cover, so the replicate seeds' pairs get their values
without one (empty bounds; ``null`` in ``matrices.json``), and the analysis' cost stays that of one seed.

Each pair has a kind: ``conditioning`` (an encoder vs a generator's conditioning encoder: did the SSL encoder copy
it?), ``standard_vs_generative`` (one method and seed with standard and with generative augmentation),
``seed_to_seed`` (one method and augmentation, two seeds: what "similar" means between independent runs) and
``cross`` (the rest of the full matrix).

Writes into ``results/similarity/{dataset}/``: ``cka.csv`` and ``opd.csv`` (one row per pair), ``matrices.json``
(the encoders in order and the E x E matrices with their interval bounds) and the heatmaps ``cka.png``,
``cka_debiased.png`` and ``opd.png`` of the first-seed encoders.
"""

import csv
import io
import json
import logging
import os
from typing import Any

import numpy as np
import torch

from genssl.atomic import atomic_directory
from genssl.evaluate.feature_file import aligned, load_feature_set
from genssl.evaluate.similarity.bootstrap import bootstrap_intervals
from genssl.evaluate.similarity.cka import minibatch_cka
from genssl.evaluate.similarity.heatmap import save_heatmap
from genssl.evaluate.similarity.pairwise import STATISTICS, similarity_matrices
from genssl.provenance import record
from genssl.seeding import derive_seed
from genssl.stages import config_slice, similarity_keys
from genssl.store.manifest import sha256_file
from genssl.study import REPLICATE

log = logging.getLogger(__name__)

#: The prefix of conditioning encoders' names.
CONDITIONING = "conditioning/"
#: The range of each statistic (the intervals are clipped to it).
BOUNDS = {"cka": (0.0, 1.0), "cka_debiased": (None, 1.0), "opd": (0.0, 2.0)}
#: Heatmap titles and colour ranges per statistic.
HEATMAPS = {
    "cka": ("linear CKA", 0.0, 1.0),
    "cka_debiased": ("linear CKA (debiased)", 0.0, 1.0),
    "opd": ("orthogonal Procrustes distance", 0.0, 2.0),
}


def _run(name: str) -> tuple[str, str, str | None]:
    """``(method, augmentation, replicate seed or None)`` of an encoder named ``method/run directory``."""
    method, directory = name.split("/", 1)
    match = REPLICATE.match(directory)
    if match is None:
        raise ValueError(f"encoder {name!r}: not method/run directory (augmentation[-seedN]) or conditioning/...")
    return method, match["augmentation"], match["seed"]


def is_replicate(name: str) -> bool:
    """Whether the encoder ``name`` is a run of a replicate seed (``method/{augmentation}-seed{s}``)."""
    return not name.startswith(CONDITIONING) and _run(name)[2] is not None


def pair_kind(a: str, b: str) -> str:
    """``conditioning``, ``standard_vs_generative``, ``seed_to_seed`` or ``cross`` (module docstring) for encoders
    named ``method/run directory`` or ``conditioning/generator``."""
    if a.startswith(CONDITIONING) or b.startswith(CONDITIONING):
        return "conditioning"
    (method_a, aug_a, seed_a), (method_b, aug_b, seed_b) = _run(a), _run(b)
    if method_a == method_b and aug_a == aug_b:
        return "seed_to_seed"
    if method_a == method_b and seed_a == seed_b and "standard" in (aug_a, aug_b):
        return "standard_vs_generative"
    return "cross"


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    """CSV text; floats with 6 decimals, NaN (no interval) as an empty cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.6f}"
    return value


def _listed(matrix: np.ndarray) -> list[list[float | None]]:
    """A matrix as nested lists, NaN (no interval) as ``None`` (JSON ``null``)."""
    return [[None if np.isnan(v) else float(v) for v in row] for row in matrix]


def _first_seed_intervals(
    config: dict[str, Any], features: list[torch.Tensor], point: dict[str, np.ndarray], first: list[int]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Bootstrap bounds (module docstring) of the pairs among the encoders ``first``, NaN for every other pair."""
    settings = config["similarity"]
    count = len(features)
    bounds = {name: (np.full((count, count), np.nan), np.full((count, count), np.nan)) for name in STATISTICS}
    if len(first) < 2:
        return bounds
    block = np.ix_(first, first)
    chosen = [features[i] for i in first]
    intervals = bootstrap_intervals(
        lambda rows: similarity_matrices(chosen, rows),
        {name: matrix[block] for name, matrix in point.items()},
        len(features[0]),
        settings["bootstrap"],
        config["seed"],
        settings["confidence"],
        BOUNDS,
    )
    for name, (low, high) in intervals.items():
        bounds[name][0][block], bounds[name][1][block] = low, high
    return bounds


def run_similarity(
    config: dict[str, Any], encoders: dict[str, str | os.PathLike[str]], out_dir: str | os.PathLike[str]
) -> dict[str, Any]:
    """Compare the encoders ``{name: feature file}`` (module docstring); write ``out_dir`` atomically and return
    the content of ``matrices.json``."""
    settings = config["similarity"]
    names = list(encoders)
    if len(names) < 2:
        raise ValueError(f"the similarity analysis needs at least two encoders, got {names}")
    feature_sets = [load_feature_set(encoders[name]) for name in names]
    features = [torch.from_numpy(f) for f in aligned(feature_sets, settings["split"])]
    n = len(features[0])
    point = similarity_matrices(features)
    first = [i for i, name in enumerate(names) if not is_replicate(name)]
    intervals = _first_seed_intervals(config, features, point, first)
    pairs = [(i, j) for i in range(len(names)) for j in range(i + 1, len(names))]
    minibatch = None
    if settings["minibatch_size"] is not None:
        minibatch = np.eye(len(names))
        for i, j in pairs:
            generator = torch.Generator().manual_seed(derive_seed(config["seed"], "minibatch_cka"))
            minibatch[i, j] = minibatch[j, i] = minibatch_cka(
                features[i], features[j], settings["minibatch_size"], generator
            )

    def row(i: int, j: int, statistics: tuple[str, ...]) -> list[Any]:
        values: list[Any] = [names[i], names[j], pair_kind(names[i], names[j]), n]
        for name in statistics:
            values += [point[name][i, j], intervals[name][0][i, j], intervals[name][1][i, j]]
        return values

    cka_header = [
        "a",
        "b",
        "kind",
        "n",
        "cka",
        "cka_low",
        "cka_high",
        "cka_debiased",
        "cka_debiased_low",
        "cka_debiased_high",
    ]
    cka_rows = [
        row(i, j, ("cka", "cka_debiased")) + ([minibatch[i, j]] if minibatch is not None else []) for i, j in pairs
    ]
    if minibatch is not None:
        cka_header.append("cka_minibatch")
    opd_rows = [row(i, j, ("opd",)) for i, j in pairs]
    result = {
        "encoders": names,
        "provenance": record(
            config_slice(config, similarity_keys(config)),
            {name: sha256_file(f.path) for name, f in zip(names, feature_sets, strict=True)},
        ),
        "dataset": feature_sets[0].meta["dataset"]["name"],
        "split": settings["split"],
        "n": n,
        "bootstrap": settings["bootstrap"],
        "confidence": settings["confidence"],
        "matrices": {
            name: {
                "value": point[name].tolist(),
                "low": _listed(intervals[name][0]),
                "high": _listed(intervals[name][1]),
            }
            for name in STATISTICS
        },
    }
    if minibatch is not None:
        result["matrices"]["cka_minibatch"] = {
            "value": minibatch.tolist(),
            "minibatch_size": settings["minibatch_size"],
        }
    with atomic_directory(out_dir) as tmp:
        (tmp / "cka.csv").write_text(_csv(cka_header, cka_rows))
        (tmp / "opd.csv").write_text(_csv(["a", "b", "kind", "n", "opd", "opd_low", "opd_high"], opd_rows))
        (tmp / "matrices.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        shown = first if len(first) >= 2 else list(range(len(names)))
        for name, (title, low, high) in HEATMAPS.items():
            save_heatmap(
                tmp / f"{name}.png",
                point[name][np.ix_(shown, shown)],
                [names[i] for i in shown],
                f"{title}, {result['dataset']} {settings['split']} (n = {n}), first seed",
                low,
                high,
            )
    for i, j in pairs:
        if pair_kind(names[i], names[j]) == "conditioning":
            log.info("%s vs %s: CKA %.3f, OPD %.3f", names[i], names[j], point["cka"][i, j], point["opd"][i, j])
    return result
