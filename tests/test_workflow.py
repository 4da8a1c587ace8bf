"""The Snakemake workflow driven through its command line, in a temporary working directory: the default study's
DAG, a tiny study end to end (every stage, the report), and what a change of the configuration reruns."""

import csv
import json
import math
import subprocess

import pytest
import yaml

from genssl.config import validate_config
from genssl.store import ImageStore, verify_store
from genssl.study import runs
from tests.helpers import REPO, TINY_ICDIFFUSION, planned_jobs, snakemake, study_dir

#: The whole DAG at a tiny size: two methods, a trained generator, the p sweep and the mode ablation for SimCLR,
#: two seeds, one downstream dataset and the similarity analysis.
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
    "generators": {"icdiffusion": TINY_ICDIFFUSION},
    "augmentations": {
        "standard": {},
        "generative": {"generator": "icdiffusion"},
        "p100": {"generator": "icdiffusion", "p": 1.0, "methods": ["simclr"]},
        "generative_only": {"generator": "icdiffusion", "mode": "generative-only", "methods": ["simclr"]},
    },
    "downstream": ["digits"],
    "probe": {"C": [0.1, 1.0]},
    "similarity": {"bootstrap": 10},
}


def test_dry_run_of_the_default_study(tmp_path, env_with_venv):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    workdir = study_dir(tmp_path, config)
    result = snakemake(workdir, env_with_venv, "-n")
    # 7 methods x (standard, generative) + SimCLR's p sweep (0.25, 0.75, 1), mode ablation (2) and icgan: 20 runs,
    # each probed on digits and shapes; two generators, four shards each, conditioned on one encoder (simclr/standard).
    assert planned_jobs(result) == {
        "all": 1,
        "prepare_dataset": 2,
        "pretrain": 20,
        "train_generator": 2,
        "generate_shard": 8,
        "gather_augmentations": 2,
        "extract_features": 40,
        "extract_conditioning_features": 1,
        "linear_probe": 40,
        "similarity": 1,
        "report": 1,
    }
    for method in ("simclr", "mocov2plus", "byol", "simsiam", "barlowtwins", "diet", "sdiet"):
        for augmentation in ("standard", "generative"):
            assert f"output: results/pretrain/digits/{method}/{augmentation}/encoder.safetensors" in result.stdout
            for downstream in ("digits", "shapes"):
                assert f"output: results/probe/digits/{method}/{augmentation}/{downstream}.json" in result.stdout
    assert "output: results/pretrain/digits/simclr/p025/encoder.safetensors" in result.stdout
    assert "output: results/pretrain/digits/byol/p025/encoder.safetensors" not in result.stdout
    assert not (workdir / "results").exists()


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

    # Every run, replicate seeds included, was trained and probed.
    config = validate_config(TINY)
    assert len(runs(config)) == 12
    replicate = json.loads((workdir / "results/pretrain/digits/simclr/p100-seed1/run.json").read_text())
    assert replicate["seed"] == 1 and replicate["config"]["seed"] == 0
    probe = json.loads((workdir / "results/probe/digits/sdiet/generative-seed1/digits.json").read_text())
    assert 0 < probe["top1"] <= 1 and probe["n"]["test"] == 359

    # The similarity analysis compares the first seed's runs and the conditioning encoder.
    with open(workdir / "results/similarity/digits/cka.csv") as f:
        pairs = list(csv.DictReader(f))
    assert len(pairs) == 7 * 6 // 2
    conditioning = next(p for p in pairs if p["a"] == "simclr/standard" and p["b"] == "conditioning/icdiffusion")
    assert float(conditioning["cka"]) == pytest.approx(1.0)  # icdiffusion is conditioned on simclr/standard

    # The report holds every table and figure, with finite values.
    summary = (workdir / "results/report/summary.md").read_text()
    for heading in (
        "## Linear probe top-1 (%)",
        "## kNN top-1 (%), k = 20",
        "## Generative minus standard",
        "## p sweep: simclr, icdiffusion",
        "## Mode ablation: simclr, icdiffusion",
        "## S-DIET and the other methods",
        "## Representation similarity",
        "## Runtime per rule",
    ):
        assert heading in summary
    tables = [block.splitlines() for block in summary.split("\n\n") if block.startswith("|")]
    values = [v for table in tables for v in _finite_cells(table)]
    assert len(tables) == 10 and len(values) > 50 and all(math.isfinite(v) for v in values)
    assert "| simclr | 128 | 0.2 | lars | 10 |" in summary  # the step plan: batch, peak lr, steps (1293 // 128)
    assert " ± " in summary  # two seeds: mean +- std
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
    assert planned_jobs(snakemake(workdir, env_with_venv, "-n")) == {"all": 1, "linear_probe": 12, "report": 1}
    _rewrite(workdir, lambda c: c["similarity"].update(bootstrap=20))
    assert planned_jobs(snakemake(workdir, env_with_venv, "-n")) == {"all": 1, "similarity": 1, "report": 1}

    # Restricting an ablation to fewer methods or adding a seed does not rerun the existing runs.
    _rewrite(workdir, lambda c: c.update(seeds=[0, 1, 2]))
    result = snakemake(workdir, env_with_venv, "-n")
    assert planned_jobs(result)["pretrain"] == 6 and "-seed2/encoder.safetensors" in result.stdout

    # A dataset's setting reruns only that dataset and what is computed from it (shapes is not probed here); the
    # report, which reads the whole configuration, is remade.
    _rewrite(workdir, lambda c: c["datasets"]["shapes"].update(n_per_class=12))
    result = snakemake(workdir, env_with_venv, "-n")
    assert planned_jobs(result) == {"all": 1, "prepare_dataset": 1, "report": 1}
    assert "output: results/data/digits/manifest.json" not in result.stdout


@pytest.mark.slow
def test_a_damaged_store_stops_its_readers_and_its_repair_reruns_them(tmp_path, env_with_venv):
    """Reproduction 3: flipped bytes in a shard are named by the stage that reads them, and making the store again
    reruns what was computed from it, although its manifest comes out byte-identical."""
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
    data = bytearray(shard.read_bytes())
    data[10] ^= 0xFF
    shard.write_bytes(bytes(data))

    failed = snakemake(workdir, env_with_venv, target, "-c1", "--forcerun", "extract_features", check=False)
    assert failed.returncode != 0
    log = (workdir / "logs/extract_features/digits/simclr/standard/digits.log").read_text()
    assert f"{shard.relative_to(workdir)}: damaged" in log and "genssl store verify" in log
    assert "Traceback" not in log

    snakemake(workdir, env_with_venv, "results/data/digits/manifest.json", "-c1", "--forcerun", "prepare_dataset")
    assert (workdir / "results/data/digits/manifest.json").read_bytes() == manifest
    assert planned_jobs(snakemake(workdir, env_with_venv, target, "-n")) == {"pretrain": 1, "extract_features": 1}
