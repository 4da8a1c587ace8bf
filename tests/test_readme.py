"""The README's Snakemake commands do what they say: each runs as a dry run on the default study, and plans exactly
the jobs of its targets (a target written after a list option would be swallowed by it)."""

import re
import shlex

import pytest
import yaml

from genssl.config import validate_config
from genssl.study import runs, separate_conditioning_runs
from tests.helpers import REPO, planned_jobs, snakemake, study_dir

DEFAULT = validate_config(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))


def _whole_study(config):
    """The pretraining runs of the whole study: a plan of everything holds one pretrain job per run (and per
    generator's conditioning run of its own)."""
    return {"pretrain": len(runs(config)) + len(separate_conditioning_runs(config)), "report": 1}


#: The jobs each command of the README's "Running parts of the workflow" plans in an empty directory.
EXPECTED = {
    "snakemake -c2": _whole_study(DEFAULT),
    "snakemake results/data/shapes/manifest.json -c2": {"prepare_dataset": 1},
    "snakemake results/data/digits/manifest.json -c2 --forcerun prepare_dataset": {"prepare_dataset": 1},
    "snakemake results/pretrain/digits/simclr/standard/encoder.safetensors -c2 --forcerun pretrain": {
        "prepare_dataset": 1,
        "pretrain": 1,
    },
    "snakemake -c2 --config 'seeds=[0,1,2,3]'": _whole_study({**DEFAULT, "seeds": [0, 1, 2, 3]}),
}


def _readme_commands():
    text = (REPO / "README.md").read_text()
    block = text.split("## Running parts of the workflow", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines()]
    return [line for line in lines if line.startswith("snakemake ") and "--lint" not in line]


def test_the_readme_lists_the_commands_checked_here():
    assert _readme_commands() == list(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("command", list(EXPECTED))
def test_a_readme_command_plans_the_jobs_of_its_targets(command, tmp_path, env_with_venv):
    workdir = study_dir(tmp_path, yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    plan = planned_jobs(snakemake(workdir, env_with_venv, *shlex.split(command)[1:], "-n"))
    expected = EXPECTED[command]
    if "report" in expected:  # the whole study: its runs and the report, whatever else
        assert {rule: plan[rule] for rule in expected} == expected
    else:
        assert plan == expected
