"""The Snakemake workflow driven through its command line, in a temporary working directory: the default study's
DAG, a tiny study end to end (every stage, the report), and what a change of the configuration reruns."""

import csv
import json
import math
import os
import subprocess

import pytest
import yaml

from genssl.config import validate_config
from genssl.store import ImageStore, verify_store
from genssl.study import runs
from tests.helpers import REPO, TINY_ICDIFFUSION, planned_jobs, snakemake, study_dir

#: The whole DAG at a tiny size: two methods, a trained generator conditioned on a run of its own (seed 7), the p
#: sweep (one seed) and the mode ablation for SimCLR, two seeds, the initialisations, one downstream dataset and the
#: similarity analysis.
TINY = {
    "seed": 0,
    "seeds": [0, 1],
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
    "methods": {"simclr": {"proj_hidden_dim": 16, "proj_output_dim": 8}, "sdiet": {"proj_output_dim": 8}},
    "generators": {
        "icdiffusion": {
            **TINY_ICDIFFUSION,
            "conditioning": {"method": "simclr", "augmentation": "standard", "seed": 7},
        }
    },
    "augmentations": {
        "standard": {},
        "generative": {"generator": "icdiffusion"},
        "p100": {"generator": "icdiffusion", "p": 1.0, "methods": ["simclr"], "seeds": [0]},
        "generative_only": {"generator": "icdiffusion", "mode": "generative-only", "methods": ["simclr"]},
    },
    "downstream": ["digits"],
    "probe": {"C": [0.1, 1.0]},
    "similarity": {"bootstrap": 10},
}


#: The default study's jobs besides the evaluation: 7 methods x (standard, generative) x 3 seeds + SimCLR's p sweep
#: (0.25, 0.75, 1), mode ablation (2) and icgan with one seed: 48 runs, and the generators' own conditioning run
#: (simclr/standard, seed 1000); each method's initialisation for the 3 seeds; two generators, four shards each,
#: conditioned on one encoder.
DEFAULT_STUDY_JOBS = {
    "all": 1,
    "prepare_dataset": 2,
    "pretrain": 49,
    "init_encoder": 21,
    "train_generator": 2,
    "generate_shard": 8,
    "gather_augmentations": 2,
    "extract_conditioning_features": 1,
    "similarity": 1,
    "report": 1,
}
#: The encoders evaluated: the 48 runs and the 21 initialisations.
ENCODERS = 48 + 21


def test_dry_run_of_the_default_study(tmp_path, env_with_venv):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    workdir = study_dir(tmp_path, config)
    result = snakemake(workdir, env_with_venv, "-n")
    # One evaluation job per encoder: its features of digits and shapes, then its probes of both.
    assert planned_jobs(result) == {**DEFAULT_STUDY_JOBS, "evaluate_encoder": ENCODERS}
    for method in ("simclr", "mocov2plus", "byol", "simsiam", "barlowtwins", "diet", "sdiet"):
        for augmentation in ("standard", "generative"):
            assert f"output: results/pretrain/digits/{method}/{augmentation}/encoder.safetensors" in result.stdout
            files = [f"results/features/digits/{method}/{augmentation}/{d}.npz" for d in ("digits", "shapes")]
            files += [f"results/probe/digits/{method}/{augmentation}/{d}.json" for d in ("digits", "shapes")]
            assert f"output: {', '.join(files)}" in result.stdout
    assert "output: results/pretrain/digits/simclr/p025/encoder.safetensors" in result.stdout
    assert "output: results/pretrain/digits/simclr/p025-seed1/encoder.safetensors" not in result.stdout
    assert "output: results/pretrain/digits/byol/generative-seed2/encoder.safetensors" in result.stdout
    assert "output: results/pretrain/digits/byol/p025/encoder.safetensors" not in result.stdout
    assert "output: results/pretrain/digits/simclr/standard-seed1000/encoder.safetensors" in result.stdout
    assert "output: results/init/digits/byol/init-seed2/encoder.safetensors" in result.stdout
    assert not (workdir / "results").exists()


