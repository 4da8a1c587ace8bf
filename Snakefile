# genssl: the study as a Snakemake workflow. Every rule calls a `genssl` command; logic lives in src/genssl.
from snakemake.utils import min_version

from genssl.config import read_config, seed_override_error, typed_overrides, validate_config, weight_path_errors
from genssl.errors import ConfigError
from genssl.study import used_generators

min_version("9.0")


# A study is one whole configuration: `--configfile config/paper.yaml` replaces the embedded default study (instead
# of being merged into it, as Snakemake would), and `--config key=value` overrides single keys of either.
if not workflow.config_settings.configfiles:
    read_config("config/config.yaml")  # a YAML error names the file and line (Snakemake's own message does not)

    configfile: "config/config.yaml"


# The one validation of the workflow: genssl's schema (genssl/schema.yaml, package data) with its defaults filled
# in, every bad key named as a dotted path (e.g. `datasets.digits.image_size: -3 is less than the minimum of 8`).
# Rules pass slices of this resolved config to their commands.
if problem := seed_override_error(workflow.config_settings.config):
    raise ConfigError(problem)
config.update(validate_config(typed_overrides(config, workflow.config_settings.config)))
# Local weights of the generators the study uses are checked now, before any job runs (snakemake -n names them).
if missing := weight_path_errors(config, used_generators(config)):
    raise ConfigError("local weights are missing:\n  " + "\n  ".join(missing))


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
