"""Offline generation end to end with a real (tiny, freshly trained) icdiffusion generator: the gathered variant
store and its manifest, independence of the shard count, the preview grid, kill -9 and resume byte identity,
and the Snakemake DAG of the generation rules."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from genssl.config import validate_config
from genssl.errors import GensslError
from genssl.generate.generation import gather_store, generate, generate_shard, shards_root
from genssl.generate.icdiffusion import train_icdiffusion
from genssl.generate.variant_store import VariantStore
from genssl.models import build_backbone
from genssl.models.encoder_file import save_encoder
from genssl.store import ImageStore, verify_store
from tests.helpers import REPO

K = 2


def study(shards=3, **generator):
    entry = {
        "backend": "icdiffusion",
        "conditioning": {"encoder": "encoder.safetensors"},
        "variants": K,
        "shards": shards,
        "batch_size": 64,
        "inference_steps": 2,
        "neighbours": 3,
        "unet": {"block_out_channels": [16, 32]},
        "train": {"steps": 10, "batch_size": 16},
        **generator,
    }
    return validate_config(
        {
            "seed": 0,
            "datasets": {"digits": {"source": "digits", "image_size": 16}},
            "pretrain": {"dataset": "digits"},
            "generators": {"ic": entry},
        }
    )


@pytest.fixture(scope="module")
def weights(digits16, tmp_path_factory):
    root = tmp_path_factory.mktemp("generator")
    backbone_config = {"name": "small_resnet", "width": 8, "blocks": [1, 1]}
    torch.manual_seed(0)
    backbone, dim = build_backbone(backbone_config)
    save_encoder(root / "encoder.safetensors", backbone, backbone_config, dim)
    train_icdiffusion("ic", study()["generators"]["ic"], 0, digits16, root / "encoder.safetensors", root / "ic")
    return root / "ic"


@pytest.fixture(scope="module")
def generated(digits16, weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("augment") / "ic"
    generate(study(), "ic", digits16, out, weights)
    return out


def _files(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def test_the_variant_store_holds_k_variants_of_every_training_image(digits16, generated):
    data = ImageStore(digits16)
    store = VariantStore(generated)
    train = data.split("train")
    assert verify_store(generated) == []
    assert (store.sources == train).all() and store.k == K
    assert store.images.n == len(train) * K and store.images.shape == data.shape
    assert (store.images.labels == np.repeat(data.labels[train], K)).all()
    manifest = json.loads((generated / "manifest.json").read_text())
    assert manifest["variants"]["fingerprint"]["settings"]["neighbours"] == 3
    assert manifest["variants"]["fingerprint"]["weights_sha256"]
    assert len(manifest["shards"]) == 3
    first = store.get(train[:5], np.zeros(5, np.int64))
    second = store.get(train[:5], np.ones(5, np.int64))
    assert first.std() > 0 and not (first == second).all()  # images, and two different variants
    preview = np.asarray(Image.open(generated / "preview.png"))
    assert preview.shape[0] > 8 * 96 and preview.shape[1] > (K + 1) * 96
    assert not shards_root(generated).exists()  # generate() removes the shards once gathered


def test_the_variants_do_not_depend_on_the_shard_count_or_batch_size(digits16, weights, generated, tmp_path):
    generate(study(shards=2, batch_size=10), "ic", digits16, tmp_path / "ic", weights)
    one, other = VariantStore(generated), VariantStore(tmp_path / "ic")
    assert one.fingerprint == other.fingerprint
    assert (one.images.get_batch(np.arange(one.images.n)) == other.images.get_batch(np.arange(one.images.n))).all()


def test_shards_and_gather_run_separately_and_a_missing_shard_is_named(digits16, weights, tmp_path):
    out = tmp_path / "ic"
    generate_shard(study(), "ic", 1, digits16, out, weights)
    with pytest.raises(GensslError, match="shard 0 of ic is missing"):
        gather_store(study(), "ic", digits16, out, weights)
    assert not out.exists()


def test_a_trained_generator_is_required(digits16, tmp_path):
    with pytest.raises(GensslError, match="no trained generator here"):
        generate(study(), "ic", digits16, tmp_path / "out", tmp_path / "absent")


def _command(config_file, digits16, weights, out):
    command = [sys.executable, "-m", "genssl", "generate", "--config", str(config_file), "--generator", "ic"]
    return [*command, "--data", str(digits16), "--weights", str(weights), "--out", str(out), "--threads", "1"]


@pytest.mark.slow
def test_generation_killed_and_rerun_completes_only_missing_shards_byte_identically(
    digits16, weights, generated, tmp_path, env_with_venv
):
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(study(shards=3)))
    out = tmp_path / "ic"
    process = subprocess.Popen(_command(config_file, digits16, weights, out), env=env_with_venv, stderr=subprocess.PIPE)
    first = shards_root(out) / "shard-00000" / "shard.json"
    deadline = time.monotonic() + 300
    while not first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.exists(), "the first shard never finished"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "manifest.json").exists()
    rerun = subprocess.run(
        _command(config_file, digits16, weights, out), env=env_with_venv, capture_output=True, text=True, check=True
    )
    assert "shard 0 of ic is already complete" in rerun.stderr
    assert _files(out) == _files(generated)


def test_the_dag_fans_generation_out_into_shard_jobs(tmp_path, env_with_venv):
    config = {
        "datasets": {"digits": {"source": "digits"}},
        "pretrain": {"dataset": "digits"},
        "methods": {"simclr": {}, "sdiet": {}},
        "generators": {"icdiffusion": {"backend": "icdiffusion", "shards": 5}},
        "augmentations": {"standard": {}, "generative": {"generator": "icdiffusion"}},
    }
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        ["snakemake", "-n", "--snakefile", str(REPO / "Snakefile"), "--configfile", str(config_file), "-d", tmp_path],
        env=env_with_venv,
        capture_output=True,
        text=True,
        check=True,
    )
    counts = dict(
        line.split() for line in result.stdout.splitlines() if len(line.split()) == 2 and line.split()[1].isdigit()
    )
    assert counts["generate_shard"] == "5" and counts["gather_augmentations"] == "1"
    assert counts["train_generator"] == "1" and counts["pretrain"] == "4"
