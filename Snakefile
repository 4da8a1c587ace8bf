# genssl: the study as a Snakemake workflow. Every rule calls a `genssl` command; logic lives in src/genssl.
from snakemake.utils import min_version, validate

from genssl.config import validate_config

min_version("9.0")


# A study is one whole configuration: `--configfile config/paper.yaml` replaces the embedded default study (instead
# of being merged into it, as Snakemake would), and `--config key=value` overrides single keys of either.
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


# genssl's check names every bad key as a dotted path (e.g. `datasets.digits.image_size: -3 is less than the
# minimum of 8`); snakemake's validate then checks the same schema and fills in its defaults.
validate_config(config)
validate(config, schema="config/schema.yaml")


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
