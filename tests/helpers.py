"""Helpers shared by the tests."""

import json
import subprocess
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from genssl.config import validate_config
from genssl.evaluate.similarity.stage import is_replicate, pair_kind
from genssl.stages import similarity_encoders

REPO = Path(__file__).resolve().parents[1]
#: The smallest icdiffusion generator the workflow tests train (seconds on a CPU).
TINY_ICDIFFUSION = {
    "backend": "icdiffusion",
    "variants": 2,
    "shards": 2,
    "inference_steps": 2,
    "unet": {"block_out_channels": [8, 16]},
    "train": {"steps": 10},
}


def write_png(path: Path, rng: np.random.Generator, size: tuple[int, int] = (20, 14)) -> np.ndarray:
    """Write a random RGB PNG of (width, height) ``size``; return its pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def small_study(**extra):
    """Two methods, a generator, the p sweep and the mode ablation for SimCLR, two downstream datasets."""
    return validate_config(
        {
            "datasets": {"digits": {"source": "digits"}, "shapes": {"source": "shapes"}},
            "pretrain": {"dataset": "digits"},
            "methods": {"simclr": {}, "byol": {}},
            "generators": {"ic": {"backend": "icdiffusion"}},
            "augmentations": {
                "standard": {},
                "generative": {"generator": "ic"},
                "p025": {"generator": "ic", "p": 0.25, "methods": ["simclr"]},
                "p100": {"generator": "ic", "p": 1.0, "methods": ["simclr"]},
                "only": {"generator": "ic", "mode": "generative-only", "methods": ["simclr"]},
                "crop": {"generator": "ic", "mode": "generative+crop", "methods": ["simclr"]},
            },
            "downstream": ["digits", "shapes"],
            **extra,
        }
    )


HEADS = {
    "simclr": {"proj_hidden_dim": 64, "proj_output_dim": 32},
    # A queue of at most a fifth of the 1,293 training images: a larger one holds keys of the same images.
    "mocov2plus": {"proj_hidden_dim": 64, "proj_output_dim": 32, "queue_size": 256},
    "byol": {"proj_hidden_dim": 64, "proj_output_dim": 32, "pred_hidden_dim": 64},
    "simsiam": {"proj_hidden_dim": 64, "proj_output_dim": 64, "pred_hidden_dim": 32},
    "barlowtwins": {"proj_hidden_dim": 64, "proj_output_dim": 64},
    # DIET learns slowly: 400 steps need a higher lr than public DIET code's 1e-3 (which trains 1000s of epochs).
    "diet": {"lr": 0.01},
    "sdiet": {"proj_hidden_dim": 64, "proj_output_dim": 32, "lr": 0.1},
}


def tiny_pretrain_config(epochs=3, **pretrain):
    """Every method on digits at 16 px with a tiny backbone (seconds per epoch on a CPU)."""
    return validate_config(
        {
            "seed": 0,
            "datasets": {"digits": {"source": "digits", "image_size": 16}},
            "pretrain": {
                "dataset": "digits",
                "epochs": epochs,
                "batch_size": 64,
                "warmup_epochs": 1,
                "backbone": {"name": "small_resnet", "width": 8, "blocks": [1, 1]},
                **pretrain,
            },
            "methods": HEADS,
        }
    )


#: The tiny study of the DVC and SLURM tests: one method, a trained generator, standard and generative.
TINY_DVC_STUDY = {
    "seed": 0,
    "datasets": {"digits": {"source": "digits", "image_size": 8}},
    "pretrain": {"dataset": "digits", "epochs": 1, "batch_size": 128, "backbone": {"width": 4, "blocks": [1]}},
    "methods": {"simclr": {"proj_hidden_dim": 16, "proj_output_dim": 8}},
    "generators": {"icdiffusion": TINY_ICDIFFUSION},
    "augmentations": {"standard": {}, "generative": {"generator": "icdiffusion"}},
    "probe": {"C": [1.0]},
    "similarity": {"bootstrap": 10},
}


def study_results(root):
    """The files computed from the pulled artifacts (the report's summary holds run times: not compared)."""
    files = sorted((root / "results" / "probe").rglob("*.json")) + sorted((root / "results" / "similarity").rglob("*"))
    files.append(root / "results" / "report" / "metrics.json")
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in files if p.is_file()}


def write_similarity(root, config, value):
    """The similarity analysis' files of ``config`` with ``value(a, b) -> (cka, opd)`` for every pair, and bootstrap
    bounds +- 0.05 for the first seed's pairs."""
    directory = root / "results" / "similarity" / "digits"
    directory.mkdir(parents=True)
    names = list(similarity_encoders(config))
    cka = ["a,b,kind,n,cka,cka_low,cka_high,cka_debiased,cka_debiased_low,cka_debiased_high"]
    opd = ["a,b,kind,n,opd,opd_low,opd_high"]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            c, o = value(a, b)
            first = not (is_replicate(a) or is_replicate(b))
            bounds = (lambda v: f"{v - 0.05},{v + 0.05}") if first else (lambda v: ",")
            cka.append(f"{a},{b},{pair_kind(a, b)},100,{c},{bounds(c)},{c},{bounds(c)}")
            opd.append(f"{a},{b},{pair_kind(a, b)},100,{o},{bounds(o)}")
    (directory / "cka.csv").write_text("\n".join(cka) + "\n")
    (directory / "opd.csv").write_text("\n".join(opd) + "\n")
    matrices = {"dataset": "digits", "split": "test", "n": 100, "confidence": 0.95, "bootstrap": 50}
    (directory / "matrices.json").write_text(json.dumps(matrices))


def planned_jobs(result) -> dict[str, int]:
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


def study_dir(root: Path, config: dict) -> Path:
    """A working directory for Snakemake holding ``config`` as its config/config.yaml."""
    (root / "config").mkdir(parents=True)
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return root


def snakemake(workdir: Path, env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The workflow of this checkout run in ``workdir`` with ``args``; fails the test on an error unless not
    ``check``."""
    cmd = ["snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
    return result
