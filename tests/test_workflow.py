"""The Snakemake workflow driven through its command line, in a temporary working directory."""

import csv
import json
import subprocess

import pytest
import yaml

from genssl.store import ImageStore, verify_store
from tests.helpers import REPO

TINY = {
    "seed": 0,
    "datasets": {
        "digits": {"source": "digits", "image_size": 8},
        "shapes": {"source": "shapes", "image_size": 8, "n_per_class": 10},
    },
    "pretrain": {
        "dataset": "digits",
        "epochs": 1,
        "batch_size": 128,
        "backbone": {"name": "small_resnet", "width": 4, "blocks": [1]},
    },
    "methods": {
        "simclr": {"proj_hidden_dim": 16, "proj_output_dim": 8},
        "barlowtwins": {"proj_hidden_dim": 16, "proj_output_dim": 16},
    },
    "downstream": ["digits", "shapes"],
    "probe": {"C": [0.1, 1.0]},
    "similarity": {"bootstrap": 10},
}


def _workdir(tmp_path, config):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def _snakemake(workdir, env, *args, check=True):
    cmd = ["snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def _planned_jobs(result) -> dict[str, int]:
    """The job counts of a dry run's `Job stats` table."""
    lines = (result.stdout + result.stderr).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats:"))
    counts = {}
    for line in lines[start + 3 :]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def test_dry_run_of_the_default_config(tmp_path, env_with_venv):
    workdir = _workdir(tmp_path, yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    result = _snakemake(workdir, env_with_venv, "-n")
    assert _planned_jobs(result) == {
        "all": 1,
        "prepare_dataset": 2,
        "pretrain": 7,
        "extract_features": 14,
        "linear_probe": 14,
        "similarity": 1,
    }
    for method in ("simclr", "mocov2plus", "byol", "simsiam", "barlowtwins", "diet", "sdiet"):
        assert f"output: results/pretrain/digits/{method}/standard/encoder.safetensors" in result.stdout
        for downstream in ("digits", "shapes"):
            assert f"output: results/probe/digits/{method}/standard/{downstream}.json" in result.stdout
    assert not (workdir / "results").exists()


def test_lint_reports_nothing(env_with_venv):
    workdir = REPO
    result = subprocess.run(
        ["snakemake", "--lint", "--snakefile", str(REPO / "Snakefile")],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env_with_venv,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_bad_config_fails_naming_the_key(tmp_path, env_with_venv):
    config = {"datasets": {"digits": {"source": "digits", "image_size": -3}}}
    result = _snakemake(_workdir(tmp_path, config), env_with_venv, "-n", check=False)
    assert result.returncode != 0
    assert "datasets.digits.image_size: -3 is less than the minimum of 8" in result.stdout + result.stderr


def _rewrite(workdir, change):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    change(config)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.mark.slow
def test_the_workflow_runs_through_snakemake_and_reruns_only_what_a_change_concerns(tmp_path, env_with_venv):
    workdir = _workdir(tmp_path, TINY)
    _snakemake(workdir, env_with_venv, "-c2")
    for name, n in (("digits", 1797), ("shapes", 100)):
        store_dir = workdir / "results" / "data" / name
        assert verify_store(store_dir) == []
        assert len(ImageStore(store_dir)) == n
        assert f"prepared {name}: {n} images" in (workdir / "logs" / "prepare_dataset" / f"{name}.log").read_text()
        assert (workdir / "benchmarks" / "prepare_dataset" / f"{name}.tsv").read_text().startswith("s\t")
    run = workdir / "results" / "pretrain" / "digits" / "simclr" / "standard"
    assert {p.name for p in run.iterdir()} == {"encoder.safetensors", "metrics.csv", "run.json", "checkpoint"}
    assert "epoch 1/1: loss" in (workdir / "logs" / "pretrain" / "digits" / "simclr" / "standard.log").read_text()
    for method in ("simclr", "barlowtwins"):
        for downstream in ("digits", "shapes"):
            probe = json.loads((workdir / f"results/probe/digits/{method}/standard/{downstream}.json").read_text())
            assert 0 < probe["top1"] <= 1 and probe["n"]["test"] == {"digits": 359, "shapes": 20}[downstream]
    with open(workdir / "results/similarity/digits/cka.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert (row["a"], row["b"], row["n"]) == ("barlowtwins/standard", "simclr/standard", "359")
    assert float(row["cka_low"]) <= float(row["cka_high"]) and 0 < float(row["cka"]) <= 1
    assert "Nothing to be done" in _snakemake(workdir, env_with_venv, "-n").stdout

    # Changing a method's setting reruns only that method's branch.
    _rewrite(workdir, lambda c: c["methods"]["simclr"].update(temperature=0.5))
    result = _snakemake(workdir, env_with_venv, "-n")
    assert _planned_jobs(result) == {"all": 1, "pretrain": 1, "extract_features": 2, "linear_probe": 2, "similarity": 1}
    assert "output: results/pretrain/digits/barlowtwins" not in result.stdout

    # Changing a probe setting reruns only the probes; a similarity setting only the similarity analysis.
    _rewrite(workdir, lambda c: c["probe"].update(C=[1.0]))
    assert _planned_jobs(_snakemake(workdir, env_with_venv, "-n")) == {"all": 1, "linear_probe": 4}
    _rewrite(workdir, lambda c: c["similarity"].update(bootstrap=20))
    assert _planned_jobs(_snakemake(workdir, env_with_venv, "-n")) == {"all": 1, "similarity": 1}

    # Changing one dataset's setting reruns only that dataset and what is computed from it.
    _rewrite(workdir, lambda c: c["datasets"]["shapes"].update(n_per_class=12))
    result = _snakemake(workdir, env_with_venv, "-n")
    assert _planned_jobs(result) == {"all": 1, "prepare_dataset": 1, "extract_features": 2, "linear_probe": 2}
    assert "output: results/data/shapes/manifest.json" in result.stdout
    assert "output: results/data/digits/manifest.json" not in result.stdout
