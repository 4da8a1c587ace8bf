# Helpers shared by the rules: the software environment, per-stage slices of the config, the target lists.
# Rules call the `genssl` command on PATH: the project's .venv (`make` puts it first on PATH) or, with
# `--sdm conda`, the environment below.
import re

from genssl import study
from genssl.config import similarity_dataset, to_json
from genssl.generate.registry import TRAINED
from genssl.report.contents import report_figures

#: conda environment of every rule (path relative to the rules/ folder).
GENSSL_ENV = "../envs/genssl.yaml"


def _one_of(names):
    return "|".join(re.escape(name) for name in names) or "(?!)"


wildcard_constraints:
    dataset=_one_of(config["datasets"]),
    method=_one_of(config["methods"]),
    # A run directory: the augmentation's name, with -seed{s} for a replicate seed (genssl.study).
    augmentation=rf"(?:{_one_of(config['augmentations'])})(?:-seed\d+)?",
    generator=_one_of(config["generators"]),
    shard=r"\d{5}",
    downstream=_one_of(config["datasets"]),


def launcher(resources):
    """``genssl``, or ``torchrun ... -m genssl`` (DDP, one process per GPU) for a job with ``gpu`` > 1."""
    gpus = int(resources.gpu)
    return f"torchrun --standalone --nproc_per_node={gpus} -m genssl" if gpus > 1 else "genssl"


def dataset_config_json(wildcards):
    """The part of the config that `genssl prepare` reads for one dataset (a change reruns only that dataset)."""
    return to_json({"seed": config["seed"], "datasets": {wildcards.dataset: config["datasets"][wildcards.dataset]}})


def run_of(wildcards):
    """``(augmentation, seed)`` of the run directory ``wildcards.augmentation`` (augmentation[-seed{s}])."""
    return study.parse_directory(wildcards.augmentation, config)


def _augmentation_entry(name):
    """An augmentation's settings without ``methods`` (which runs exist is not a setting of a run)."""
    return {k: v for k, v in config["augmentations"][name].items() if k != "methods"}


def pretrain_config_json(wildcards):
    """The part of the config one pretraining run reads (a change reruns only the runs it concerns)."""
    dataset = config["pretrain"]["dataset"]
    name, _ = run_of(wildcards)
    augmentation = _augmentation_entry(name)
    generator = augmentation.get("generator")
    part = {
        "seed": config["seed"],
        "datasets": {dataset: config["datasets"][dataset]},
        "pretrain": config["pretrain"],
        "methods": {wildcards.method: config["methods"][wildcards.method]},
        "augmentations": {name: augmentation},
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
        part["augmentations"] = {augmentation: _augmentation_entry(augmentation)}
    return part


def variant_store(wildcards):
    """The variant store a pretraining run reads: its manifest, or nothing for standard augmentation."""
    generator = config["augmentations"][run_of(wildcards)[0]].get("generator")
    if generator is None:
        return []
    return f"{study.augment_dir(config, generator)}/manifest.json"


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
    return study.conditioning_encoder_file(config, wildcards.generator)


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


def similarity_features(wildcards):
    """``{encoder name: feature file}`` of the similarity analysis (genssl.study.similarity_encoders)."""
    return study.similarity_encoders(config)


def report_inputs(wildcards):
    """Every result the report reads: probes, pretraining records, previews and the similarity analysis."""
    files = {"probes": study.probe_files(config)}
    files["runs"] = [f"{study.pretrain_dir(config, run)}/{name}" for run in study.runs(config) for name in ("run.json", "metrics.csv")]
    files["previews"] = [f"{study.augment_dir(config, g)}/preview.png" for g in study.used_generators(config)]
    files["similarity"] = similarity_targets()
    return files


def report_outputs():
    """The report's figures as named outputs. Those the report draws carry their caption (report/*.rst) for
    `snakemake --report`; the copies of the preview grids and heatmaps are in the HTML report already, from the
    rules that make them."""
    captions = {
        "loss": ("loss_curves.rst", "Pretraining"),
        "accuracy": ("accuracy.rst", "Linear probe"),
        "p": ("p_curve.rst", "Linear probe"),
    }
    outputs = {}
    for name in report_figures(config):
        path = f"results/report/figures/{name}"
        kind = name.split("_")[0]
        if kind in captions:
            caption, category = captions[kind]
            path = report(path, caption=f"../report/{caption}", category=category)
        outputs[name.removesuffix(".png")] = path
    return outputs


def similarity_targets():
    """The similarity analysis, when there are at least two encoders to compare."""
    if len(study.similarity_encoders(config)) < 2:
        return []
    directory = study.similarity_dir(config)
    return [f"{directory}/{name}" for name in ("cka.csv", "opd.csv", "matrices.json", "cka.png", "cka_debiased.png", "opd.png")]


def all_targets():
    """Every output of the workflow: the report and, through it, everything it summarises."""
    data = expand("results/data/{dataset}/manifest.json", dataset=sorted(config["datasets"]))
    return data + ["results/report/summary.md"]
