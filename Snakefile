# genssl: the study as a Snakemake workflow. Every rule calls a `genssl` command; logic lives in src/genssl.
from snakemake.utils import min_version

from genssl.config import validate_config

min_version("9.0")


# A study is one whole configuration: `--configfile config/paper.yaml` replaces the embedded default study (instead
# of being merged into it, as Snakemake would), and `--config key=value` overrides single keys of either.
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


# The one validation of the workflow: genssl's schema (genssl/schema.yaml, package data) with its defaults filled
# in, every bad key named as a dotted path (e.g. `datasets.digits.image_size: -3 is less than the minimum of 8`).
# Rules pass slices of this resolved config to their commands.
config.update(validate_config(config))


include: "rules/common.smk"
include: "rules/prepare.smk"
include: "rules/pretrain.smk"
include: "rules/generate.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
