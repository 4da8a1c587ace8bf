"""config/paper.yaml, the paper-scale study, dry-run with the SLURM profile: the DAG's jobs per rule, the fan-out of
generation into shard jobs, and the resources the profile gives the rules (placeholder dataset roots: nothing is
read in a dry run)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from genssl.config import BACKEND_FILES, load_config
from tests.helpers import REPO, planned_jobs


def _dry_run(directory, config_file):
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    command = ["snakemake", "-n", "--snakefile", str(REPO / "Snakefile"), "--directory", str(directory)]
    command += ["--profile", str(REPO / "profiles" / "slurm"), "--configfile", str(config_file), "--cores", "64"]
    return subprocess.run(command, capture_output=True, text=True, env=env)


def with_local_weights(config_file, root):
    """A copy of a paper config whose local weight paths exist (empty stand-ins: a dry run reads nothing)."""
    config = yaml.safe_load(Path(config_file).read_text())
    for name, generator in config["generators"].items():
        for key in BACKEND_FILES.get(generator["backend"], {}):
            path = root / name / Path(generator[key]).name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir() if key == "path" else path.touch()
            generator[key] = str(path)
    copy = root / Path(config_file).name
    copy.write_text(yaml.safe_dump(config))
    return copy


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    result = _dry_run(root, with_local_weights(REPO / "config" / "paper.yaml", root))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_missing_local_weights_stop_the_dry_run_naming_them(tmp_path):
    result = _dry_run(tmp_path, REPO / "config" / "paper.yaml")
    assert result.returncode != 0
    # a dry run (-n) logs to stdout, errors included
    assert "generators.sd_unclip.path: /models/stable-diffusion-2-1-unclip-small does not exist" in result.stdout
    assert "generators.icgan_pretrained.encoder_path: " in result.stdout


def _jobs(result, rule):
    """The blocks of a dry run's jobs of ``rule``."""
    return [block for block in result.stdout.split("\n\n") if f"rule {rule}:" in block]


def test_the_paper_study_has_the_papers_runs_and_evaluations(dry_run):
    config = load_config(REPO / "config" / "paper.yaml")
    assert config["pretrain"]["backbone"]["name"] == "resnet50" and config["pretrain"]["epochs"] == 100
    assert config["generators"]["sd_unclip"]["variants"] == 10
    assert {a.get("p") for a in config["augmentations"].values()} == {None, 0.5}
    # 7 methods x (standard, sd_unclip, icgan) and each method's initialisation; 6 downstream datasets, one job per
    # encoder and dataset; 7 stores (ImageNet twice: pretraining, probes).
    assert planned_jobs(dry_run) == {
        "all": 1,
        "prepare_dataset": 7,
        "generate_shard": 256 + 64,
        "gather_augmentations": 2,
        "pretrain": 21,
        "init_encoder": 7,
        "extract_features": (21 + 7) * 6,
        "extract_conditioning_features": 2,
        "linear_probe": (21 + 7) * 6,
        "similarity": 1,
        "report": 1,
    }


def test_generation_fans_out_into_one_job_per_shard(dry_run):
    shards = {g: set() for g in ("sd_unclip", "icgan_pretrained")}
    for block in _jobs(dry_run, "generate_shard"):
        generator, shard = re.search(r"augment/imagenet/(\w+)\.shards/shard-(\d{5})", block).groups()
        shards[generator].add(int(shard))
    assert shards == {"sd_unclip": set(range(256)), "icgan_pretrained": set(range(64))}


def test_the_slurm_profile_gives_gpus_memory_and_time_to_the_heavy_rules(dry_run):
    (pretrain, *_) = _jobs(dry_run, "pretrain")
    assert "gpu=4" in pretrain and "cpus_per_task=32" in pretrain and "runtime=1440" in pretrain
    assert "torchrun --standalone --nproc_per_node=4 -m genssl --attempt 1 --failure-record " in pretrain
    assert " pretrain --method " in pretrain and "--threads 8" in pretrain
    (shard, *_) = _jobs(dry_run, "generate_shard")
    assert "gpu=1" in shard and "mem_mb=64000" in shard
    (probe, *_) = _jobs(dry_run, "linear_probe")
    assert "gpu=1" in probe and "mem_mb=128000" in probe
    (prepare, *_) = _jobs(dry_run, "prepare_dataset")
    assert "gpu=" not in prepare and "runtime=720" in prepare
