"""The study's results as tidy rows (``results.csv``: one row per observation) and the groupings the tables use.

A row is ``section, method, augmentation, seed, downstream, metric, value, other``:

- ``probe``: one row per metric of every probe result (``top1``, ``top5``, ``knn{k}_top1``, ``knn{k}_top5``), as a
  fraction of the downstream test split, of every run and of every method's initialisation (augmentation ``init``);
- ``pretrain``: the final epoch's ``loss``, ``seconds``, ``images_per_second`` and ``peak_memory_mib`` of every run
  (``other``: what the peak memory measures, :func:`genssl.devices.peak_memory`);
- ``similarity``: ``cka``, ``cka_debiased``, ``opd`` and their bootstrap bounds (``cka_low`` ...; first-seed pairs
  only) for every pair of encoders, the first in method/augmentation/seed, the second's name in ``other``
  (``conditioning`` is the method of a generator's conditioning encoder, the generators sharing it, joined by ``+``,
  its augmentation, without a seed); ``downstream`` holds the pair's kind.

The tables read values per seed, ``{seed: value}`` (:func:`per_seed`), which :mod:`genssl.report.statistics` turns
into means, sds and intervals over seeds.
"""

import csv
import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from genssl.config import downstream_datasets
from genssl.errors import GensslError
from genssl.provenance import code_version
from genssl.stages import METRICS, RUN_RECORD, pretrain_dir, probe_file, similarity_dir
from genssl.study import CONDITIONING, Run, evaluated_runs, run_from_directory, runs

#: What the recorded peak memory measures (genssl.devices.peak_memory).
MEMORY_KINDS = {
    "cuda_allocated": "tensors on the GPU (torch.cuda.max_memory_allocated)",
    "cpu_rss": "the pretraining process's peak resident set on the CPU, interpreter and libraries included",
}
FIELDS = ("section", "method", "augmentation", "seed", "downstream", "metric", "value", "other")
#: The paper's order of the mode ablation: less standard augmentation first.
MODES = ("generative-only", "generative+crop", "generative+standard")


