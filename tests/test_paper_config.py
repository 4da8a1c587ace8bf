"""config/paper.yaml (the paper's text) and config/paper_official_code.yaml (what the released code runs), the
paper-scale studies, dry-run with the SLURM profile: the DAG's jobs per rule, the fan-out of generation into shard
jobs, and the resources the profile gives the rules (placeholder dataset roots: nothing is read in a dry run)."""

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


def _dry_run_of(root, name):
    result = _dry_run(root, with_local_weights(REPO / "config" / name, root))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    return _dry_run_of(tmp_path_factory.mktemp("paper"), "paper.yaml")


@pytest.fixture(scope="module")
def official_dry_run(tmp_path_factory):
    return _dry_run_of(tmp_path_factory.mktemp("paper_official_code"), "paper_official_code.yaml")


def test_missing_local_weights_stop_the_dry_run_naming_them(tmp_path):
    result = _dry_run(tmp_path, REPO / "config" / "paper.yaml")
    assert result.returncode != 0
    output = result.stdout + result.stderr  # a dry run (-n) logs to stdout, errors included
    assert "generators.sd_unclip.path: /models/stable-diffusion-2-1-unclip-small does not exist" in output
    assert "generators.icgan_pretrained.encoder_path: " in output


def _jobs(result, rule):
    """The blocks of a dry run's jobs of ``rule``."""
    return [
        block for block in result.stdout.split("\n\n") if f"rule {rule}:" in block or f"checkpoint {rule}:" in block
    ]


def test_the_paper_study_has_the_papers_runs_and_evaluations(dry_run):
    config = load_config(REPO / "config" / "paper.yaml")
    assert config["pretrain"]["backbone"]["name"] == "resnet50" and config["pretrain"]["epochs"] == 100
    assert config["generators"]["sd_unclip"]["variants"] == 10
    generative = {n: a for n, a in config["augmentations"].items() if a.get("generator")}
    assert {(a["p"], a["views"], a["assignment"]) for n, a in generative.items() if "methods" not in a} == {
        (0.5, "both", "per_step")
    }
    ablations = {n: (a["p"], a["mode"]) for n, a in generative.items() if a.get("methods") == ["simclr"]}
    assert sorted(ablations.values()) == [
        (0.25, "generative+standard"),
        (0.5, "generative+crop"),
        (0.5, "generative-only"),
        (0.75, "generative+standard"),
        (1.0, "generative+standard"),
    ]
    # 7 methods x (standard, sd_unclip, icgan) + SimCLR's 5 ablations, and each method's initialisation; 6 downstream
    # datasets, one job per encoder and dataset; 7 stores (ImageNet twice: pretraining, probes).
    assert planned_jobs(dry_run) == {
        "all": 1,
        "prepare_dataset": 7,
        "generate_shard": 256 + 64,
        "gather_augmentations": 2,
        "pretrain": 21 + 5,
        "init_encoder": 7,
        "extract_features": (26 + 7) * 6,
        "extract_conditioning_features": 2,
        "linear_probe": (26 + 7) * 6,
        "similarity": 1,
        "report": 1,
    }


def test_the_official_code_study_replaces_the_second_view_at_p_one(official_dry_run):
    config = load_config(REPO / "config" / "paper_official_code.yaml")
    assert sorted(config["methods"]) == ["barlowtwins", "byol", "mocov2plus", "simclr", "simsiam"]
    generative = [a for a in config["augmentations"].values() if a.get("generator")]
    assert {(a["views"], a["assignment"], a["mode"]) for a in generative} == {
        ("second", "per_step", "generative+standard")
    }
    assert sorted(a["p"] for a in generative if "methods" not in a) == [1.0, 1.0]
    assert sorted(a["p"] for a in generative if a.get("methods") == ["simclr"]) == [0.25, 0.5, 0.75]
    # 5 methods x (standard, sd_unclip, icgan) + SimCLR's p sweep of 3, and the initialisations
    assert planned_jobs(official_dry_run) == {
        "all": 1,
        "prepare_dataset": 7,
        "generate_shard": 256 + 64,
        "gather_augmentations": 2,
        "pretrain": 15 + 3,
        "init_encoder": 5,
        "extract_features": (18 + 5) * 6,
        "extract_conditioning_features": 2,
        "linear_probe": (18 + 5) * 6,
        "similarity": 1,
        "report": 1,
    }


def test_generation_fans_out_into_one_job_per_shard(dry_run):
    shards = {g: set() for g in ("sd_unclip", "icgan_pretrained")}
    for block in _jobs(dry_run, "generate_shard"):
        generator, shard = re.search(r"augment/imagenet/(\w+)\.shards/shard-(\d{5})", block).groups()
        shards[generator].add(int(shard))
    assert shards == {"sd_unclip": set(range(256)), "icgan_pretrained": set(range(64))}


@pytest.mark.parametrize("study", ["dry_run", "official_dry_run"])
def test_the_slurm_profile_gives_gpus_memory_and_time_to_the_heavy_rules(study, request):
    dry_run = request.getfixturevalue(study)
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
