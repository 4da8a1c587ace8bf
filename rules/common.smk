# Helpers shared by the rules: the software environment, per-stage slices of the config, the target lists.
# Rules call the `genssl` command on PATH: the project's .venv (`make` puts it first on PATH) or, with
# `--sdm conda`, the environment below.
import re

from genssl.config import to_json
from genssl.generate.registry import TRAINED

#: conda environment of every rule (path relative to the rules/ folder).
GENSSL_ENV = "../envs/genssl.yaml"


def _one_of(names):
    return "|".join(re.escape(name) for name in names) or "(?!)"


wildcard_constraints:
    dataset=_one_of(config["datasets"]),
    method=_one_of(config["methods"]),
    augmentation=_one_of(config["augmentations"]),
    generator=_one_of(config["generators"]),
    shard=r"\d{5}",


def dataset_config_json(wildcards):
    """The part of the config that `genssl prepare` reads for one dataset (a change reruns only that dataset)."""
    return to_json({"seed": config["seed"], "datasets": {wildcards.dataset: config["datasets"][wildcards.dataset]}})


def pretrain_config_json(wildcards):
    """The part of the config one pretraining run reads (a change reruns only the runs it concerns)."""
    dataset = config["pretrain"]["dataset"]
    augmentation = config["augmentations"][wildcards.augmentation]
    generator = augmentation.get("generator")
    part = {
        "seed": config["seed"],
        "datasets": {dataset: config["datasets"][dataset]},
        "pretrain": config["pretrain"],
        "methods": {wildcards.method: config["methods"][wildcards.method]},
        "augmentations": {wildcards.augmentation: augmentation},
    }
    if generator is not None:
        for section, entries in generator_part(generator).items():
            part[section] = {**part.get(section, {}), **entries}
    return to_json(part)


def generator_part(name):
    """A generator's entry and the conditioning run it names (the variants depend on that run's settings)."""
    generator = config["generators"][name]
    part = {"generators": {name: generator}}
    conditioning = generator.get("conditioning", {})
    if "method" in conditioning:
        method, augmentation = conditioning["method"], conditioning["augmentation"]
        part["methods"] = {method: config["methods"][method]}
        part["augmentations"] = {augmentation: config["augmentations"][augmentation]}
    return part


def variant_store(wildcards):
    """The variant store a pretraining run reads: its manifest, or nothing for standard augmentation."""
    generator = config["augmentations"][wildcards.augmentation].get("generator")
    if generator is None:
        return []
    return f"results/augment/{wildcards.dataset}/{generator}/manifest.json"


def generator_config_json(wildcards):
    """The part of the config a generator's training and generation read: the generator, its dataset and the
    conditioning run's settings (which its encoder depends on)."""
    dataset = config["pretrain"]["dataset"]
    part = {
        "seed": config["seed"],
        "datasets": {dataset: config["datasets"][dataset]},
        "pretrain": config["pretrain"],
        **generator_part(wildcards.generator),
    }
    return to_json(part)


def conditioning_encoder(wildcards):
    """The encoder a trained generator is conditioned on: a pretraining run of this study or a given file."""
    conditioning = config["generators"][wildcards.generator]["conditioning"]
    if "encoder" in conditioning:
        return conditioning["encoder"]
    run = f"{wildcards.dataset}/{conditioning['method']}/{conditioning['augmentation']}"
    return f"results/pretrain/{run}/encoder.safetensors"


def generator_weights(wildcards):
    """A trained generator's directory marker (generator.json), or nothing for backends with local weights."""
    if config["generators"][wildcards.generator]["backend"] in TRAINED:
        return f"results/generators/{wildcards.dataset}/{wildcards.generator}/generator.json"
    return []


def generation_shards(wildcards):
    """The shard directories of one variant store (``generators.*.shards`` separate jobs)."""
    shards = config["generators"][wildcards.generator]["shards"]
    return [f"results/augment/{wildcards.dataset}/{wildcards.generator}.shards/shard-{s:05d}" for s in range(shards)]


def pretrain_targets():
    """The encoder of every configured method with every configured augmentation."""
    return expand(
        "results/pretrain/{dataset}/{method}/{augmentation}/encoder.safetensors",
        dataset=config["pretrain"]["dataset"],
        method=sorted(config["methods"]),
        augmentation=sorted(config["augmentations"]),
    )


def augmentation_targets():
    """The variant store and preview of every generator an augmentation uses."""
    used = sorted({a["generator"] for a in config["augmentations"].values() if a.get("generator") is not None})
    dataset = config["pretrain"]["dataset"]
    return expand("results/augment/{dataset}/{generator}/preview.png", dataset=dataset, generator=used)


def all_targets():
    """Every output the workflow can make so far."""
    data = expand("results/data/{dataset}/manifest.json", dataset=sorted(config["datasets"]))
    return data + augmentation_targets() + pretrain_targets()
