"""What a study configuration asks for: its pretraining runs, the datasets they are evaluated on, and the
encoders its similarity analysis compares; and where each result lives (the output contract of the README).

A run is (method, augmentation, seed). ``seeds`` lists the pretraining seeds (default: ``[seed]``); every
augmentation is trained by the methods of its ``methods`` list (default: all configured methods) once per seed.
The run with the first seed lives at the contract's paths, ``.../{method}/{augmentation}/``; a replicate with
another seed s at ``.../{method}/{augmentation}-seed{s}/`` (augmentation names cannot hold a hyphen, so the two
never collide). Data splits, generated variants, probes and bootstrap intervals always use ``seed``; a replicate
changes only the pretraining's own random draws (initialisation, data order, views, variant choices).
"""

import re
from dataclasses import dataclass
from typing import Any

from genssl.config import downstream_datasets, similarity_dataset

#: The directory-name suffix of a replicate run.
REPLICATE = re.compile(r"^(?P<augmentation>[a-z][a-z0-9_]*)(?:-seed(?P<seed>\d+))?$")
#: The prefix of a generator's conditioning encoder among the encoders of the similarity analysis.
CONDITIONING = "conditioning"


def seeds(config: dict[str, Any]) -> list[int]:
    """The pretraining seeds: ``seeds``, or ``[seed]``."""
    return list(config.get("seeds") or [config["seed"]])


@dataclass(frozen=True)
class Run:
    """One pretraining run and its place in the results."""

    method: str
    augmentation: str
    seed: int
    primary: bool

    @property
    def directory(self) -> str:
        """``{augmentation}`` for the first seed, ``{augmentation}-seed{seed}`` for a replicate."""
        return self.augmentation if self.primary else f"{self.augmentation}-seed{self.seed}"

    @property
    def name(self) -> str:
        """``{method}/{directory}``: the run's path below ``results/{stage}/{dataset}/``."""
        return f"{self.method}/{self.directory}"


def parse_directory(directory: str, config: dict[str, Any]) -> tuple[str, int]:
    """``(augmentation, seed)`` of a run directory name (``standard``, ``standard-seed1``)."""
    match = REPLICATE.match(directory)
    if match is None:
        raise ValueError(f"{directory!r} is not a run directory name (augmentation[-seedN])")
    seed = match["seed"]
    return match["augmentation"], int(seed) if seed is not None else seeds(config)[0]


def run_from_directory(method: str, directory: str, config: dict[str, Any]) -> Run:
    """The run of ``method`` whose directory name is ``directory`` (:func:`parse_directory`)."""
    augmentation, seed = parse_directory(directory, config)
    return Run(method, augmentation, seed, seed == seeds(config)[0])


def augmentation_methods(config: dict[str, Any], augmentation: str) -> list[str]:
    """The methods that train with ``augmentation``: its ``methods`` list, or every configured method."""
    listed = config["augmentations"][augmentation].get("methods")
    return sorted(config["methods"]) if listed is None else sorted(listed)


def runs(config: dict[str, Any]) -> list[Run]:
    """Every run, by method, then augmentation (standard first), then seed."""
    order = sorted(config["augmentations"], key=lambda a: (a != "standard", a))
    all_seeds = seeds(config)
    return [
        Run(method, augmentation, seed, seed == all_seeds[0])
        for method in sorted(config["methods"])
        for augmentation in order
        if method in augmentation_methods(config, augmentation)
        for seed in all_seeds
    ]


def used_generators(config: dict[str, Any]) -> list[str]:
    """The generators some augmentation uses, sorted."""
    return sorted({a["generator"] for a in config["augmentations"].values() if a.get("generator") is not None})


def pretrain_dir(config: dict[str, Any], run: Run) -> str:
    """``results/pretrain/{dataset}/{method}/{directory}``: the run's encoder, checkpoint and records."""
    return f"results/pretrain/{config['pretrain']['dataset']}/{run.name}"


def features_file(config: dict[str, Any], run: Run, downstream: str) -> str:
    """The run's features of ``downstream``."""
    return f"results/features/{config['pretrain']['dataset']}/{run.name}/{downstream}.npz"


def conditioning_features_file(config: dict[str, Any], generator: str, downstream: str) -> str:
    """The features of ``downstream`` from ``generator``'s conditioning encoder."""
    return f"results/features/{config['pretrain']['dataset']}/{CONDITIONING}/{generator}/{downstream}.npz"


def probe_file(config: dict[str, Any], run: Run, downstream: str) -> str:
    """The run's probe result on ``downstream``."""
    return f"results/probe/{config['pretrain']['dataset']}/{run.name}/{downstream}.json"


def similarity_dir(config: dict[str, Any]) -> str:
    """The similarity analysis' directory."""
    return f"results/similarity/{config['pretrain']['dataset']}"


def augment_dir(config: dict[str, Any], generator: str) -> str:
    """``generator``'s variant store of the pretraining dataset."""
    return f"results/augment/{config['pretrain']['dataset']}/{generator}"


def conditioning_encoder_file(config: dict[str, Any], generator: str) -> str | None:
    """The encoder file a generator trained in the workflow is conditioned on: ``conditioning.encoder``, or the
    ``encoder.safetensors`` of the run ``conditioning: {method, augmentation}`` of this study; ``None`` for a
    generator with local weights (its conditioning encoder is part of them)."""
    conditioning = config["generators"][generator].get("conditioning")
    if conditioning is None:
        return None
    if "encoder" in conditioning:
        return conditioning["encoder"]
    dataset = config["pretrain"]["dataset"]
    return f"results/pretrain/{dataset}/{conditioning['method']}/{conditioning['augmentation']}/encoder.safetensors"


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
    """``{encoder name: feature file}`` compared by the similarity analysis: every run of the first seed (replicates
    would repeat the comparison), then every distinct conditioning encoder (:func:`conditioning_encoders`), named
    ``conditioning/{generator}`` or, when generators share it, ``conditioning/{generator}+{generator}...``, with the
    features of the first of them."""
    dataset = similarity_dataset(config)
    files = {run.name: features_file(config, run, dataset) for run in runs(config) if run.primary}
    for generators in conditioning_encoders(config):
        files[f"{CONDITIONING}/{'+'.join(generators)}"] = conditioning_features_file(config, generators[0], dataset)
    return files


def probe_files(config: dict[str, Any]) -> list[str]:
    """Every probe result the study computes."""
    return [probe_file(config, run, d) for run in runs(config) for d in downstream_datasets(config)]
