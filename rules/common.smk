# Helpers shared by the rules: the software environment, per-stage slices of the config, the target lists.
# Rules call the `genssl` command on PATH: the project's .venv (`make` puts it first on PATH) or, with
# `--sdm conda`, the environment below.
import re

from genssl.config import downstream_datasets, similarity_dataset, to_json
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
    downstream=_one_of(config["datasets"]),


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


def _evaluation_part(*datasets):
    """The config keys an evaluation stage reads besides its own section: the datasets it names (and the
    pretraining dataset, whose image size is the encoders' input size) and the backbone."""
    names = sorted({config["pretrain"]["dataset"], *datasets})
    pretrain = {"dataset": config["pretrain"]["dataset"], "backbone": config["pretrain"]["backbone"]}
    return {"seed": config["seed"], "datasets": {n: config["datasets"][n] for n in names}, "pretrain": pretrain}


def features_config_json(wildcards):
    """The part of the config feature extraction reads (a probe setting never reruns it)."""
    part = {**_evaluation_part(wildcards.downstream), "features": config["features"]}
    if "generator" in wildcards.keys():
        generator = generator_part(wildcards.generator)
        part["generators"] = generator["generators"]
        for section in ("methods", "augmentations"):
            if section in generator:
                part[section] = generator[section]
    return to_json(part)


def probe_config_json(wildcards):
    """The part of the config a probe reads: the probe settings, and for the augmented protocol the
    preprocessing and the downstream dataset."""
    part = {"seed": config["seed"], "probe": config["probe"]}
    if config["probe"]["protocol"] == "augmented":
        part.update(_evaluation_part(wildcards.downstream), features=config["features"])
    return to_json(part)


def augmented_probe_inputs(wildcards):
    """The encoder and the downstream store, which only the augmented protocol reads."""
    if config["probe"]["protocol"] != "augmented":
        return {}
    return {
        "encoder": f"results/pretrain/{wildcards.dataset}/{wildcards.method}/{wildcards.augmentation}/encoder.safetensors",
        "data": f"results/data/{wildcards.downstream}/manifest.json",
    }


def similarity_config_json(wildcards):
    """The part of the config the similarity analysis reads."""
    name = similarity_dataset(config)
    return to_json({"seed": config["seed"], "datasets": {name: config["datasets"][name]}, "similarity": config["similarity"]})


def used_generators():
    """The generators some augmentation uses, sorted."""
    return sorted({a["generator"] for a in config["augmentations"].values() if a.get("generator") is not None})


def runs():
    """Every pretraining run as ``method/augmentation``: methods sorted, standard first, then the others sorted."""
    augmentations = sorted(config["augmentations"], key=lambda a: (a != "standard", a))
    return [f"{m}/{a}" for m in sorted(config["methods"]) for a in augmentations]


def similarity_features(wildcards):
    """``{encoder name: feature file}`` of the similarity analysis' evaluation set: every run, then every used
    generator's conditioning encoder."""
    name = similarity_dataset(config)
    files = {run: f"results/features/{wildcards.dataset}/{run}/{name}.npz" for run in runs()}
    for generator in used_generators():
        files[f"conditioning/{generator}"] = f"results/features/{wildcards.dataset}/conditioning/{generator}/{name}.npz"
    return files


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
    dataset = config["pretrain"]["dataset"]
    return expand("results/augment/{dataset}/{generator}/preview.png", dataset=dataset, generator=used_generators())


def probe_targets():
    """The probe of every run on every downstream dataset."""
    return expand(
        "results/probe/{dataset}/{run}/{downstream}.json",
        dataset=config["pretrain"]["dataset"],
        run=runs(),
        downstream=downstream_datasets(config),
    )


def similarity_targets():
    """The similarity analysis, when there are at least two encoders to compare."""
    if len(runs()) + len(used_generators()) < 2:
        return []
    return [f"results/similarity/{config['pretrain']['dataset']}/cka.csv"]


def all_targets():
    """Every output of the workflow."""
    data = expand("results/data/{dataset}/manifest.json", dataset=sorted(config["datasets"]))
    return data + augmentation_targets() + pretrain_targets() + probe_targets() + similarity_targets()