def _read_json(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise GensslError(f"{path}: missing; the report needs every result of the study (run the workflow first)")
    return json.loads(path.read_text())


#: Who an observation is about: ``(method, augmentation, seed)`` (seed "" for a conditioning encoder).
Subject = tuple[str, str, int | str]


def _subject(run: Run) -> Subject:
    return run.method, run.augmentation, run.seed


def _row(section: str, subject: Subject, downstream: str, metric: str, value: float, other: str = "") -> dict[str, Any]:
    method, augmentation, seed = subject
    return {
        "section": section,
        "method": method,
        "augmentation": augmentation,
        "seed": seed,
        "downstream": downstream,
        "metric": metric,
        "value": float(value),
        "other": other,
    }


def probe_rows(config: dict[str, Any], root: Path) -> list[dict[str, Any]]:
    """The probe metrics of every run and initialisation on every downstream dataset."""
    rows = []
    for run in evaluated_runs(config):
        for downstream in downstream_datasets(config):
            result = _read_json(root / probe_file(config, run, downstream))
            rows += [_row("probe", _subject(run), downstream, m, result[m]) for m in ("top1", "top5")]
            for k, knn in result["knn"].items():
                rows += [_row("probe", _subject(run), downstream, f"knn{k}_{m}", knn[m]) for m in ("top1", "top5")]
    return rows


def pretrain_rows(config: dict[str, Any], root: Path) -> list[dict[str, Any]]:
    """The final figures of every pretraining run."""
    rows = []
    for run in runs(config):
        final = _read_json(root / pretrain_dir(config, run) / RUN_RECORD)["final"]
        subject = _subject(run)
        rows += [_row("pretrain", subject, "", m, final[m]) for m in ("loss", "seconds", "images_per_second")]
        memory, kind = final["peak_memory_mib"], final["peak_memory_kind"]
        rows.append(_row("pretrain", subject, "", "peak_memory_mib", memory, kind))
    return rows


def provenance(config: dict[str, Any], root: Path) -> dict[str, Any]:
    """What every result of the report was computed from (``provenance.json``): per run the code version and input
    identities of its ``run.json``, per probe result those of its JSON, and the similarity analysis' feature files;
    the report's own code version."""
    runs_ = {}
    for run in runs(config):
        record = _read_json(root / pretrain_dir(config, run) / RUN_RECORD)
        runs_[run.name] = {"seed": run.seed, **record.get("provenance", {})}
    probes = {}
    for run in evaluated_runs(config):
        for downstream in downstream_datasets(config):
            probes[f"{run.name}/{downstream}"] = _read_json(root / probe_file(config, run, downstream)).get(
                "provenance"
            )
    matrices = root / similarity_dir(config) / "matrices.json"
    similarity = _read_json(matrices).get("provenance") if matrices.is_file() else None
    return {"code": code_version(), "runs": runs_, "probes": probes, "similarity": similarity}


def loss_curves(config: dict[str, Any], root: Path) -> dict[Run, list[float]]:
    """The per-epoch mean training loss of every run (metrics.csv)."""
    curves = {}
    for run in runs(config):
        path = root / pretrain_dir(config, run) / METRICS
        if not path.is_file():
            raise GensslError(f"{path}: missing; the report needs every result of the study (run the workflow first)")
        with open(path, newline="") as f:
            curves[run] = [float(row["loss"]) for row in csv.DictReader(f)]
    return curves


def encoder_run(config: dict[str, Any], name: str) -> Run | None:
    """The run of the similarity analysis' encoder ``name`` (``method/run directory``); ``None`` for a conditioning
    encoder."""
    method, directory = name.split("/", 1)
    return None if method == CONDITIONING else run_from_directory(method, directory, config)


#: A pair of the similarity analysis, ``(a, b)`` as its CSV lists them.
Pair = tuple[str, str]


def similarity_pairs(config: dict[str, Any], root: Path) -> dict[Pair, dict[str, Any]]:
    """``{(a, b): {"kind": ..., "n": ..., "cka": ..., "cka_low": ..., "opd": ...}}`` of ``cka.csv`` and ``opd.csv``
    (empty without an analysis); values as floats, bounds left out where the pair has none."""
    directory = root / similarity_dir(config)
    if not (directory / "cka.csv").is_file():
        return {}
    pairs: dict[Pair, dict[str, Any]] = {}
    for name in ("cka.csv", "opd.csv"):
        with open(directory / name, newline="") as f:
            for row in csv.DictReader(f):
                entry = pairs.setdefault((row["a"], row["b"]), {"kind": row["kind"], "n": int(row["n"])})
                entry.update({k: float(v) for k, v in row.items() if k not in ("a", "b", "kind", "n") and v != ""})
    return pairs


def pair_value(pairs: dict[Pair, dict[str, Any]], a: str, b: str, metric: str) -> float:
    """``metric`` of the pair of encoders ``a`` and ``b``, in either order."""
    entry = pairs.get((a, b)) or pairs.get((b, a))
    if entry is None or metric not in entry:
        raise GensslError(f"the similarity analysis has no {metric} of {a} and {b}; rerun it (rule similarity)")
    return entry[metric]


def similarity_rows(config: dict[str, Any], pairs: dict[Pair, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every pair of the similarity analysis with its statistics and bounds."""
    rows = []
    for (a, b), entry in pairs.items():
        run = encoder_run(config, a)
        subject = _subject(run) if run is not None else (*a.split("/", 1), "")
        for metric, value in entry.items():
            if metric not in ("kind", "n"):
                rows.append(_row("similarity", subject, entry["kind"], metric, value, b))
    return rows


def write_rows(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """``results.csv``: the rows with their fields, values with 6 decimals."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({**row, "value": f"{row['value']:.6f}"} for row in rows)


#: Per-seed values of one metric of one run setting: ``{(method, augmentation, downstream): {seed: value}}``.
PerSeedTable = dict[tuple[str, str, str], dict[int, float]]


def per_seed(rows: Iterable[dict[str, Any]], section: str, metric: str) -> PerSeedTable:
    """``{(method, augmentation, downstream): {seed: value}}`` of one metric of one section."""
    grouped: PerSeedTable = defaultdict(dict)
    for row in rows:
        if row["section"] == section and row["metric"] == metric:
            grouped[(row["method"], row["augmentation"], row["downstream"])][int(row["seed"])] = row["value"]
    return dict(grouped)


def augmentation_key(augmentation: dict[str, Any], without: str) -> tuple[tuple[str, Any], ...]:
    """An augmentation's settings except ``without``, ``methods`` and ``seeds``, hashable (to group sweeps)."""
    left_out = (without, "methods", "seeds")
    return tuple(sorted((k, json.dumps(v)) for k, v in augmentation.items() if k not in left_out))


def sweeps(config: dict[str, Any], key: str) -> list[list[tuple[Any, str]]]:
    """Groups of generative augmentations that differ only in ``key`` (``p`` or ``mode``), each sorted by the
    key's value as ``[(value, augmentation name), ...]``, with at least two values. A ``p`` sweep without p = 0
    gets ``standard`` as its p = 0 point: p = 0 trains exactly the standard pipeline."""
    groups: dict[tuple[tuple[str, Any], ...], list[tuple[Any, str]]] = defaultdict(list)
    for name, augmentation in sorted(config["augmentations"].items()):
        if augmentation.get("generator") is not None:
            groups[augmentation_key(augmentation, key)].append((augmentation[key], name))
    out = []
    for members in groups.values():
        if len({value for value, _ in members}) < 2:
            continue
        if key == "p" and all(value != 0 for value, _ in members) and "standard" in config["augmentations"]:
            members = [(0.0, "standard"), *members]
        order = (lambda m: MODES.index(m[0])) if key == "mode" else (lambda m: m[0])
        out.append(sorted(members, key=order))
    return sorted(out, key=lambda group: group[-1][1])
