"""The study's results as tidy rows (``results.csv``: one row per observation) and the groupings the tables use.

A row is ``section, method, augmentation, seed, downstream, metric, value, other``:

- ``probe``: one row per metric of every probe result (``top1``, ``top5``, ``knn{k}_top1``, ``knn{k}_top5``), as a
  fraction of the downstream test split;
- ``pretrain``: the final epoch's ``loss``, ``seconds``, ``images_per_second`` and ``peak_memory_mib`` of every run
  (``other``: what the peak memory measures, :func:`genssl.devices.peak_memory`);
- ``similarity``: ``cka``, ``cka_debiased``, ``opd`` and their bootstrap bounds (``cka_low`` ...) for every pair of
  encoders, the first in method/augmentation, the second in ``other`` (``conditioning`` is the method of a
  generator's conditioning encoder, the generators sharing it, joined by ``+``, its augmentation); ``downstream``
  holds the pair's kind.
"""

import csv
import json
import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from genssl.config import downstream_datasets
from genssl.errors import GensslError
from genssl.provenance import code_version
from genssl.stages import METRICS, RUN_RECORD, pretrain_dir, probe_file, similarity_dir
from genssl.study import Run, runs

FIELDS = ("section", "method", "augmentation", "seed", "downstream", "metric", "value", "other")
#: The paper's order of the mode ablation: less standard augmentation first.
MODES = ("generative-only", "generative+crop", "generative+standard")


def _read_json(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise GensslError(f"{path}: missing; the report needs every result of the study (run the workflow first)")
    return json.loads(path.read_text())


def _row(section: str, run: Run | None, downstream: str, metric: str, value: float, other: str = "") -> dict[str, Any]:
    return {
        "section": section,
        "method": run.method if run else "",
        "augmentation": run.augmentation if run else "",
        "seed": run.seed if run else "",
        "downstream": downstream,
        "metric": metric,
        "value": float(value),
        "other": other,
    }


def probe_rows(config: dict[str, Any], root: Path) -> list[dict[str, Any]]:
    """The probe metrics of every run on every downstream dataset."""
    rows = []
    for run in runs(config):
        for downstream in downstream_datasets(config):
            result = _read_json(root / probe_file(config, run, downstream))
            rows += [_row("probe", run, downstream, m, result[m]) for m in ("top1", "top5")]
            for k, knn in result["knn"].items():
                rows += [_row("probe", run, downstream, f"knn{k}_{m}", knn[m]) for m in ("top1", "top5")]
    return rows


def pretrain_rows(config: dict[str, Any], root: Path) -> list[dict[str, Any]]:
    """The final figures of every pretraining run."""
    rows = []
    for run in runs(config):
        final = _read_json(root / pretrain_dir(config, run) / RUN_RECORD)["final"]
        rows += [_row("pretrain", run, "", m, final[m]) for m in ("loss", "seconds", "images_per_second")]
        rows.append(_row("pretrain", run, "", "peak_memory_mib", final["peak_memory_mib"], final["peak_memory_kind"]))
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
    for run in runs(config):
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


def _encoder(name: str, seed: int) -> Run:
    method, augmentation = name.split("/", 1)
    return Run(method, augmentation, seed, True)


def similarity_rows(config: dict[str, Any], root: Path) -> list[dict[str, Any]]:
    """Every pair of the similarity analysis with its statistics and bounds (empty without an analysis)."""
    directory = root / similarity_dir(config)
    if not (directory / "cka.csv").is_file():
        return []
    rows = []
    for name in ("cka.csv", "opd.csv"):
        with open(directory / name, newline="") as f:
            for pair in csv.DictReader(f):
                encoder = _encoder(pair["a"], config["seed"])
                for metric in (k for k in pair if k not in ("a", "b", "kind", "n")):
                    rows.append(_row("similarity", encoder, pair["kind"], metric, float(pair[metric]), pair["b"]))
    return rows


def write_rows(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """``results.csv``: the rows with their fields, values with 6 decimals."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({**row, "value": f"{row['value']:.6f}"} for row in rows)


def by_seed(rows: Iterable[dict[str, Any]], section: str, metric: str) -> dict[tuple[str, str, str], list[float]]:
    """``{(method, augmentation, downstream): [value per seed]}`` of one metric of one section (seed order)."""
    grouped: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for row in rows:
        if row["section"] == section and row["metric"] == metric:
            grouped[(row["method"], row["augmentation"], row["downstream"])].append(row["value"])
    return dict(grouped)


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def augmentation_key(augmentation: dict[str, Any], without: str) -> tuple[tuple[str, Any], ...]:
    """An augmentation's settings except ``without`` and ``methods``, hashable (to group sweeps)."""
    return tuple(sorted((k, json.dumps(v)) for k, v in augmentation.items() if k not in (without, "methods")))


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
