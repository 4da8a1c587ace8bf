# Helpers shared by the rules: the software environment, per-stage slices of the config, the target lists.
# Rules call the `genssl` command on PATH: the project's .venv (`make` puts it first on PATH) or, with
# `--sdm conda`, the environment below.
import re

from genssl.config import to_json

#: conda environment of every rule (path relative to the rules/ folder).
GENSSL_ENV = "../envs/genssl.yaml"


def _one_of(names):
    return "|".join(re.escape(name) for name in names) or "(?!)"


wildcard_constraints:
    dataset=_one_of(config["datasets"]),
    method=_one_of(config["methods"]),
    augmentation=_one_of(config["augmentations"]),


def dataset_config_json(wildcards):
    """The part of the config that `genssl prepare` reads for one dataset (a change reruns only that dataset)."""
    return to_json({"seed": config["seed"], "datasets": {wildcards.dataset: config["datasets"][wildcards.dataset]}})


def pretrain_config_json(wildcards):
    """The part of the config one pretraining run reads (a change reruns only the runs it concerns)."""
    dataset = config["pretrain"]["dataset"]
    return to_json(
        {
            "seed": config["seed"],
            "datasets": {dataset: config["datasets"][dataset]},
            "pretrain": config["pretrain"],
            "methods": {wildcards.method: config["methods"][wildcards.method]},
            "augmentations": {wildcards.augmentation: config["augmentations"][wildcards.augmentation]},
        }
    )


def pretrain_targets():
    """The encoder of every configured method with every configured augmentation."""
    return expand(
        "results/pretrain/{dataset}/{method}/{augmentation}/encoder.safetensors",
        dataset=config["pretrain"]["dataset"],
        method=sorted(config["methods"]),
        augmentation=sorted(config["augmentations"]),
    )


def all_targets():
    """Every output the workflow can make so far."""
    return expand("results/data/{dataset}/manifest.json", dataset=sorted(config["datasets"])) + pretrain_targets()
