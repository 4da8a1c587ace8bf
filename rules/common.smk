# Helpers shared by the rules: the software environment, per-stage slices of the config, the target lists.
# Rules call the `genssl` command on PATH: the project's .venv (`make` puts it first on PATH) or, with
# `--sdm conda`, the environment below.
import re

from genssl.config import to_json

#: conda environment of every rule (path relative to the rules/ folder).
GENSSL_ENV = "../envs/genssl.yaml"


wildcard_constraints:
    dataset="|".join(re.escape(name) for name in config["datasets"]) or "(?!)",


def dataset_config_json(wildcards):
    """The part of the config that `genssl prepare` reads for one dataset (a change reruns only that dataset)."""
    return to_json({"seed": config["seed"], "datasets": {wildcards.dataset: config["datasets"][wildcards.dataset]}})


def all_targets():
    """Every output the workflow can make so far."""
    return expand("results/data/{dataset}/manifest.json", dataset=sorted(config["datasets"]))
