"""The workflow on a real SLURM cluster: the localhost cluster of profiles/slurm/localhost/cluster.sh (make
test-slurm; skipped when no cluster answers). The tiny study submitted through the Snakemake SLURM executor gives
the results of a local run, and a pretraining job killed at its time limit is resubmitted and resumes."""

import json
import shutil
import subprocess

import pytest
import yaml

from tests.helpers import REPO, TINY_DVC_STUDY, study_results

PROFILE = REPO / "profiles" / "slurm" / "localhost"


def _cluster_is_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    result = subprocess.run(["sinfo", "-h", "-o", "%a"], capture_output=True, text=True)
    return result.returncode == 0 and "up" in result.stdout


pytestmark = [
    pytest.mark.slurm,
    pytest.mark.slow,
    pytest.mark.skipif(
        not _cluster_is_up(), reason="no SLURM cluster (start one: profiles/slurm/localhost/cluster.sh start)"
    ),
]


def _study(path, config):
    (path / "config").mkdir(parents=True)
    (path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return path


def _snakemake(workdir, env, *args):
    command = ["snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}")
    return result


def _computed(root):
    """The encoders, probes, similarity files and reported metrics of a study, without the peak memory of each
    pretraining job (a measurement of the process that ran it, which differs between a SLURM job and a local one)."""
    files = study_results(root)
    metrics = json.loads(files.pop("results/report/metrics.json"))
    for run in metrics["pretrain"].values():
        assert run.pop("peak_memory_mib") > 0
    encoders = sorted((root / "results" / "pretrain").rglob("encoder.safetensors"))
    files.update({p.relative_to(root).as_posix(): p.read_bytes() for p in encoders})
    return files, metrics


def test_the_tiny_study_on_slurm_equals_a_local_run(tmp_path, env_with_venv):
    local = _study(tmp_path / "local", TINY_DVC_STUDY)
    cluster = _study(tmp_path / "cluster", TINY_DVC_STUDY)
    _snakemake(local, env_with_venv, "-c2")
    result = _snakemake(cluster, env_with_venv, "--profile", str(PROFILE))
    assert "has been submitted with SLURM jobid" in result.stdout + result.stderr
    files, metrics = _computed(cluster)
    assert any(name.endswith("encoder.safetensors") for name in files) and metrics["pretrain"]
    assert (files, metrics) == _computed(local)
    assert "Nothing to be done" in _snakemake(cluster, env_with_venv, "-n").stdout


def test_a_pretraining_job_killed_at_its_time_limit_is_resubmitted_and_resumes(tmp_path, env_with_venv):
    """One minute of SLURM time for a run of about two and a half: the first attempt is killed (TIMEOUT) after its last
    checkpoint, the retry resumes from it, and the encoder equals that of an uninterrupted local run."""
    config = {
        "seed": 0,
        "datasets": {"digits": {"source": "digits", "image_size": 16}},
        "pretrain": {
            "dataset": "digits",
            "epochs": 100,
            "batch_size": 128,
            "backbone": {"width": 16, "blocks": [1, 1]},
        },
        "methods": {"simclr": {"proj_hidden_dim": 64, "proj_output_dim": 32}},
        "similarity": {"bootstrap": 10},
    }
    target = "results/pretrain/digits/simclr/standard/encoder.safetensors"
    local = _study(tmp_path / "local", config)
    cluster = _study(tmp_path / "cluster", config)
    _snakemake(local, env_with_venv, "-c1", target)
    # The target comes first: --set-resources takes every value that follows it.
    _snakemake(cluster, env_with_venv, target, "--profile", str(PROFILE), "--set-resources", "pretrain:runtime=1")
    log = (cluster / "logs/pretrain/digits/simclr/standard.log").read_text()
    assert "resuming simclr/standard from the checkpoint after epoch" in log
    run = json.loads((cluster / "results/pretrain/digits/simclr/standard/run.json").read_text())
    assert run["final"]["epochs"] == 100
    assert (cluster / target).read_bytes() == (local / target).read_bytes()
