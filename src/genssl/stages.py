"""The stage contract: for every stage of the study, where its outputs live, what it reads, and the part of the
configuration it depends on (its *slice*).

Everything else derives from here: the rules (``rules/*.smk``) take their path patterns, inputs and config slices,
the DVC stages (:mod:`genssl.dvc_stages`) their outs, deps and params, the CLI its default ``--data`` / ``--out``,
and the trainer the configuration its checkpoint must match (:func:`pretrain_keys`). Nothing else builds a
``results/`` path.

| stage | command | rule | output (pattern) |
| --- | --- | --- | --- |
| dataset preparation | ``genssl prepare`` | ``prepare_dataset`` | :data:`DATA` |
| generator training | ``genssl train-generator`` | ``train_generator`` | :data:`GENERATOR` |
| generative augmentation | ``genssl generate`` | ``generate_shard``, ``gather_augmentations`` | :data:`AUGMENT` |
| pretraining | ``genssl pretrain`` | ``pretrain`` | :data:`PRETRAIN` |
| random initialisation | ``genssl init-encoder`` | ``init_encoder`` | :data:`INIT_ENCODER` |
| frozen features | ``genssl features`` | ``extract_features``, ``extract_conditioning_features`` | :data:`FEATURES` |
| linear probe and kNN | ``genssl probe`` | ``linear_probe`` | :data:`PROBE` |
| both, per encoder | ``genssl evaluate`` | ``evaluate_encoder`` | :data:`FEATURES`, :data:`PROBE` |
| representation similarity | ``genssl similarity`` | ``similarity`` | :data:`SIMILARITY` |
| report | ``genssl report`` | ``report`` | :data:`REPORT` |

Names in braces are Snakemake wildcards: ``dataset`` (a key of ``datasets``; for the stages after preparation the
pretraining dataset), ``generator``, ``method``, ``run`` (a run directory: ``{augmentation}`` or
``{augmentation}-seed{s}``, :class:`genssl.study.Run`; ``init`` or ``init-seed{s}`` for a method's initialisation,
whose features and probes sit beside the runs'), ``downstream`` and ``shard``. An encoder's features and probes are
made by ``extract_features`` and ``linear_probe``, one job per encoder and dataset, or, with
``features.one_job_per_encoder``, by ``evaluate_encoder``, one job per encoder for all its datasets, whose slice is
the union of theirs (:func:`evaluation_job_keys`).

A slice is a list of dotted key paths (``datasets.digits``, ``methods.simclr``): :func:`config_slice` cuts them out
of a resolved configuration, which is what a rule passes to its command (so Snakemake reruns a job exactly when its
slice changes) and what a pretraining checkpoint must match; DVC lists the same paths as the stage's ``params``.
"""

import contextlib
import json
from pathlib import Path
from typing import Any

from genssl.config import downstream_datasets, similarity_dataset
from genssl.study import CONDITIONING, INIT, Run, conditioning_run, evaluated_runs, runs, used_generators

DATA = "results/data/{dataset}"
GENERATOR = "results/generators/{dataset}/{generator}"
AUGMENT = "results/augment/{dataset}/{generator}"
SHARD = "results/augment/{dataset}/{generator}.shards/shard-{shard}"
PRETRAIN = "results/pretrain/{dataset}/{method}/{run}"
#: A method's initialisation for one seed (``run``: ``init`` or ``init-seed{s}``), untrained.
INIT_ENCODER = "results/init/{dataset}/{method}/{run}"
FEATURES = "results/features/{dataset}/{method}/{run}/{downstream}.npz"
CONDITIONING_FEATURES = f"results/features/{{dataset}}/{CONDITIONING}/{{generator}}/{{downstream}}.npz"
PROBE = "results/probe/{dataset}/{method}/{run}/{downstream}.json"
SIMILARITY = "results/similarity/{dataset}"
REPORT = "results/report"
#: Snakemake's ``benchmark:`` files of every job (the report's runtime table reads them).
BENCHMARKS = "results/benchmarks"

