"""DVC: dvc.yaml is the generated pipeline of the default study, and the push / fresh clone / pull flow plans and
runs only what is downstream of the pulled artifacts, with identical results."""

import shutil
import subprocess

import pytest
import yaml

from genssl.config import load_config
from genssl.dvc_stages import dvc_stages
from tests.helpers import REPO, TINY_DVC_STUDY, planned_jobs, study_results


def test_the_committed_dvc_yaml_is_the_default_studys_pipeline():
    config_file = REPO / "config" / "config.yaml"
    raw = yaml.safe_load(config_file.read_text())
    committed = yaml.safe_load((REPO / "dvc.yaml").read_text())
    assert committed == dvc_stages(load_config(config_file), raw, "config/config.yaml")
    stages = committed["stages"]
    assert stages["prepare_digits"]["outs"] == ["results/data/digits"]
    # the generator's own conditioning run (seed 1000), tracked like the compared runs
    assert stages["train_generator_icdiffusion"]["deps"] == [
        "results/data/digits",
        "results/pretrain/digits/simclr/standard-seed1000",
    ]
    assert stages["pretrain_simclr_standard-seed1000"]["outs"] == ["results/pretrain/digits/simclr/standard-seed1000"]
    assert stages["pretrain_simclr_p025"]["deps"] == ["results/augment/digits/icdiffusion", "results/data/digits"]
    # the run's slice (genssl.stages.pretrain_keys) as far as the file holds it: not which methods train p025
    assert stages["pretrain_simclr_p025"]["params"] == [
        {
            "config/config.yaml": [
                "seed",
                "datasets.digits",
                "pretrain",
                "methods.simclr",
                "augmentations.p025.generator",
                "augmentations.p025.p",
                "generators.icdiffusion",
            ]
        }
    ]
    assert stages["report"]["metrics"] == [{"results/report/metrics.json": {"cache": False}}]
    # 7 methods x 2 augmentations x 3 seeds, 6 one-seed ablations of SimCLR and the conditioning run
    assert len([s for s in stages if s.startswith("pretrain_")]) == 42 + 6 + 1


def _run(command, cwd, env, check=True):
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}")
    return result


#: The checkout a user clones: the workflow, its conda environment (Snakemake records it in a job's metadata) and its
#: Makefile (the package comes from the test's environment).
WORKFLOW = ("Snakefile", "rules", "report", "envs", "Makefile")
#: `make` without the .venv set-up (the test's environment has the package on PATH).
MAKE = ("make", "-s", "STAMP=", "CORES=2")


def _origin(root, env):
    origin = root / "origin"
    (origin / "config").mkdir(parents=True)
    (origin / "config" / "config.yaml").write_text(yaml.safe_dump(TINY_DVC_STUDY))
    for name in WORKFLOW:
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, origin / name)
    shutil.copytree(REPO / ".dvc", origin / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache", "config.local"))
    (origin / ".gitignore").write_text("results/\nlogs/\n.snakemake/\n")
    _run(["git", "init", "-q"], origin, env)
    _run(["dvc", "remote", "modify", "local", "url", str(root / "remote")], origin, env)
    _run(["genssl", "dvc-stages"], origin, env)
    return origin


def _set(workdir, key, value):
    """Set ``methods.simclr.{key}`` in the study's config file."""
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    config["methods"]["simclr"][key] = value
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.mark.slow
def test_push_and_pull_move_only_current_artifacts(tmp_path, env_with_venv):
    """Reproduction 2: a push of artifacts that no longer match the configuration is refused, naming them; a pull
    of such artifacts removes them, naming them, so that Snakemake reruns them; current ones are reused."""
    env = {**env_with_venv, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t"}
    env.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    origin = _origin(tmp_path, env)
    _run([*MAKE, "study"], origin, env)
    _set(origin, "lr", 0.5)  # changed, not rerun
    refused = _run([*MAKE, "push"], origin, env, check=False)
    assert refused.returncode != 0
    for stale in ("results/pretrain/digits/simclr/standard", "results/pretrain/digits/simclr/generative"):
        assert f"stale    {stale}" in refused.stdout and stale in refused.stderr
    assert "recorded other config.methods.simclr.lr" in refused.stdout
    _set(origin, "lr", 0.4)
    _run([*MAKE, "push"], origin, env)
    _run(["git", "add", "-A"], origin, env)
    _run(["git", "commit", "-qm", "study"], origin, env)

    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(origin), str(clone)], tmp_path, env)
    assert not (clone / "results").exists()
    _run([*MAKE, "pull"], clone, env)
    plan = planned_jobs(_run(["snakemake", "-n"], clone, env))
    # DVC tracks stores, generators and trained encoders; the random init (seconds to make) and every evaluation are
    # remade: the features and probes of the two runs and of the init.
    assert plan == {
        "all": 1,
        "init_encoder": 1,
        "extract_features": 3,
        "extract_conditioning_features": 1,
        "linear_probe": 3,
        "similarity": 1,
        "report": 1,
    }
    _run(["snakemake", "-c2"], clone, env)
    assert study_results(clone) == study_results(origin)

    stale_clone = tmp_path / "stale"
    _run(["git", "clone", "-q", str(origin), str(stale_clone)], tmp_path, env)
    _set(stale_clone, "temperature", 0.5)  # the configuration moved on; the pushed artifacts did not
    pulled = _run([*MAKE, "pull"], stale_clone, env).stdout
    assert "current  results/data/digits" in pulled
    assert (
        "stale    results/pretrain/digits/simclr/standard: recorded other config.methods.simclr.temperature" in pulled
    )
    assert "removed results/augment/digits/icdiffusion" in pulled
    plan = planned_jobs(_run(["snakemake", "-n"], stale_clone, env))
    assert plan["pretrain"] == 2 and plan["train_generator"] == 1 and plan["gather_augmentations"] == 1
    assert "prepare_dataset" not in plan
