# Helpers shared by the rules: the software environment, each stage's slice of the config and its inputs, all
# from the stage contract (genssl.stages). Rules call the `genssl` command on PATH: the project's .venv (`make`
# puts it first on PATH) or, with `--sdm conda`, the environment below.
import re

from genssl import stages, study
from genssl.config import to_json
from genssl.generate.registry import TRAINED
from genssl.report.contents import report_figures

#: conda environment of every rule (path relative to the rules/ folder).
GENSSL_ENV = "../envs/genssl.yaml"
#: Where every rule's log: and benchmark: files go.
LOGS, BENCHMARKS = "logs", stages.BENCHMARKS
#: genssl's options of every rule: Snakemake's attempt of the job and a record beside its log of an error a retry
#: cannot fix, so that a retried job ends at once with it (genssl.failures); rules declare the attempt resource.
RETRY_AWARE = " --attempt {resources.attempt} --failure-record {log}.failed"
GENSSL = "genssl" + RETRY_AWARE


def attempt_of(wildcards, attempt):
    """Snakemake's attempt of a job (1, then 2, ... when it is retried)."""
    return attempt


#: The store of the wildcard `downstream` (an evaluation stage's dataset).
DOWNSTREAM_MANIFEST = f"{stages.data_dir('{downstream}')}/{stages.MANIFEST}"


def _one_of(names):
    return "|".join(re.escape(name) for name in names) or "(?!)"


wildcard_constraints:
    dataset=_one_of(config["datasets"]),
    method=_one_of(config["methods"]),
    # A run directory: the augmentation's name, with -seed{s} for a replicate seed (genssl.study.Run).
    run=rf"(?:{_one_of(config['augmentations'])})(?:-seed\d+)?",
    generator=_one_of(config["generators"]),
    shard=r"\d{5}",
    downstream=_one_of(config["datasets"]),


def launcher(resources):
    """``genssl``, or ``torchrun ... -m genssl`` (DDP, one process per GPU) for a job with ``gpu`` > 1."""
    gpus = int(resources.gpu)
    return f"torchrun --standalone --nproc_per_node={gpus} -m genssl" if gpus > 1 else "genssl"


def sliced(keys):
    """The config cut to the dotted ``keys`` as canonical JSON: what a rule passes to its command."""
    return to_json(stages.config_slice(config, keys))


def run_of(wildcards):
    """The run (genssl.study.Run) of the wildcards ``method`` and ``run`` (its directory)."""
    return study.run_from_directory(wildcards.method, wildcards.run, config)


def dataset_config_json(wildcards):
    return sliced(stages.dataset_keys(wildcards.dataset))


def pretrain_config_json(wildcards):
    run = run_of(wildcards)
    return sliced(stages.pretrain_keys(config, run.method, run.augmentation))


def generator_config_json(wildcards):
    return sliced(stages.generator_keys(config, wildcards.generator))


def features_config_json(wildcards):
    return sliced(stages.features_keys(config, wildcards.downstream, wildcards.get("generator")))


def probe_config_json(wildcards):
    return sliced(stages.probe_keys(config, wildcards.downstream))


def similarity_config_json(wildcards):
    return sliced(stages.similarity_keys(config))


def data_store_files(wildcards):
    """The files of the store of the wildcard `dataset` (genssl.stages.store_files), besides its manifest."""
    return stages.store_files(stages.data_dir(wildcards.dataset))[1:]


def downstream_store_files(wildcards):
    """The files of the store of the wildcard `downstream`, besides its manifest."""
    return stages.store_files(stages.data_dir(wildcards.downstream))[1:]


def variant_store(wildcards):
    """The variant store a pretraining run reads: its manifest, or nothing for standard augmentation."""
    generator = config["augmentations"][run_of(wildcards).augmentation].get("generator")
    if generator is None:
        return []
    return stages.store_files(stages.augment_dir(config, generator))


def conditioning_encoder(wildcards):
    """The encoder a trained generator is conditioned on: a pretraining run of this study or a given file."""
    return stages.conditioning_encoder_file(config, wildcards.generator)


def generator_weights(wildcards):
    """A trained generator's record (generator.json), or nothing for backends with local weights."""
    if config["generators"][wildcards.generator]["backend"] in TRAINED:
        return f"{stages.generator_dir(config, wildcards.generator)}/{stages.GENERATOR_RECORD}"
    return []


def generation_shards(wildcards):
    """The shard directories of one variant store (``generators.*.shards`` separate jobs)."""
    shards = config["generators"][wildcards.generator]["shards"]
    return [stages.SHARD.format(shard=f"{s:05d}", **wildcards) for s in range(shards)]


def augmented_probe_inputs(wildcards):
    """The encoder and the downstream store, which only the augmented protocol reads."""
    if config["probe"]["protocol"] != "augmented":
        return {}
    return {
        "encoder": stages.encoder_file(config, run_of(wildcards)),
        "data": DOWNSTREAM_MANIFEST.format(downstream=wildcards.downstream),
        "data_files": downstream_store_files(wildcards),
    }


def similarity_features(wildcards):
    """``{encoder name: feature file}`` of the similarity analysis (genssl.stages.similarity_encoders)."""
    return stages.similarity_encoders(config)


def report_inputs(wildcards):
    """Every result the report reads (genssl.stages.report_inputs)."""
    return stages.report_inputs(config)


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
        path = f"{stages.REPORT}/figures/{name}"
        kind = name.split("_")[0]
        if kind in captions:
            caption, category = captions[kind]
            path = report(path, caption=f"../report/{caption}", category=category)
        outputs[name.removesuffix(".png")] = path
    return outputs


def all_targets():
    """Every output of the workflow: the report and, through it, everything it summarises."""
    data = [f"{stages.data_dir(d)}/{stages.MANIFEST}" for d in sorted(config["datasets"])]
    return data + [f"{stages.REPORT}/summary.md"]