#: The manifest of a store (a prepared dataset or a variant store): the target that stands for the directory.
MANIFEST = "manifest.json"
#: The record of a trained generator: the target that stands for its directory.
GENERATOR_RECORD = "generator.json"
#: What a pretraining run writes into its directory.
ENCODER = "encoder.safetensors"
CHECKPOINT = "checkpoint"
METRICS = "metrics.csv"
RUN_RECORD = "run.json"
#: What the initialisation stage writes beside the encoder: the method, seed, backbone and provenance.
INIT_RECORD = "init.json"
#: What the similarity analysis writes into its directory.
SIMILARITY_FILES = ("cka.csv", "opd.csv", "matrices.json", "cka.png", "cka_debiased.png", "opd.png")
PREVIEW = "preview.png"


def store_files(directory: str) -> list[str]:
    """The files of the store ``directory`` a stage reads, as Snakemake inputs: its manifest and, once the store
    exists, every file its manifest lists (its shards). A rewritten store therefore reruns what was computed from it
    even when its manifest comes out byte-identical (Snakemake skips a rerun for an unchanged small file's checksum,
    e.g. after a damaged store was made again)."""
    manifest = Path(directory) / MANIFEST
    files = [str(manifest)]
    if manifest.is_file():
        with contextlib.suppress(ValueError, KeyError):  # a damaged manifest: the stage reading it names the problem
            files += [f"{directory}/{name}" for name in sorted(json.loads(manifest.read_text())["files"])]
    return files


def data_dir(dataset: str) -> str:
    """The prepared store of ``dataset``."""
    return DATA.format(dataset=dataset)


def generator_dir(config: dict[str, Any], generator: str) -> str:
    """The weights of ``generator`` trained in the workflow on the pretraining dataset."""
    return GENERATOR.format(dataset=config["pretrain"]["dataset"], generator=generator)


def augment_dir(config: dict[str, Any], generator: str) -> str:
    """``generator``'s variant store of the pretraining dataset."""
    return AUGMENT.format(dataset=config["pretrain"]["dataset"], generator=generator)


def pretrain_dir(config: dict[str, Any], run: Run) -> str:
    """The run's encoder, checkpoint and records."""
    return PRETRAIN.format(dataset=config["pretrain"]["dataset"], method=run.method, run=run.directory)


def init_dir(config: dict[str, Any], run: Run) -> str:
    """The initialisation ``run`` (augmentation :data:`~genssl.study.INIT`) of a method and seed."""
    return INIT_ENCODER.format(dataset=config["pretrain"]["dataset"], method=run.method, run=run.directory)


def encoder_file(config: dict[str, Any], run: Run) -> str:
    """The run's encoder: a pretraining run's, or an initialisation's."""
    return f"{init_dir(config, run) if run.augmentation == INIT else pretrain_dir(config, run)}/{ENCODER}"


def features_file(config: dict[str, Any], run: Run, downstream: str) -> str:
    """The run's features of ``downstream``."""
    dataset = config["pretrain"]["dataset"]
    return FEATURES.format(dataset=dataset, method=run.method, run=run.directory, downstream=downstream)


def conditioning_features_file(config: dict[str, Any], generator: str, downstream: str) -> str:
    """The features of ``downstream`` from ``generator``'s conditioning encoder."""
    dataset = config["pretrain"]["dataset"]
    return CONDITIONING_FEATURES.format(dataset=dataset, generator=generator, downstream=downstream)


def probe_file(config: dict[str, Any], run: Run, downstream: str) -> str:
    """The run's probe result on ``downstream``."""
    dataset = config["pretrain"]["dataset"]
    return PROBE.format(dataset=dataset, method=run.method, run=run.directory, downstream=downstream)


def similarity_dir(config: dict[str, Any]) -> str:
    """The similarity analysis' directory."""
    return SIMILARITY.format(dataset=config["pretrain"]["dataset"])