def test_dry_run_of_the_default_study_with_a_job_per_encoder_and_dataset(tmp_path, env_with_venv):
    """features.one_job_per_encoder: false (a cluster's layout): a features job and a probe job per encoder and
    dataset."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["features"]["one_job_per_encoder"] = False
    result = snakemake(study_dir(tmp_path, config), env_with_venv, "-n")
    evaluation = {"extract_features": 2 * ENCODERS, "linear_probe": 2 * ENCODERS}
    assert planned_jobs(result) == {**DEFAULT_STUDY_JOBS, **evaluation}
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert "output: results/features/digits/byol/init-seed2/shapes.npz" in lines
    assert "log: logs/linear_probe/digits/byol/init-seed2/shapes.log" in lines


def test_lint_reports_nothing(env_with_venv):
    result = subprocess.run(
        ["snakemake", "--lint", "--snakefile", str(REPO / "Snakefile")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env_with_venv,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_bad_config_fails_naming_the_key(tmp_path, env_with_venv):
    config = {"datasets": {"digits": {"source": "digits", "image_size": -3}}}
    result = snakemake(study_dir(tmp_path, config), env_with_venv, "-n", check=False)
    assert result.returncode != 0
    assert "datasets.digits.image_size: -3 is less than the minimum of 8" in result.stdout + result.stderr


def _rewrite(workdir, change):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    change(config)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))


def _finite_cells(table_lines):
    """The numbers of a Markdown table's body (cells like `85.1`, `85.1 ± 2.0` or `0.5 [0.4, 0.6]`)."""
    numbers = []
    for line in table_lines[2:]:
        for cell in line.strip("|").split("|")[1:]:
            first = cell.strip().split(" ")[0]
            try:
                numbers.append(float(first))
            except ValueError:
                continue
    return numbers


