"""``genssl report``: the study's answer in ``results/report/`` (rule report).

``summary.md`` (tables: linear-probe and kNN top-1 per method x augmentation x downstream dataset, generative minus
standard, the p sweep, the mode ablation, S-DIET next to the other methods with peak memory, CKA / OPD against
the generators' conditioning encoders and between each method's standard and generative encoders, the runtime of
every rule), ``results.csv`` (tidy, :mod:`genssl.report.collect`), ``metrics.json`` (for ``dvc metrics``) and
``figures/``: the augmentation preview grids, the training-loss curves, accuracy bars with error bars over seeds,
the p curve and the CKA / OPD heatmaps. Every value is mean ± std over ``seeds`` when there are several.
"""

import csv
import json
import logging
import os
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

from genssl.atomic import atomic_directory
from genssl.config import downstream_datasets
from genssl.report import figures
from genssl.report.collect import (
    by_seed,
    loss_curves,
    mean_std,
    pretrain_rows,
    probe_rows,
    similarity_rows,
    sweeps,
    write_rows,
)
from genssl.report.contents import HEATMAPS, report_figures
from genssl.report.tables import markdown_table, number, percent, with_interval
from genssl.study import augment_dir, runs, seeds, similarity_dir, used_generators

log = logging.getLogger(__name__)

#: What the recorded peak memory measures (genssl.devices.peak_memory).
MEMORY_KINDS = {
    "cuda_allocated": "tensors on the GPU (torch.cuda.max_memory_allocated)",
    "cpu_rss": "the pretraining process's peak resident set on the CPU, interpreter and libraries included",
}


def _methods_and_augmentations(config: dict[str, Any]) -> tuple[list[str], list[str]]:
    order = sorted(config["augmentations"], key=lambda a: (a != "standard", a))
    present = {(run.method, run.augmentation) for run in runs(config)}
    return sorted(config["methods"]), [a for a in order if any(pair[1] == a for pair in present)]


def _probe_tables(config: dict[str, Any], rows: list[dict[str, Any]], metric: str, title: str) -> str:
    methods, augmentations = _methods_and_augmentations(config)
    values = by_seed(rows, "probe", metric)
    text = f"## {title}\n\n"
    for downstream in downstream_datasets(config):
        table = [[m] + [percent(values.get((m, a, downstream))) for a in augmentations] for m in methods]
        text += f"### {downstream}\n\n" + markdown_table(["method", *augmentations], table) + "\n"
    return text