def conditioning_encoder_file(config: dict[str, Any], generator: str) -> str | None:
    """The encoder file a generator trained in the workflow is conditioned on: ``conditioning.encoder``, or the
    encoder of :func:`conditioning_run`; ``None`` for a generator with local weights (its conditioning encoder is
    part of them)."""
    conditioning = config["generators"][generator].get("conditioning")
    if conditioning is None:
        return None
    run = conditioning_run(config, generator)
    return conditioning["encoder"] if run is None else encoder_file(config, run)


def conditioning_encoders(config: dict[str, Any]) -> list[list[str]]:
    """The distinct conditioning encoders of the used generators, each as the generators conditioned on it.

    Generators trained in the workflow on the same encoder file (:func:`conditioning_encoder_file`) compute the same
    f(x) and share one entry; a generator with local weights (Stable Diffusion's CLIP, IC-GAN's SwAV) has its own
    entry, even where another one loads the same files."""
    groups: dict[str, list[str]] = {}
    for generator in used_generators(config):
        encoder = conditioning_encoder_file(config, generator) or f"weights of {generator}"
        groups.setdefault(encoder, []).append(generator)
    return list(groups.values())


def similarity_encoders(config: dict[str, Any]) -> dict[str, str]:
    """``{encoder name: feature file}`` compared by the similarity analysis: every run of every seed (named
    ``{method}/{run directory}``: the analysis' intervals over seeds need the replicates), then every distinct
    conditioning encoder (:func:`conditioning_encoders`), named ``conditioning/{generator}`` or, when generators
    share it, ``conditioning/{generator}+{generator}...``, with the features of the first of them."""
    dataset = similarity_dataset(config)
    files = {run.name: features_file(config, run, dataset) for run in runs(config)}
    for generators in conditioning_encoders(config):
        files[f"{CONDITIONING}/{'+'.join(generators)}"] = conditioning_features_file(config, generators[0], dataset)
    return files


def similarity_outputs(config: dict[str, Any]) -> list[str]:
    """The similarity analysis' files, when there are at least two encoders to compare (else none)."""
    if len(similarity_encoders(config)) < 2:
        return []
    return [f"{similarity_dir(config)}/{name}" for name in SIMILARITY_FILES]


def probe_files(config: dict[str, Any]) -> list[str]:
    """Every probe result the study computes: of every run and every initialisation."""
    return [probe_file(config, run, d) for run in evaluated_runs(config) for d in downstream_datasets(config)]


def report_inputs(config: dict[str, Any]) -> dict[str, list[str]]:
    """Every result the report reads: the pretraining store's manifest (its training-set size), probes (of the runs
    and the initialisations), pretraining records, previews and the similarity analysis."""
    records = [f"{pretrain_dir(config, run)}/{name}" for run in runs(config) for name in (RUN_RECORD, METRICS)]
    return {
        "data": [f"{data_dir(config['pretrain']['dataset'])}/{MANIFEST}"],
        "probes": probe_files(config),
        "runs": records,
        "previews": [f"{augment_dir(config, g)}/{PREVIEW}" for g in used_generators(config)],
        "similarity": similarity_outputs(config),
    }


# Config slices: the dotted key paths each stage reads.


def dataset_keys(dataset: str) -> list[str]:
    """What ``genssl prepare`` reads for one dataset."""
    return ["seed", f"datasets.{dataset}"]


def _augmentation_keys(config: dict[str, Any], augmentation: str) -> list[str]:
    """An augmentation's settings; not its ``methods`` or ``seeds`` (which runs exist is not a setting of a run)."""
    return [
        f"augmentations.{augmentation}.{key}"
        for key in sorted(config["augmentations"][augmentation])
        if key not in ("methods", "seeds")
    ]


