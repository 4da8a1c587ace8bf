# Helpers shared by the rules: the software environment, each stage's slice of the config and its inputs, all
# from the stage contract (genssl.stages). Rules call the `genssl` command on PATH: the project's .venv (`make`
# puts it first on PATH) or, with `--sdm conda`, the environment below.
import re

from genssl import stages, study
from genssl.config import downstream_datasets, to_json
from genssl.generate.registry import TRAINED
from genssl.report.contents import report_figures

#: conda environment of every rule (path relative to the rules/ folder).
GENSSL_ENV = "../envs/genssl.yaml"
#: Where every rule's log: and benchmark: files go.
LOGS, BENCHMARKS = "logs", stages.BENCHMARKS
#: genssl's options of every rule: Snakemake's attempt of the job and a record beside its log of an error a retry
#: cannot fix, so that a retried job ends at once with it (genssl.failures); rules declare the attempt resource.
RETRY_AWARE = " --attempt {resources.attempt} --failure-record {log}.failed"
GENSSL = f"genssl{RETRY_AWARE}"


def attempt_of(wildcards, attempt):
    """Snakemake's attempt of a job (1, then 2, ... when it is retried)."""
    return attempt


#: The store of the wildcard `downstream` (an evaluation stage's dataset).
DOWNSTREAM_MANIFEST = f"{stages.data_dir('{downstream}')}/{stages.MANIFEST}"
#: The datasets every encoder's features are extracted on, and those it is probed on.
EVALUATION_DATASETS = stages.evaluation_datasets(config)
DOWNSTREAM_DATASETS = downstream_datasets(config)
#: features.one_job_per_encoder: one evaluation job per encoder for all its datasets (rule evaluate_encoder), else
#: a features job and a probe job per encoder and dataset (rules extract_features and linear_probe).
PER_ENCODER = config["features"]["one_job_per_encoder"]


def _one_of(names):
    return "|".join(re.escape(name) for name in names) or "(?!)"


def run_directories(names):
    """A run directory of the augmentations (or initialisation) ``names``: the name, with -seed{s} for a replicate
    seed (genssl.study.Run)."""
    return rf"(?:{_one_of(names)})(?:-seed\d+)?"


#: The run directories of pretraining runs, and of the initialisations (genssl.study.INIT).
PRETRAINED_RUN = run_directories(config["augmentations"])
INIT_RUN = run_directories([study.INIT])


wildcard_constraints:
    dataset=_one_of(config["datasets"]),
    method=_one_of(config["methods"]),
    # Evaluation stages read the encoder of a pretraining run or of an initialisation.
    run=run_directories([*config["augmentations"], study.INIT]),
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


def init_config_json(wildcards):
    return sliced(stages.init_keys())


def generator_config_json(wildcards):
    return sliced(stages.generator_keys(config, wildcards.generator))


def features_config_json(wildcards):
    return sliced(stages.features_keys(config, wildcards.downstream))


def conditioning_features_config_json(wildcards):
    return sliced(stages.features_keys(config, wildcards.downstream, wildcards.generator))


def probe_config_json(wildcards):
    return sliced(stages.probe_keys(config, wildcards.downstream))


def evaluation_config_json(wildcards):
    return sliced(stages.evaluation_job_keys(config))


def similarity_config_json(wildcards):
    return sliced(stages.similarity_keys(config))


def prepared_store_files(dataset):
    """The files of the store of ``dataset`` (genssl.stages.store_files), besides its manifest. Rule prepare_dataset
    is a checkpoint: a job reading a store that does not exist yet gets its inputs evaluated again once the store is
    written, so it records the same input files on its first run as on any later one (else the next run would see a
    changed set of input files and redo the study)."""
    checkpoints.prepare_dataset.get(dataset=dataset)
    return stages.store_files(stages.data_dir(dataset))[1:]


def data_store_files(wildcards):
    """The files of the store of the wildcard `dataset`, besides its manifest."""
    return prepared_store_files(wildcards.dataset)


def downstream_store_files(wildcards):
    """The files of the store of the wildcard `downstream`, besides its manifest."""
    return prepared_store_files(wildcards.downstream)


def manifests_of(datasets):
    return [DOWNSTREAM_MANIFEST.format(downstream=d) for d in datasets]


def store_files_of(datasets):
    """The files of the stores of ``datasets``, besides their manifests."""
    return [f for d in datasets for f in prepared_store_files(d)]


def stores_of(datasets):
    """The store directories of ``datasets``, space-separated (a command's list option)."""
    return " ".join(stages.data_dir(d) for d in datasets)


def run_encoder(wildcards):
    """The encoder of the wildcards' run: a pretraining run's or an initialisation's (genssl.stages.encoder_file)."""
    return stages.encoder_file(config, run_of(wildcards))


def variant_store(wildcards):
    """The variant store a pretraining run reads: its manifest and files, or nothing for standard augmentation. Rule
    gather_augmentations is a checkpoint, as prepare_dataset (prepared_store_files)."""
    generator = config["augmentations"][run_of(wildcards).augmentation].get("generator")
    if generator is None:
        return []
    checkpoints.gather_augmentations.get(dataset=config["pretrain"]["dataset"], generator=generator)
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
    """The encoder and the downstream store of a linear_probe job, which only the augmented protocol reads."""
    if config["probe"]["protocol"] != "augmented":
        return {}
    return {
        "encoder": run_encoder(wildcards),
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
