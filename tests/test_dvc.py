"""DVC: dvc.yaml is the generated pipeline of the default study, and the push / fresh clone / pull flow plans and
runs only what is downstream of the pulled artifacts, with identical results."""

import shutil
import subprocess

import pytest
import yaml

from genssl.config import load_config
from genssl.dvc_stages import dvc_stages, tracked_targets
from tests.helpers import REPO, TINY_DVC_STUDY, planned_jobs, study_results


def test_the_committed_dvc_yaml_is_the_default_studys_pipeline():
    config_file = REPO / "config" / "config.yaml"
    raw = yaml.safe_load(config_file.read_text())
    committed = yaml.safe_load((REPO / "dvc.yaml").read_text())
    assert committed == dvc_stages(load_config(config_file), raw, "config/config.yaml")
    stages = committed["stages"]
    assert stages["prepare_digits"]["outs"] == ["results/data/digits"]
    assert stages["train_generator_icdiffusion"]["deps"] == [
        "results/data/digits",
        "results/pretrain/digits/simclr/standard",
    ]
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
    assert len([s for s in stages if s.startswith("pretrain_")]) == 20


def _run(command, cwd, env):
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}")
    return result


def _snakemake(cwd, env, *args):
    return _run(["snakemake", "--snakefile", str(REPO / "Snakefile"), *args], cwd, env)


@pytest.mark.slow
def test_push_then_pull_into_a_fresh_clone_runs_only_what_is_downstream(tmp_path, env_with_venv):
    env = {
        **env_with_venv,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    origin = tmp_path / "origin"
    (origin / "config").mkdir(parents=True)
    (origin / "config" / "config.yaml").write_text(yaml.safe_dump(TINY_DVC_STUDY))
    shutil.copytree(REPO / ".dvc", origin / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache", "config.local"))
    (origin / ".gitignore").write_text("results/\nlogs/\n.snakemake/\n")
    _run(["git", "init", "-q"], origin, env)
    _run(["dvc", "remote", "modify", "local", "url", str(tmp_path / "remote")], origin, env)
    _run(["genssl", "dvc-stages"], origin, env)
    _snakemake(origin, env, "-c2")
    _run(["dvc", "commit", "--force", "--quiet"], origin, env)
    _run(["dvc", "push", "--quiet"], origin, env)
    _run(["git", "add", "-A"], origin, env)
    _run(["git", "commit", "-qm", "study"], origin, env)

    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(origin), str(clone)], tmp_path, env)
    assert not (clone / "results").exists()
    _run(["dvc", "pull", "--quiet"], clone, env)
    config = load_config(clone / "config" / "config.yaml")
    pulled = tracked_targets(config)
    assert all((clone / target).is_file() for target in pulled)
    # Pulled files have new times and no Snakemake metadata: touch them in DAG order (make pull does this).
    _snakemake(clone, env, "--cores", "1", "--touch", "--forceall", *pulled)
    plan = planned_jobs(_snakemake(clone, env, "-n"))
    assert plan == {
        "all": 1,
        "extract_features": 2,
        "extract_conditioning_features": 1,
        "linear_probe": 2,
        "similarity": 1,
        "report": 1,
    }
    _snakemake(clone, env, "-c2")
    assert study_results(clone) == study_results(origin)
    # A pulled stage's settings still count: changing the method reruns its runs.
    changed = yaml.safe_load((clone / "config" / "config.yaml").read_text())
    changed["methods"]["simclr"]["temperature"] = 0.5
    (clone / "config" / "config.yaml").write_text(yaml.safe_dump(changed))
    assert planned_jobs(_snakemake(clone, env, "-n"))["pretrain"] == 2