def generator_keys(config: dict[str, Any], generator: str) -> list[str]:
    """What a generator's training and generation read: the generator, the pretraining dataset and, for a generator
    conditioned on a run of the study, that run's slice (its encoder depends on it)."""
    dataset = config["pretrain"]["dataset"]
    keys = ["seed", f"datasets.{dataset}", "pretrain.dataset", f"generators.{generator}"]
    run = conditioning_run(config, generator)
    return keys if run is None else _union(keys, pretrain_keys(config, run.method, run.augmentation))


def pretrain_keys(config: dict[str, Any], method: str, augmentation: str) -> list[str]:
    """What one pretraining run reads (and its checkpoint must match): the dataset, ``pretrain``, the method, the
    augmentation and, for a generative one, its generator's slice."""
    dataset = config["pretrain"]["dataset"]
    keys = ["seed", f"datasets.{dataset}", "pretrain", f"methods.{method}", *_augmentation_keys(config, augmentation)]
    generator = config["augmentations"][augmentation].get("generator")
    return keys if generator is None else _union(keys, generator_keys(config, generator))


def init_keys() -> list[str]:
    """What a method's initialisation reads: the backbone (its weights are drawn from ``(seed, "init", method)``,
    the run's seed and method being the stage's wildcards)."""
    return ["pretrain.backbone"]


def _evaluation_keys(config: dict[str, Any], *datasets: str) -> list[str]:
    """The datasets an evaluation stage names and the pretraining dataset (whose image size is the encoders' input
    size), and the backbone."""
    names = sorted({config["pretrain"]["dataset"], *datasets})
    return ["seed", *(f"datasets.{n}" for n in names), "pretrain.dataset", "pretrain.backbone"]


def features_keys(config: dict[str, Any], downstream: str, generator: str | None = None) -> list[str]:
    """What feature extraction reads (a probe setting never reruns it); with ``generator``, that generator's
    conditioning encoder is the encoder."""
    keys = [*_evaluation_keys(config, downstream), "features"]
    return keys if generator is None else _union(keys, generator_keys(config, generator))


def evaluation_datasets(config: dict[str, Any]) -> list[str]:
    """The datasets every encoder's features are extracted on: the downstream datasets and the similarity analysis'
    dataset."""
    return list(dict.fromkeys([*downstream_datasets(config), similarity_dataset(config)]))


def probe_keys(config: dict[str, Any], downstream: str) -> list[str]:
    """What a probe reads: the probe settings, and for the augmented protocol the preprocessing and the dataset."""
    if config["probe"]["protocol"] == "augmented":
        return _union(["seed", "probe"], features_keys(config, downstream))
    return ["seed", "probe"]


def evaluation_job_keys(config: dict[str, Any]) -> list[str]:
    """What an encoder's evaluation job reads (``features.one_job_per_encoder``): the features' slice of every
    evaluation dataset and the probe's of every downstream dataset."""
    features = [features_keys(config, d) for d in evaluation_datasets(config)]
    probes = [probe_keys(config, d) for d in downstream_datasets(config)]
    return _union(*features, *probes)


def similarity_keys(config: dict[str, Any]) -> list[str]:
    """What the similarity analysis reads."""
    return ["seed", f"datasets.{similarity_dataset(config)}", "similarity"]


def _union(*key_lists: list[str]) -> list[str]:
    """The keys of all lists, in order of first appearance, without keys that another key contains."""
    keys = list(dict.fromkeys(key for keys in key_lists for key in keys))
    return [k for k in keys if not any(k.startswith(other + ".") for other in keys if other != k)]


def config_slice(config: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """The nested part of ``config`` that the dotted ``keys`` name (absent keys are left out)."""
    part: dict[str, Any] = {}
    for key in keys:
        *parents, last = key.split(".")
        source: Any = config
        for name in parents:
            source = source.get(name, {}) if isinstance(source, dict) else {}
        if not isinstance(source, dict) or last not in source:
            continue
        target = part
        for name in parents:
            target = target.setdefault(name, {})
        target[last] = source[last]
    return part
