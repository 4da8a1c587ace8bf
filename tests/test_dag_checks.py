"""What the workflow refuses when it builds the DAG, before any job: a seed override that would mix seeds, missing
local weights, and a configuration file that is not valid YAML (named with its line). A dry run (-n) logs to stdout,
errors included."""

import yaml

from tests.helpers import snakemake, study_dir

TINY = {"datasets": {"digits": {"source": "digits", "image_size": 8}}, "methods": {"simclr": {}}}


def test_seed_alone_is_refused_with_the_spelling_that_changes_both(tmp_path, env_with_venv):
    result = snakemake(study_dir(tmp_path, TINY), env_with_venv, "-n", "--config", "seed=1", check=False)
    assert result.returncode != 0 and "--config seed=1 'seeds=[1]'" in result.stdout
    both = snakemake(tmp_path, env_with_venv, "-n", "--config", "seed=1", "seeds=[1]")
    assert "pretrain" in both.stdout


def test_missing_local_weights_are_named_by_a_dry_run(tmp_path, env_with_venv):
    config = {
        **TINY,
        "generators": {"sd": {"backend": "sd_unclip", "path": str(tmp_path / "no-weights")}},
        "augmentations": {"standard": {}, "gen": {"generator": "sd"}},
    }
    result = snakemake(study_dir(tmp_path / "study", config), env_with_venv, "-n", check=False)
    assert result.returncode != 0
    assert f"generators.sd.path: {tmp_path / 'no-weights'} does not exist" in result.stdout


def test_a_yaml_error_of_the_study_names_the_file_and_line(tmp_path, env_with_venv):
    workdir = study_dir(tmp_path, TINY)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(TINY) + "methods: {simclr: {lr: 0.1}\n")
    result = snakemake(workdir, env_with_venv, "-n", check=False)
    assert result.returncode != 0 and "config/config.yaml:" in result.stdout and "not valid YAML" in result.stdout
