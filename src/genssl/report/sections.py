"""The sections of the report's ``summary.md``, each a function of the configuration and the study's tidy rows
(:mod:`genssl.report.collect`) or files, returning Markdown ("" when the study has nothing for it).

Values over seeds are mean ± sample sd; differences are paired by seed (same initialisation and data order) and
shown with their 95 % Student t interval over seeds (:mod:`genssl.report.statistics`). A setting run with one seed
has neither, and says so.
"""

import csv
import json
from collections import defaultdict
from collections.abc import Mapping
from itertools import combinations
from pathlib import Path
from typing import Any

from genssl.config import downstream_datasets
from genssl.report.collect import MEMORY_KINDS, Pair, PerSeedTable, pair_value, per_seed, sweeps
from genssl.report.statistics import Estimate, estimate, paired_difference
from genssl.report.tables import markdown_table, number, percent, with_interval
from genssl.report.verdicts import Judged, untested
from genssl.stages import conditioning_encoders, data_dir, similarity_dir
from genssl.store.manifest import read_manifest
from genssl.study import (
    CONDITIONING,
    INIT,
    augmentation_seeds,
    conditioning_run,
    runs,
    seeds,
    separate_conditioning_runs,
    used_generators,
)
from genssl.train.plan import StepPlan

#: The column of the methods' initialisations in the probe tables.
INIT_LABEL = "random init"


def methods_and_augmentations(config: dict[str, Any]) -> tuple[list[str], list[str]]:
    order = sorted(config["augmentations"], key=lambda a: (a != "standard", a))
    present = {(run.method, run.augmentation) for run in runs(config)}
    return sorted(config["methods"]), [a for a in order if any(pair[1] == a for pair in present)]


def fewer_seeds(config: dict[str, Any]) -> dict[str, list[int]]:
    """The augmentations trained with fewer seeds than the study (ablations), with their seeds."""
    study = seeds(config)
    trained = {a: augmentation_seeds(config, a) for a in sorted(config["augmentations"])}
    return {a: chosen for a, chosen in trained.items() if chosen != study}


def label(config: dict[str, Any], augmentation: str) -> str:
    """An augmentation's column label: its name, with its seeds when it has fewer than the study."""
    reduced = fewer_seeds(config).get(augmentation)
    if reduced is None:
        return augmentation
    return f"{augmentation} (seed{'s' if len(reduced) > 1 else ''} {', '.join(map(str, reduced))})"


def _points(value: Estimate) -> str:
    return value.describe(scale=100, digits=1, signed=True)


def claims_table(judged: list[Judged]) -> str:
    """The "Claims" table: claim, where it was measured, the evidence with its intervals, the verdict."""
    if not judged:
        return ""
    table = [[j.result.claim, j.on, j.result.evidence, f"**{j.result.verdict}**"] for j in judged]
    header = ["claim", "on", "evidence (95 % t intervals over seeds)", "verdict"]
    text = "## Claims\n\n" + markdown_table(header, table, text_columns=4)
    text += (
        "\nA verdict needs intervals over training runs (seeds): *supported* when every interval clears the claim's "
        "threshold, *contradicted* when one falls on the other side, otherwise *inconclusive at this scale* (an "
        "interval that crosses it, or a comparison run with one seed, which has no interval). The rules are "
        "`genssl.report.claims`; several intervals read at once can cross a threshold by chance (16 % for seven "
        "methods when nothing differs), so the evidence lists every interval.\n"
    )
    missing = untested(judged)
    if missing:
        text += f"\nNot tested by this study's configuration (no runs for them): {'; '.join(missing)}.\n"
    return text + "\n"


def probe_tables(config: dict[str, Any], rows: list[dict[str, Any]], metric: str, title: str) -> str:
    """Per downstream dataset, mean ± sd over seeds of every method's initialisation and runs."""
    methods, augmentations = methods_and_augmentations(config)
    values = per_seed(rows, "probe", metric)
    header = ["method", INIT_LABEL, *(label(config, a) for a in augmentations)]
    text = f"## {title}\n\n"
    for downstream in downstream_datasets(config):
        table = [[m, *(percent(values.get((m, a, downstream))) for a in (INIT, *augmentations))] for m in methods]
        text += f"### {downstream}\n\n" + markdown_table(header, table) + "\n"
    return text