def _deltas(config: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """Paired (same seed) differences generative - standard, per method, augmentation and downstream dataset."""
    top1, knn = by_seed(rows, "probe", "top1"), by_seed(rows, "probe", f"knn{config['probe']['knn_k'][0]}_top1")
    table = []
    for run in runs(config):
        if not run.primary or config["augmentations"][run.augmentation].get("generator") is None:
            continue
        for downstream in downstream_datasets(config):
            cells = []
            for values in (top1, knn):
                generative = values.get((run.method, run.augmentation, downstream), [])
                standard = values.get((run.method, "standard", downstream), [])
                differences = [g - s for g, s in zip(generative, standard, strict=False)]
                cells.append(number([100 * d for d in differences], 1) if differences else "—")
            table.append([run.method, run.augmentation, downstream, *cells])
    if not table:
        return ""
    header = [
        "method",
        "augmentation",
        "downstream",
        "Δ linear top-1",
        f"Δ kNN top-1 (k = {config['probe']['knn_k'][0]})",
    ]
    return "## Generative minus standard (percentage points)\n\n" + markdown_table(header, table) + "\n"


def _sweep_tables(config: dict[str, Any], rows: list[dict[str, Any]], key: str, title: str) -> str:
    values = by_seed(rows, "probe", "top1")
    text = ""
    for group in sweeps(config, key):
        members = {name for _, name in group}
        for method in sorted(config["methods"]):
            present = {r.augmentation for r in runs(config) if r.method == method}
            if not members <= present:
                continue
            generator = config["augmentations"][group[-1][1]]["generator"]
            table = [
                [str(value), name, *(percent(values.get((method, name, d))) for d in downstream_datasets(config))]
                for value, name in group
            ]
            header = [key, "augmentation", *downstream_datasets(config)]
            text += f"## {title}: {method}, {generator} (linear top-1, %)\n\n" + markdown_table(header, table, 2) + "\n"
            if key == "p" and group[0][1] == "standard":
                text += "p = 0 is the standard run: with p = 0 the generative pipeline is exactly the standard one.\n\n"
    return text


def _sdiet_table(config: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    if "sdiet" not in config["methods"]:
        return ""
    top1 = by_seed(rows, "probe", "top1")
    memory = by_seed(rows, "pretrain", "peak_memory_mib")
    seconds = by_seed(rows, "pretrain", "seconds")
    downstream = downstream_datasets(config)
    table = [
        [
            method,
            *(percent(top1.get((method, "standard", d))) for d in downstream),
            number(memory.get((method, "standard", "")), 0),
            number(seconds.get((method, "standard", "")), 1),
        ]
        for method in sorted(config["methods"], key=lambda m: (m != "sdiet", m))
    ]
    header = ["method (standard)", *(f"top-1 {d}" for d in downstream), "peak memory (MiB)", "pretraining (s)"]
    kinds = {row["other"] for row in rows if row["section"] == "pretrain" and row["metric"] == "peak_memory_mib"}
    described = [MEMORY_KINDS[kind] for kind in sorted(kinds)]
    return (
        "## S-DIET and the other methods\n\n"
        + markdown_table(header, table)
        + f"\nPeak memory: {'; '.join(described)}. S-DIET keeps its N x m head and its AdamW moments on disk, "
        "which matters at scale (benchmarks/sdiet_memory.py).\n\n"
    )


def _similarity_tables(config: dict[str, Any], root: Path) -> str:
    path = root / similarity_dir(config) / "cka.csv"
    if not path.is_file():
        return ""
    with open(path, newline="") as f:
        cka = list(csv.DictReader(f))
    with open(root / similarity_dir(config) / "opd.csv", newline="") as f:
        opd = {(row["a"], row["b"]): row for row in csv.DictReader(f)}
    matrices = json.loads((root / similarity_dir(config) / "matrices.json").read_text())
    text = (
        f"## Representation similarity ({matrices['dataset']} {matrices['split']}, n = {matrices['n']}, "
        f"{int(100 * matrices['confidence'])} % bootstrap intervals over {matrices['bootstrap']} resamples)\n\n"
    )
    for kind, title in (
        ("conditioning", "Against the generators' conditioning encoders"),
        ("standard_vs_generative", "Standard vs generative encoder of each method"),
    ):
        table = []
        for row in (r for r in cka if r["kind"] == kind):
            pair = opd[(row["a"], row["b"])]
            table.append(
                [
                    row["a"],
                    row["b"],
                    with_interval(float(row["cka"]), float(row["cka_low"]), float(row["cka_high"])),
                    with_interval(
                        float(row["cka_debiased"]), float(row["cka_debiased_low"]), float(row["cka_debiased_high"])
                    ),
                    with_interval(float(pair["opd"]), float(pair["opd_low"]), float(pair["opd_high"])),
                ]
            )
        if table:
            header = ["encoder", "compared with", "linear CKA", "debiased CKA", "Procrustes distance"]
            text += f"### {title}\n\n" + markdown_table(header, table, 2) + "\n"
    return (
        text
        + "The full matrices are in `similarity_cka.png`, `similarity_cka_debiased.png` and `similarity_opd.png`.\n\n"
    )


def runtime_table(benchmarks: Path) -> str:
    """Per rule: jobs, total and longest wall time, largest peak RSS, from Snakemake's benchmark files."""
    per_rule: dict[str, list[dict[str, str]]] = defaultdict(list)
    for path in sorted(benchmarks.glob("*/**/*.tsv")):
        with open(path, newline="") as f:
            per_rule[path.relative_to(benchmarks).parts[0]].extend(csv.DictReader(f, delimiter="\t"))
    if not per_rule:
        return ""
    table = []
    for rule, entries in sorted(per_rule.items()):
        wall = [float(e["s"]) for e in entries]
        rss = [float(e["max_rss"]) for e in entries if e.get("max_rss") not in (None, "", "NA", "-")]
        table.append(
            [rule, str(len(entries)), f"{sum(wall):.1f}", f"{max(wall):.1f}", f"{max(rss):.0f}" if rss else "—"]
        )
    header = ["rule", "jobs", "total wall (s)", "longest job (s)", "largest peak RSS (MiB)"]
    return "## Runtime per rule (Snakemake benchmark files)\n\n" + markdown_table(header, table) + "\n"


def metrics(config: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``metrics.json``: means over seeds of the probe's top-1 and kNN top-1, the pretraining loss and peak memory,
    and CKA / OPD of the conditioning and standard-vs-generative pairs."""
    knn = f"knn{config['probe']['knn_k'][0]}_top1"
    out: dict[str, Any] = {"probe": {}, "pretrain": {}, "similarity": {}}
    for metric in ("top1", knn):
        for (method, augmentation, downstream), values in by_seed(rows, "probe", metric).items():
            entry = out["probe"].setdefault(downstream, {}).setdefault(f"{method}/{augmentation}", {})
            entry[metric] = round(mean_std(values)[0], 6)
    for metric in ("loss", "peak_memory_mib"):
        for (method, augmentation, _), values in by_seed(rows, "pretrain", metric).items():
            out["pretrain"].setdefault(f"{method}/{augmentation}", {})[metric] = round(mean_std(values)[0], 6)
    for row in rows:
        if row["section"] == "similarity" and row["downstream"] != "cross" and row["metric"] in ("cka", "opd"):
            name = f"{row['method']}/{row['augmentation']} vs {row['other']}"
            out["similarity"].setdefault(name, {})[row["metric"]] = round(row["value"], 6)
    return out


def _figures(config: dict[str, Any], root: Path, rows: list[dict[str, Any]], directory: Path) -> None:
    for generator in used_generators(config):
        shutil.copyfile(root / augment_dir(config, generator) / "preview.png", directory / f"preview_{generator}.png")
    curves: dict[str, dict[str, list[list[float]]]] = defaultdict(lambda: defaultdict(list))
    for run, losses in loss_curves(config, root).items():
        curves[run.method][run.augmentation].append(losses)
    figures.loss_curves(directory / "loss_curves.png", curves, f"training loss on {config['pretrain']['dataset']}")
    methods, augmentations = _methods_and_augmentations(config)
    top1 = by_seed(rows, "probe", "top1")
    for downstream in downstream_datasets(config):
        values = {(m, a): [100 * v for v in top1.get((m, a, downstream), [])] for m in methods for a in augmentations}
        shown = [a for a in augmentations if sum(bool(values[(m, a)]) for m in methods) > 1] or augmentations
        figures.accuracy_bars(
            directory / f"accuracy_{downstream}.png",
            methods,
            shown,
            values,
            f"linear probe on {downstream}",
            "top-1 (%)",
        )
    lines: dict[str, list[tuple[float, list[float]]]] = {}
    for group in sweeps(config, "p"):
        generator = config["augmentations"][group[-1][1]]["generator"]
        for method in sorted(config["methods"]):
            present = {r.augmentation for r in runs(config) if r.method == method}
            if {name for _, name in group} <= present:
                for downstream in downstream_datasets(config):
                    label = f"{method}, {generator}, {downstream}"
                    lines[label] = [(p, [100 * v for v in top1[(method, name, downstream)]]) for p, name in group]
    if lines:
        figures.p_curve(directory / "p_curve.png", lines, "generative augmentation probability", "linear top-1 (%)")
    if (root / similarity_dir(config) / HEATMAPS[0]).is_file():
        for name in HEATMAPS:
            shutil.copyfile(root / similarity_dir(config) / name, directory / f"similarity_{name}")


def _header(config: dict[str, Any]) -> str:
    pretrain = config["pretrain"]
    backbone = pretrain["backbone"]
    size = f"width {backbone['width']}, blocks {backbone['blocks']}" if backbone["name"] == "small_resnet" else ""
    generators = ", ".join(
        f"`{g}` ({config['generators'][g]['backend']}, K = {config['generators'][g]['variants']})"
        for g in used_generators(config)
    )
    image_size = config["datasets"][pretrain["dataset"]]["image_size"]
    return (
        "# genssl study report\n\n"
        f"- pretraining: `{pretrain['dataset']}` at {image_size} px, {pretrain['epochs']} epochs, batch "
        f"{pretrain['batch_size']}, backbone {backbone['name']} {f'({size})' if size else ''}; seeds {seeds(config)}\n"
        f"- generators: {generators or 'none'}\n"
        f"- downstream datasets: {', '.join(downstream_datasets(config))}; accuracies on each test split "
        f"(linear probe: protocol `{config['probe']['protocol']}`; kNN: cosine, k = {config['probe']['knn_k'][0]})\n"
        "- with several seeds: mean ± sample standard deviation over them\n\n"
    )


def build_report(
    config: dict[str, Any], root: str | os.PathLike[str], out_dir: str | os.PathLike[str]
) -> dict[str, Any]:
    """Write the report of the study whose results are under ``root`` to ``out_dir`` (atomically); return the
    metrics."""
    root = Path(root)
    rows = probe_rows(config, root) + pretrain_rows(config, root) + similarity_rows(config, root)
    summary = _header(config)
    summary += _probe_tables(config, rows, "top1", "Linear probe top-1 (%)")
    summary += _probe_tables(
        config, rows, f"knn{config['probe']['knn_k'][0]}_top1", f"kNN top-1 (%), k = {config['probe']['knn_k'][0]}"
    )
    summary += _deltas(config, rows)
    summary += _sweep_tables(config, rows, "p", "p sweep")
    summary += _sweep_tables(config, rows, "mode", "Mode ablation")
    summary += _sdiet_table(config, rows)
    summary += _similarity_tables(config, root)
    summary += runtime_table(root / "benchmarks")
    names = report_figures(config)
    summary += "## Figures\n\n" + "".join(f"![{name}](figures/{name})\n" for name in names)
    result = metrics(config, rows)
    with atomic_directory(out_dir) as tmp:
        (tmp / "figures").mkdir()
        _figures(config, root, rows, tmp / "figures")
        write_rows(tmp / "results.csv", rows)
        (tmp / "metrics.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        (tmp / "summary.md").write_text(summary)
    log.info("report of %d runs written to %s", len(runs(config)), out_dir)
    return result
