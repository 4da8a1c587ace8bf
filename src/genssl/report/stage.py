"""``genssl report``: the study's answer in ``results/report/`` (rule report).

``summary.md``: the "Claims" table first (each claim of the papers judged by its tested function on intervals over
seeds, :mod:`genssl.report.verdicts`), the study's settings, linear-probe and kNN top-1 per method x augmentation x
downstream dataset with each method's random init, trained − init per method, generative − standard paired by seed
with 95 % t intervals, the p sweep, the mode ablation, S-DIET next to the other methods with peak memory, CKA / OPD
against the generators' conditioning encoders (with the seed-to-seed yardstick), seed to seed and between each
method's standard and generative encoders, the runtime of every rule and the provenance. Besides it
``results.csv`` (tidy, :mod:`genssl.report.collect`), ``metrics.json`` (for ``dvc metrics``), ``provenance.json`` and
``figures/``: the augmentation preview grids, the training-loss curves, accuracy bars with error bars over seeds,
the p curve and the CKA / OPD heatmaps.
"""

import json
import logging
import os
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

from genssl.atomic import atomic_directory
from genssl.config import downstream_datasets
from genssl.report import figures, sections
from genssl.report.collect import (
    loss_curves,
    per_seed,
    pretrain_rows,
    probe_rows,
    provenance,
    similarity_pairs,
    similarity_rows,
    sweeps,
    write_rows,
)
from genssl.report.contents import HEATMAPS, report_figures
from genssl.report.statistics import mean_sd
from genssl.report.verdicts import claims
from genssl.stages import BENCHMARKS, PREVIEW, augment_dir, similarity_dir
from genssl.study import INIT, runs, seeds, used_generators

log = logging.getLogger(__name__)

#: The kinds of similarity pairs whose first-seed values metrics.json holds.
SHOWN_PAIRS = ("conditioning", "standard_vs_generative")


def metrics(config: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``metrics.json``: means over seeds of the probe's top-1 and kNN top-1 (initialisations included), the
    pretraining loss and peak memory, and CKA / OPD of the first seed's conditioning and standard-vs-generative
    pairs."""
    knn = f"knn{config['probe']['knn_k'][0]}_top1"
    out: dict[str, Any] = {"probe": {}, "pretrain": {}, "similarity": {}}
    for metric in ("top1", knn):
        for (method, augmentation, downstream), values in per_seed(rows, "probe", metric).items():
            entry = out["probe"].setdefault(downstream, {}).setdefault(f"{method}/{augmentation}", {})
            entry[metric] = round(mean_sd(list(values.values()))[0], 6)
    for metric in ("loss", "peak_memory_mib"):
        for (method, augmentation, _), values in per_seed(rows, "pretrain", metric).items():
            entry = out["pretrain"].setdefault(f"{method}/{augmentation}", {})
            entry[metric] = round(mean_sd(list(values.values()))[0], 6)
    first = seeds(config)[0]
    for row in rows:
        kind, metric = row["downstream"], row["metric"]
        if row["section"] == "similarity" and kind in SHOWN_PAIRS and metric in ("cka", "opd") and row["seed"] == first:
            name = f"{row['method']}/{row['augmentation']} vs {row['other']}"
            out["similarity"].setdefault(name, {})[metric] = round(row["value"], 6)
    return out


def _figures(config: dict[str, Any], root: Path, rows: list[dict[str, Any]], directory: Path) -> None:
    for generator in used_generators(config):
        shutil.copyfile(root / augment_dir(config, generator) / PREVIEW, directory / f"preview_{generator}.png")
    curves: dict[str, dict[str, list[list[float]]]] = defaultdict(lambda: defaultdict(list))
    for run, losses in loss_curves(config, root).items():
        curves[run.method][run.augmentation].append(losses)
    figures.loss_curves(directory / "loss_curves.png", curves, f"training loss on {config['pretrain']['dataset']}")
    methods, augmentations = sections.methods_and_augmentations(config)
    augmentations = [INIT, *augmentations]
    top1 = per_seed(rows, "probe", "top1")
    for downstream in downstream_datasets(config):
        values = {
            (m, a): [100 * v for v in top1.get((m, a, downstream), {}).values()] for m in methods for a in augmentations
        }
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
                    lines[label] = [
                        (p, [100 * v for v in top1[(method, name, downstream)].values()]) for p, name in group
                    ]
    if lines:
        figures.p_curve(directory / "p_curve.png", lines, "generative augmentation probability", "linear top-1 (%)")
    if (root / similarity_dir(config) / HEATMAPS[0]).is_file():
        for name in HEATMAPS:
            shutil.copyfile(root / similarity_dir(config) / name, directory / f"similarity_{name}")


def build_report(
    config: dict[str, Any], root: str | os.PathLike[str], out_dir: str | os.PathLike[str]
) -> dict[str, Any]:
    """Write the report of the study whose results are under ``root`` to ``out_dir`` (atomically); return the
    metrics."""
    root = Path(root)
    pairs = similarity_pairs(config, root)
    rows = probe_rows(config, root) + pretrain_rows(config, root) + similarity_rows(config, pairs)
    summary = "# genssl study report\n\n" + sections.claims_table(claims(config, rows, pairs))
    summary += "## Settings\n\n" + sections.header(config, root)
    summary += sections.probe_tables(config, rows, "top1", "Linear probe top-1 (%)")
    summary += sections.probe_tables(
        config, rows, f"knn{config['probe']['knn_k'][0]}_top1", f"kNN top-1 (%), k = {config['probe']['knn_k'][0]}"
    )
    summary += sections.learning_table(config, rows)
    summary += sections.delta_table(config, rows)
    summary += sections.sweep_tables(config, rows, "p", "p sweep")
    summary += sections.sweep_tables(config, rows, "mode", "Mode ablation")
    summary += sections.sdiet_table(config, rows)
    summary += sections.similarity_tables(config, root, pairs)
    summary += sections.runtime_table(root / BENCHMARKS)
    inputs = provenance(config, root)
    summary += sections.provenance_table(inputs)
    names = report_figures(config)
    summary += "## Figures\n\n" + "".join(f"![{name}](figures/{name})\n" for name in names)
    result = metrics(config, rows)
    with atomic_directory(out_dir) as tmp:
        (tmp / "figures").mkdir()
        _figures(config, root, rows, tmp / "figures")
        write_rows(tmp / "results.csv", rows)
        (tmp / "metrics.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        (tmp / "provenance.json").write_text(json.dumps(inputs, indent=2, sort_keys=True) + "\n")
        (tmp / "summary.md").write_text(summary)
    log.info("report of %d runs written to %s", len(runs(config)), out_dir)
    return result
