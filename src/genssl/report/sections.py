"""The sections of the report's ``summary.md``, each a function of the configuration and the study's tidy rows
(:mod:`genssl.report.collect`) or files, returning Markdown ("" when the study has nothing for it)."""

import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from genssl.config import downstream_datasets
from genssl.report.collect import by_seed, sweeps
from genssl.report.tables import markdown_table, number, percent, with_interval
from genssl.stages import data_dir, similarity_dir
from genssl.store.manifest import read_manifest
from genssl.study import runs, seeds, used_generators
from genssl.train.plan import StepPlan

#: What the recorded peak memory measures (genssl.devices.peak_memory).
MEMORY_KINDS = {
    "cuda_allocated": "tensors on the GPU (torch.cuda.max_memory_allocated)",
    "cpu_rss": "the pretraining process's peak resident set on the CPU, interpreter and libraries included",
}


def methods_and_augmentations(config: dict[str, Any]) -> tuple[list[str], list[str]]:
    order = sorted(config["augmentations"], key=lambda a: (a != "standard", a))
    present = {(run.method, run.augmentation) for run in runs(config)}
    return sorted(config["methods"]), [a for a in order if any(pair[1] == a for pair in present)]


def probe_tables(config: dict[str, Any], rows: list[dict[str, Any]], metric: str, title: str) -> str:
    methods, augmentations = methods_and_augmentations(config)
    values = by_seed(rows, "probe", metric)
    text = f"## {title}\n\n"
    for downstream in downstream_datasets(config):
        table = [[m] + [percent(values.get((m, a, downstream))) for a in augmentations] for m in methods]
        text += f"### {downstream}\n\n" + markdown_table(["method", *augmentations], table) + "\n"
    return text


def delta_table(config: dict[str, Any], rows: list[dict[str, Any]]) -> str:
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


def sweep_tables(config: dict[str, Any], rows: list[dict[str, Any]], key: str, title: str) -> str:
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


def sdiet_table(config: dict[str, Any], rows: list[dict[str, Any]]) -> str:
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


def similarity_tables(config: dict[str, Any], root: Path) -> str:
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


def header(config: dict[str, Any], root: Path) -> str:
    """The study's settings, with each method's step plan (:class:`~genssl.train.plan.StepPlan`: its own batch,
    peak lr and steps)."""
    pretrain = config["pretrain"]
    backbone = pretrain["backbone"]
    size = f"width {backbone['width']}, blocks {backbone['blocks']}" if backbone["name"] == "small_resnet" else ""
    generators = ", ".join(
        f"`{g}` ({config['generators'][g]['backend']}, K = {config['generators'][g]['variants']})"
        for g in used_generators(config)
    )
    image_size = config["datasets"][pretrain["dataset"]]["image_size"]
    num_train = read_manifest(root / data_dir(pretrain["dataset"]))["splits"]["train"]["n"]
    plans = []
    for method in sorted(config["methods"]):
        plan = StepPlan.resolve(config, method, num_train)
        optimizer = config["methods"][method]["optimizer"]
        plans.append([method, str(plan.batch_size), f"{plan.lr:.4g}", optimizer, str(plan.total_steps)])
    return (
        "# genssl study report\n\n"
        f"- pretraining: `{pretrain['dataset']}` at {image_size} px ({num_train} training images), "
        f"{pretrain['epochs']} epochs, backbone {backbone['name']} {f'({size})' if size else ''}; "
        f"seeds {seeds(config)}\n"
        f"- generators: {generators or 'none'}\n"
        f"- downstream datasets: {', '.join(downstream_datasets(config))}; accuracies on each test split "
        f"(linear probe: protocol `{config['probe']['protocol']}`; kNN: cosine, k = {config['probe']['knn_k'][0]})\n"
        "- with several seeds: mean ± sample standard deviation over them\n\n"
        + markdown_table(["method", "batch", "peak lr", "optimiser", "steps"], plans)
        + "\n"
    )


def provenance_table(inputs: dict[str, Any]) -> str:
    """Per run, the code version and the content identity (first 12 hex digits of the SHA-256) of the data and
    variant stores it was trained on (``provenance.json`` holds every input of every result in full); a warning when
    the runs disagree on the data store."""
    table, data = [], set()
    for name, run in inputs["runs"].items():
        recorded = run.get("inputs", {})
        data.add(recorded.get("data"))
        table.append(
            [
                name,
                str(run["seed"]),
                run.get("code", "—"),
                *((recorded.get(k) or "—")[:12] for k in ("data", "variants")),
            ]
        )
    text = f"## Provenance (report by genssl {inputs['code']})\n\n"
    text += markdown_table(["run", "seed", "code", "data store", "variant store"], table, 3) + "\n"
    if len(data) > 1:
        text += "**Warning: the runs were trained on different data stores (see provenance.json).**\n\n"
    return text