@pytest.mark.slow
def test_a_tiny_study_runs_end_to_end_and_reruns_only_what_a_change_concerns(tmp_path, env_with_venv):
    workdir = study_dir(tmp_path, TINY)
    snakemake(workdir, env_with_venv, "-c2")
    for name, n in (("digits", 1797), ("shapes", 100)):
        assert verify_store(workdir / "results" / "data" / name) == []
        assert len(ImageStore(workdir / "results" / "data" / name)) == n
    assert "epoch 1/1: loss" in (workdir / "logs/pretrain/digits/simclr/standard.log").read_text()
    assert (workdir / "results/benchmarks/prepare_dataset/digits.tsv").read_text().startswith("s\t")
    assert not (workdir / "results/augment/digits/icdiffusion.shards").exists()  # temp() shards are removed

    # Every run, replicate seeds included, was trained and probed; the p sweep with its one seed only.
    config = validate_config(TINY)
    assert len(runs(config)) == 11
    replicate = json.loads((workdir / "results/pretrain/digits/simclr/generative_only-seed1/run.json").read_text())
    assert replicate["seed"] == 1 and replicate["config"]["seed"] == 0
    assert not (workdir / "results/pretrain/digits/simclr/p100-seed1").exists()
    probe = json.loads((workdir / "results/probe/digits/sdiet/generative-seed1/digits.json").read_text())
    assert 0 < probe["top1"] <= 1 and probe["n"]["test"] == 359
    # Each method's initialisation for each seed went through features and probe like a trained encoder.
    init = json.loads((workdir / "results/probe/digits/sdiet/init-seed1/digits.json").read_text())
    assert (
        0 < init["top1"] <= 1 and init["encoder"]["file"] == "results/init/digits/sdiet/init-seed1/encoder.safetensors"
    )
    # The generator is conditioned on a run of its own, which no comparison includes.
    own = workdir / "results/pretrain/digits/simclr/standard-seed7/encoder.safetensors"
    assert (workdir / "results/generators/digits/icdiffusion/encoder.safetensors").read_bytes() == own.read_bytes()
    assert not (workdir / "results/probe/digits/simclr/standard-seed7").exists()

    # The similarity analysis compares every run of every seed and the conditioning encoder; the bootstrap over test
    # examples covers the first seed's pairs.
    with open(workdir / "results/similarity/digits/cka.csv") as f:
        pairs = list(csv.DictReader(f))
    assert len(pairs) == 12 * 11 // 2
    conditioning = next(p for p in pairs if p["a"] == "simclr/standard" and p["b"] == "conditioning/icdiffusion")
    assert float(conditioning["cka"]) < 1.0 and conditioning["cka_low"] != ""  # another run than the conditioning one
    seed_pair = next(p for p in pairs if p["a"] == "simclr/standard" and p["b"] == "simclr/standard-seed1")
    assert seed_pair["kind"] == "seed_to_seed" and seed_pair["cka_low"] == ""

    # The report holds every table and figure, with finite values; the claims table comes first.
    summary = (workdir / "results/report/summary.md").read_text()
    headings = [line for line in summary.splitlines() if line.startswith("## ")]
    assert headings[:2] == ["## Claims", "## Settings"]
    for heading in (
        "## Linear probe top-1 (%)",
        "## kNN top-1 (%), k = 20",
        "## Does every method learn?",
        "## Generative minus standard (paired by seed, percentage points, 95 % t intervals over seeds)",
        "## p sweep: simclr, icdiffusion",
        "## Mode ablation: simclr, icdiffusion",
        "## S-DIET and the other methods",
        "## Representation similarity",
        "### Against the conditioning encoder conditioning/icdiffusion (intervals over seeds)",
        "### Seed to seed",
        "## Runtime per rule",
    ):
        assert any(line.startswith(heading) for line in summary.splitlines()), heading
    claims = summary[summary.index("## Claims") : summary.index("## Settings")]
    for claim in (
        "Generative augmentation helps every method",
        "p = 0.5 is the best probability",
        "Generative + standard augmentations beat generative only",
        "The SSL encoder does not copy the conditioning encoder",
        "S-DIET matches contrastive accuracy at lower memory",
    ):
        assert f"| {claim}" in claims, claim
    assert "(95 % t, n = 2)" in claims and "(n = 1: no interval)" in claims  # the p sweep ran one seed
    assert any(v in claims for v in ("**supported**", "**contradicted**", "**inconclusive at this scale**"))
    deltas = summary[summary.index("## Generative minus standard") :]
    assert "(95 % t, n = 2)" in deltas and ("Intervals that exclude 0" in deltas or "No interval excludes 0" in deltas)
    assert "| random init |" in summary and "p100 (seed 0)" in summary
    assert "they do not cover the variation between training runs" in summary
    tables = [block.splitlines() for block in summary.split("\n\n") if block.startswith("|")]
    values = [v for table in tables for v in _finite_cells(table)]
    assert len(values) > 50 and all(math.isfinite(v) for v in values)
    # the step plan: batch, accumulation, images per step, peak lr, steps (1293 // 128)
    assert "| simclr | 128 | 1 | 128 | 0.2 | lars | 10 |" in summary
    for name in (
        "preview_icdiffusion",
        "loss_curves",
        "accuracy_digits",
        "p_curve",
        "similarity_cka",
        "similarity_opd",
    ):
        assert (workdir / f"results/report/figures/{name}.png").stat().st_size > 5000
    metrics = json.loads((workdir / "results/report/metrics.json").read_text())
    assert math.isfinite(metrics["probe"]["digits"]["simclr/standard"]["top1"])
    with open(workdir / "results/report/results.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(math.isfinite(float(r["value"])) for r in rows)
    assert {r["seed"] for r in rows if r["section"] == "probe"} == {"0", "1"}
    assert {r["augmentation"] for r in rows if r["section"] == "probe"} >= {"init", "standard", "p100"}
    html = snakemake(workdir, env_with_venv, "--report", "results/report.html")
    assert (workdir / "results/report.html").stat().st_size > 100_000, html.stderr

    # After a complete run there is nothing to do.
    assert "Nothing to be done" in snakemake(workdir, env_with_venv, "-n").stdout

    # A method's setting reruns that method's branch only: its runs (both seeds, all augmentations), their
    # features and probes, and what summarises them.
    _rewrite(workdir, lambda c: c["methods"]["sdiet"].update(temperature=0.2))
    result = snakemake(workdir, env_with_venv, "-n")
    assert planned_jobs(result) == {
        "all": 1,
        "pretrain": 4,
        "extract_features": 4,
        "linear_probe": 4,
        "similarity": 1,
        "report": 1,
    }
    assert "output: results/pretrain/digits/simclr" not in result.stdout

    # A probe setting reruns only the probes and the report; a similarity setting only the analysis and the report.
    _rewrite(workdir, lambda c: c["probe"].update(C=[1.0]))
    assert planned_jobs(snakemake(workdir, env_with_venv, "-n")) == {"all": 1, "linear_probe": 11 + 4, "report": 1}
    _rewrite(workdir, lambda c: c["similarity"].update(bootstrap=20))
    assert planned_jobs(snakemake(workdir, env_with_venv, "-n")) == {"all": 1, "similarity": 1, "report": 1}

    # Adding a seed trains only the new runs (not the one-seed ablation's) and initialisations.
    _rewrite(workdir, lambda c: c.update(seeds=[0, 1, 2]))
    result = snakemake(workdir, env_with_venv, "-n")
    assert planned_jobs(result)["pretrain"] == 5 and planned_jobs(result)["init_encoder"] == 2
    assert "-seed2/encoder.safetensors" in result.stdout and "p100-seed2" not in result.stdout

    # A dataset's setting reruns only that dataset and what is computed from it (shapes is not probed here); the
    # report, which reads the whole configuration, is remade.
    _rewrite(workdir, lambda c: c["datasets"]["shapes"].update(n_per_class=12))
    result = snakemake(workdir, env_with_venv, "-n")
    assert planned_jobs(result) == {"all": 1, "prepare_dataset": 1, "report": 1}
    assert "output: results/data/digits/manifest.json" not in result.stdout


@pytest.mark.slow
def test_one_job_per_encoder_evaluates_each_encoder_in_one_process(tmp_path, env_with_venv):
    """features.one_job_per_encoder (the default study's layout): rule evaluate_encoder writes an encoder's features
    and probes, the report's runtime table counts its jobs, and a probe setting reruns the encoders' evaluations."""
    config = {
        "datasets": {
            "digits": {"source": "digits", "image_size": 8},
            "shapes": {"source": "shapes", "image_size": 8, "n_per_class": 10},
        },
        "pretrain": {"dataset": "digits", "epochs": 1, "batch_size": 128, "backbone": {"width": 4, "blocks": [1]}},
        "methods": {"simclr": {"proj_hidden_dim": 16, "proj_output_dim": 8}},
        "downstream": ["digits", "shapes"],
        "features": {"one_job_per_encoder": True},
        "probe": {"C": [1.0]},
    }
    workdir = study_dir(tmp_path, config)
    snakemake(workdir, env_with_venv, "-c2")
    for run in ("standard", "init"):
        for dataset in ("digits", "shapes"):
            features = f"results/features/digits/simclr/{run}/{dataset}.npz"
            probe = json.loads((workdir / f"results/probe/digits/simclr/{run}/{dataset}.json").read_text())
            assert probe["dataset"] == dataset and probe["features"]["file"] == features
            recorded = probe["provenance"]["config"]  # the probe's slice, not the job's
            assert recorded["probe"]["C"] == [1.0] and "features" not in recorded
        log = (workdir / f"logs/evaluate_encoder/digits/simclr/{run}.log").read_text()
        assert log.count("-dim features in") == 2 and log.count(": top-1 ") == 2
    assert "| evaluate_encoder | 2 |" in (workdir / "results/report/summary.md").read_text()

    config["probe"]["C"] = [0.1]
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    assert planned_jobs(snakemake(workdir, env_with_venv, "-n")) == {"all": 1, "evaluate_encoder": 2, "report": 1}


@pytest.mark.slow
def test_a_damaged_store_stops_its_readers_and_its_repair_reruns_them(tmp_path, env_with_venv):
    """Reproduction 3: flipped bytes in a shard are named by the stage that reads them, and making the store again
    reruns that stage, although the store's manifest comes out byte-identical."""
    config = {
        "datasets": {"digits": {"source": "digits", "image_size": 8}},
        "pretrain": {"dataset": "digits", "epochs": 1, "batch_size": 128, "backbone": {"width": 4, "blocks": [1]}},
        "methods": {"simclr": {"proj_hidden_dim": 16, "proj_output_dim": 8}},
    }
    workdir = study_dir(tmp_path, config)
    target = "results/features/digits/simclr/standard/digits.npz"
    snakemake(workdir, env_with_venv, target, "-c2")
    shard = workdir / "results/data/digits/images-00000.u8"
    manifest = (workdir / "results/data/digits/manifest.json").read_bytes()
    data, times = bytearray(shard.read_bytes()), shard.stat()
    data[10] ^= 0xFF
    shard.write_bytes(bytes(data))
    os.utime(shard, ns=(times.st_atime_ns, times.st_mtime_ns))  # silent damage (bit rot): the file's time is kept

    failed = snakemake(workdir, env_with_venv, target, "-c1", "--forcerun", "extract_features", check=False)
    assert failed.returncode != 0
    log = (workdir / "logs/extract_features/digits/simclr/standard/digits.log").read_text()
    assert f"{shard.relative_to(workdir)}: damaged" in log and "genssl store verify" in log
    assert "Traceback" not in log

    snakemake(workdir, env_with_venv, "results/data/digits/manifest.json", "-c1", "--forcerun", "prepare_dataset")
    assert (workdir / "results/data/digits/manifest.json").read_bytes() == manifest
    # The refused reader reruns. The encoder stays: it was trained before the damage, on the bytes the repair
    # restored, and Snakemake compares a newer input's checksum with the one it recorded when the job ran.
    assert planned_jobs(snakemake(workdir, env_with_venv, target, "-n")) == {"extract_features": 1}