def _difference(values: PerSeedTable, a: tuple[str, str, str], b: tuple[str, str, str]) -> Estimate | None:
    if a not in values or b not in values:
        return None
    return paired_difference(values[a], values[b])


def learning_table(config: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """Does every method learn? Its ``standard`` runs against its initialisations of the same seeds, on every
    downstream dataset: means and the paired difference trained − init with its interval."""
    if "standard" not in config["augmentations"]:
        return ""
    knn = f"knn{config['probe']['knn_k'][0]}_top1"
    top1, neighbours = per_seed(rows, "probe", "top1"), per_seed(rows, "probe", knn)
    text = (
        "## Does every method learn? (standard run − random init, paired by seed, percentage points)\n\n"
        "The random init is the backbone each run starts from (the same seed), untrained, through the same features "
        "and probes. A method learns when its trained encoder beats it on the mean over seeds, linear and kNN.\n\n"
    )
    for downstream in downstream_datasets(config):
        table = []
        for method in sorted(config["methods"]):
            trained, init = (method, "standard", downstream), (method, INIT, downstream)
            cells, beats = [], []
            for values in (top1, neighbours):
                difference = _difference(values, trained, init)
                cells += [percent(values.get(init)), percent(values.get(trained))]
                cells.append("—" if difference is None else _points(difference))
                beats.append(difference is not None and difference.mean > 0)
            table.append([method, *cells, "yes" if all(beats) else "**no**"])
        header = ["method", "linear: init", "trained", "Δ", "kNN: init", "trained", "Δ", "beats its init"]
        text += f"### {downstream}\n\n" + markdown_table(header, table) + "\n"
    return text


def delta_table(config: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """Paired (same seed) differences generative − standard with their t intervals, per method, generative
    augmentation and downstream dataset, and which intervals exclude 0."""
    knn = f"knn{config['probe']['knn_k'][0]}_top1"
    metrics = {"linear": per_seed(rows, "probe", "top1"), "kNN": per_seed(rows, "probe", knn)}
    generative = [
        a for a in methods_and_augmentations(config)[1] if config["augmentations"][a].get("generator") is not None
    ]
    if "standard" not in config["augmentations"] or not generative:
        return ""
    table, excluding = [], []
    for augmentation in generative:
        for method in sorted(config["methods"]):
            for downstream in downstream_datasets(config):
                cells = []
                for name, values in metrics.items():
                    difference = _difference(
                        values, (method, augmentation, downstream), (method, "standard", downstream)
                    )
                    cells.append("—" if difference is None else _points(difference))
                    if (
                        difference is not None
                        and difference.interval is not None
                        and difference.interval.excludes_zero()
                    ):
                        excluding.append(f"{method} {augmentation} {downstream} {name} ({_points(difference)})")
                if any(cell != "—" for cell in cells):
                    table.append([method, label(config, augmentation), downstream, *cells])
    header = [
        "method",
        "augmentation",
        "downstream",
        "Δ linear top-1",
        f"Δ kNN top-1 (k = {config['probe']['knn_k'][0]})",
    ]
    text = "## Generative minus standard (paired by seed, percentage points, 95 % t intervals over seeds)\n\n"
    text += markdown_table(header, table, 3) + "\n"
    if excluding:
        text += "Intervals that exclude 0: " + "; ".join(excluding) + ".\n\n"
    else:
        text += "No interval excludes 0.\n\n"
    return text


def sweep_tables(config: dict[str, Any], rows: list[dict[str, Any]], key: str, title: str) -> str:
    values = per_seed(rows, "probe", "top1")
    text = ""
    for group in sweeps(config, key):
        members = {name for _, name in group}
        for method in sorted(config["methods"]):
            present = {r.augmentation for r in runs(config) if r.method == method}
            if not members <= present:
                continue
            generator = config["augmentations"][group[-1][1]]["generator"]
            table = [
                [
                    str(value),
                    label(config, name),
                    *(percent(values.get((method, name, d))) for d in downstream_datasets(config)),
                ]
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
    top1 = per_seed(rows, "probe", "top1")
    memory = per_seed(rows, "pretrain", "peak_memory_mib")
    seconds = per_seed(rows, "pretrain", "seconds")
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


def _over_seeds(pairs: dict[Pair, dict[str, Any]], named: Mapping[int, tuple[str, str]], column: str) -> str:
    """The estimate over seeds of ``column`` for the pairs ``{seed: (a, b)}``."""
    return estimate({s: pair_value(pairs, a, b, column) for s, (a, b) in named.items()}).describe(digits=3)


def _spread(values: list[float]) -> str:
    """``mean [min, max]`` of the values of several pairs."""
    return f"{sum(values) / len(values):.3f} [{min(values):.3f}, {max(values):.3f}]"


def similarity_tables(config: dict[str, Any], root: Path, pairs: dict[Pair, dict[str, Any]]) -> str:
    """Against each conditioning encoder (intervals over seeds, with the seed-to-seed yardstick of the conditioning
    run's method), the seed-to-seed similarity of every method, standard vs generative, and the first seed's pairs
    with their bootstrap intervals over test examples."""
    if not pairs:
        return ""
    matrices = json.loads((root / similarity_dir(config) / "matrices.json").read_text())
    text = f"## Representation similarity ({matrices['dataset']} {matrices['split']}, n = {matrices['n']})\n\n"
    text += _conditioning_table(config, pairs) + _seed_to_seed_table(config, pairs)
    text += _standard_vs_generative_table(config, pairs) + _bootstrap_table(pairs, matrices)
    return (
        text
        + "The full matrices of the first seed's encoders are in `similarity_cka.png`, `similarity_cka_debiased.png` "
        "and `similarity_opd.png`.\n\n"
    )


def _conditioning_table(config: dict[str, Any], pairs: dict[Pair, dict[str, Any]]) -> str:
    text = ""
    separate = set(separate_conditioning_runs(config))
    for generators in conditioning_encoders(config):
        name = f"{CONDITIONING}/{'+'.join(generators)}"
        conditioning = conditioning_run(config, generators[0])
        table = []
        by_setting: dict[tuple[str, str], dict[int, tuple[str, str]]] = defaultdict(dict)
        for run in runs(config):
            if config["augmentations"][run.augmentation].get("generator") in generators:
                by_setting[(run.method, run.augmentation)][run.seed] = (run.name, name)
        if conditioning is not None:
            for run in runs(config):
                if (run.method, run.augmentation) == (
                    conditioning.method,
                    conditioning.augmentation,
                ) and run != conditioning:
                    by_setting[(run.method, run.augmentation)][run.seed] = (run.name, name)
        for (method, augmentation), named in sorted(by_setting.items()):
            what = f"{method}/{label(config, augmentation)}"
            if conditioning is not None and (method, augmentation) == (conditioning.method, conditioning.augmentation):
                what += " (independent runs of the conditioning encoder's method: the yardstick)"
            table.append([what, *(_over_seeds(pairs, named, c) for c in ("cka", "opd"))])
        if not table:
            continue
        if conditioning is None:
            origin = "its generator's own encoder"
        else:
            role = "trained for the generators, in no comparison" if conditioning in separate else "a compared run"
            origin = f"the run {conditioning.name} (seed {conditioning.seed}), {role}"
        text += (
            f"### Against the conditioning encoder {name} (intervals over seeds)\n\n"
            f"The encoder is {origin}. A generative run that copied it would be closer to it than an independent run "
            "of its own method is.\n\n" + markdown_table(["encoder", "linear CKA", "Procrustes distance"], table) + "\n"
        )
    return text


def _seed_to_seed_table(config: dict[str, Any], pairs: dict[Pair, dict[str, Any]]) -> str:
    by_setting: dict[tuple[str, str], list[str]] = defaultdict(list)
    for run in runs(config):
        by_setting[(run.method, run.augmentation)].append(run.name)
    table = []
    for (method, augmentation), names in sorted(by_setting.items()):
        if len(names) < 2:
            continue
        couples = list(combinations(names, 2))
        values = {c: [pair_value(pairs, a, b, c) for a, b in couples] for c in ("cka", "opd")}
        table.append([method, augmentation, str(len(couples)), _spread(values["cka"]), _spread(values["opd"])])
    if not table:
        return ""
    return (
        "### Seed to seed: two runs of one method and augmentation that differ only in seed\n\n"
        'What "similar" means at this scale: the similarity of independent trainings of the same method.\n\n'
        + markdown_table(
            ["method", "augmentation", "pairs", "linear CKA mean [min, max]", "OPD mean [min, max]"], table, 2
        )
        + "\n"
    )


def _standard_vs_generative_table(config: dict[str, Any], pairs: dict[Pair, dict[str, Any]]) -> str:
    standard = {(r.method, r.seed): r.name for r in runs(config) if r.augmentation == "standard"}
    by_setting: dict[tuple[str, str], dict[int, tuple[str, str]]] = defaultdict(dict)
    for run in runs(config):
        if (
            config["augmentations"][run.augmentation].get("generator") is not None
            and (run.method, run.seed) in standard
        ):
            by_setting[(run.method, run.augmentation)][run.seed] = (run.name, standard[(run.method, run.seed)])
    table = [
        [method, label(config, augmentation), *(_over_seeds(pairs, named, c) for c in ("cka", "opd"))]
        for (method, augmentation), named in sorted(by_setting.items())
    ]
    if not table:
        return ""
    return (
        "### Standard vs generative encoder of each method (same seed, intervals over seeds)\n\n"
        + markdown_table(["method", "augmentation", "linear CKA", "Procrustes distance"], table, 2)
        + "\n"
    )


def _bootstrap_table(pairs: dict[Pair, dict[str, Any]], matrices: dict[str, Any]) -> str:
    table = []
    for (a, b), entry in pairs.items():
        if entry["kind"] not in ("conditioning", "standard_vs_generative") or "cka_low" not in entry:
            continue
        table.append(
            [
                a,
                b,
                with_interval(entry["cka"], entry["cka_low"], entry["cka_high"]),
                with_interval(entry["cka_debiased"], entry["cka_debiased_low"], entry["cka_debiased_high"]),
                with_interval(entry["opd"], entry["opd_low"], entry["opd_high"]),
            ]
        )
    if not table:
        return ""
    level = int(100 * matrices["confidence"])
    return (
        f"### The first seed's encoders, {level} % bootstrap intervals over {matrices['bootstrap']} resamples of the "
        "test examples\n\n"
        "These intervals resample the test examples of one training run each: they do not cover the variation "
        "between training runs (seeds), which is the larger one (compare the intervals over seeds above), and no "
        "verdict rests on them.\n\n"
        + markdown_table(["encoder", "compared with", "linear CKA", "debiased CKA", "Procrustes distance"], table, 2)
        + "\n"
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
    """The study's settings: seeds (and the ablations run with fewer), the initialisations, the conditioning runs,
    and each method's step plan (:class:`~genssl.train.plan.StepPlan`: its own batch per forward pass, gradient
    accumulation, images per optimiser step, peak lr and optimiser steps)."""
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
        plans.append(
            [
                method,
                str(plan.batch_size),
                str(plan.accumulate_steps),
                str(plan.images_per_step),
                f"{plan.lr:.4g}",
                optimizer,
                str(plan.total_steps),
            ]
        )
    reduced = fewer_seeds(config)
    ablations = "; ".join(f"`{a}` seeds {s}" for a, s in reduced.items())
    conditioning = [
        f"`{'+'.join(g)}` on the run {run.name}"
        for g in conditioning_encoders(config)
        if (run := conditioning_run(config, g[0])) is not None
    ]
    return (
        f"- pretraining: `{pretrain['dataset']}` at {image_size} px ({num_train} training images), "
        f"{pretrain['epochs']} epochs, backbone {backbone['name']} {f'({size})' if size else ''}; "
        f"seeds {seeds(config)}"
        + (
            f"; run with fewer seeds (`augmentations.*.seeds`, labelled so in the tables): {ablations}"
            if reduced
            else ""
        )
        + "\n"
        f"- random init: each method's initialisation for every seed (the backbone its runs start from), untrained\n"
        f"- generators: {generators or 'none'}"
        + (f"; conditioning: {', '.join(conditioning)}" if conditioning else "")
        + "\n"
        f"- downstream datasets: {', '.join(downstream_datasets(config))}; accuracies on each test split "
        f"(linear probe: protocol `{config['probe']['protocol']}`; kNN: cosine, k = {config['probe']['knn_k'][0]})\n"
        "- over seeds: mean ± sample standard deviation; differences paired by seed with their 95 % Student t "
        "interval\n\n"
        + markdown_table(["method", "batch", "accumulation", "images / step", "peak lr", "optimiser", "steps"], plans)
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
