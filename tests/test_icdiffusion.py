"""The icdiffusion generator on 16 px digits: training, byte-identical reruns and batch-independent
sampling."""

import csv
import json

import numpy as np
import pytest
import torch

from genssl.config import validate_config
from genssl.errors import ConfigError, GensslError
from genssl.generate.base import to_uint8_images, variant_generators
from genssl.generate.icdiffusion import load_icdiffusion, train_icdiffusion
from genssl.generate.icdiffusion.model import ConditionedUNet, build_unet
from genssl.models import build_backbone
from genssl.models.encoder_file import save_encoder
from genssl.store import ImageStore

CPU = torch.device("cpu")
STEPS = 40


def tiny_config(**generator):
    entry = {
        "backend": "icdiffusion",
        "conditioning": {"encoder": "encoder.safetensors"},
        "variants": 2,
        "batch_size": 4,
        "inference_steps": 4,
        "neighbours": 3,
        "unet": {"block_out_channels": [16, 32]},
        "train": {"steps": STEPS, "batch_size": 32, "lr": 2e-3},
    }
    return validate_config(
        {
            "seed": 0,
            "datasets": {"digits": {"source": "digits", "image_size": 16}},
            "generators": {"ic": {**entry, **generator}},
        }
    )


def generator_config(**generator):
    return tiny_config(**generator)["generators"]["ic"]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    path = tmp_path_factory.mktemp("encoder") / "encoder.safetensors"
    config = {"name": "small_resnet", "width": 8, "blocks": [1, 1]}
    torch.manual_seed(0)
    backbone, dim = build_backbone(config)
    save_encoder(path, backbone, config, dim)
    return path


@pytest.fixture(scope="module")
def trained(digits16, encoder, tmp_path_factory):
    out = tmp_path_factory.mktemp("generators") / "ic"
    record = train_icdiffusion("ic", generator_config(), 0, digits16, encoder, out)
    return out, record


@pytest.fixture(scope="module")
def sources(digits16):
    store = ImageStore(digits16)
    indices = store.split("train")[:8]
    return store.get_batch(indices), indices


def test_training_lowers_the_loss_and_writes_a_self_contained_directory(trained, encoder):
    out, record = trained
    with open(out / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["loss"]) for r in rows]
    assert [int(r["step"]) for r in rows] == list(range(1, STEPS + 1))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses
    assert json.loads((out / "generator.json").read_text()) == record
    assert record["image_size"] == 16 and record["neighbours"] == 3 and record["seed"] == 0
    assert record["config"] == generator_config()
    assert record["final_loss"] == pytest.approx(np.mean(losses[-STEPS // 10 :]), abs=1e-5)
    assert (out / "encoder.safetensors").read_bytes() == encoder.read_bytes()
    for file in ("unet/config.json", "unet/diffusion_pytorch_model.safetensors", "condition.safetensors"):
        assert (out / file).is_file()
    assert json.loads((out / "scheduler/scheduler_config.json").read_text())["num_train_timesteps"] == 1000


def test_training_twice_gives_identical_bytes(trained, digits16, encoder, tmp_path):
    out, _ = trained
    train_icdiffusion("ic", generator_config(), 0, digits16, encoder, tmp_path / "again")
    for file in ("unet/diffusion_pytorch_model.safetensors", "condition.safetensors", "losses.csv", "generator.json"):
        assert (tmp_path / "again" / file).read_bytes() == (out / file).read_bytes(), file


def test_training_refuses_bad_input(digits16, encoder, tmp_path):
    with pytest.raises(GensslError, match=r"missing\.safetensors"):
        train_icdiffusion("ic", generator_config(), 0, digits16, tmp_path / "missing.safetensors", tmp_path / "out")
    with pytest.raises(GensslError, match="no-store"):
        train_icdiffusion("ic", generator_config(), 0, tmp_path / "no-store", encoder, tmp_path / "out")
    with pytest.raises(ConfigError, match=r"generators\.ic\.neighbours"):
        train_icdiffusion("ic", generator_config(neighbours=100_000), 0, digits16, encoder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _generate(weights, sources, config, seed=0):
    images, indices = sources
    return load_icdiffusion("ic", config, CPU, torch.float32, weights).generate(images, indices, seed, 16)


def test_generated_variants_are_deterministic_and_independent_of_the_batch(trained, sources):
    out, _ = trained
    images, indices = sources
    first = _generate(out, sources, generator_config())
    assert first.shape == (8, 2, 16, 16, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(_generate(out, sources, generator_config()), first)
    for batch_size in (1, 3, 8):
        np.testing.assert_array_equal(_generate(out, sources, generator_config(batch_size=batch_size)), first)
    assert (first[:, 0] != first[:, 1]).any(axis=(1, 2, 3)).all()
    assert not np.array_equal(_generate(out, sources, generator_config(), seed=1), first)

    # 8 images x 5 variants = 40 samples: more than one micro-batch of the networks in one call.
    many = _generate(out, sources, generator_config(variants=5, batch_size=40))
    np.testing.assert_array_equal(many[:, :2], first)
    subset = [6, 1, 3]
    reordered = _generate(out, (images[subset], indices[subset]), generator_config(variants=5, batch_size=7))
    np.testing.assert_array_equal(reordered, many[subset])


def test_shared_conditions_give_exactly_the_per_variant_conditions_output(trained, sources):
    """generate() encodes each source once for its K variants; encoding every variant's copy is bit-identical
    (the networks run micro-batches of a fixed shape)."""
    out, _ = trained
    images, indices = sources
    generator = load_icdiffusion("ic", generator_config(), CPU, torch.float32, out)
    shared = generator.generate(images, indices, 0, 16)
    conditions = generator.encode(np.repeat(images, 2, axis=0))
    samples = generator.sample(conditions, variant_generators(0, "ic", indices, 2))
    np.testing.assert_array_equal(to_uint8_images(samples).reshape(shared.shape), shared)


@pytest.mark.parametrize("settings", [{"guidance_scale": 3.0}, {"sampler": "dpm_solver"}])
def test_guidance_and_dpm_solver_sample_other_valid_images(trained, sources, settings):
    out, _ = trained
    plain = _generate(out, sources, generator_config())
    other = _generate(out, sources, generator_config(**settings))
    assert other.shape == plain.shape and not np.array_equal(other, plain)
    np.testing.assert_array_equal(_generate(out, sources, generator_config(batch_size=3, **settings)), other)


def test_loading_refuses_missing_or_incomplete_weights(trained, tmp_path):
    config = generator_config()
    with pytest.raises(GensslError, match=r"no-weights.*genssl train-generator"):
        load_icdiffusion("ic", config, CPU, torch.float32, tmp_path / "no-weights")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GensslError, match=r"empty.*condition\.safetensors.*train_generator"):
        load_icdiffusion("ic", config, CPU, torch.float32, tmp_path / "empty")
    with pytest.raises(GensslError, match=r"generators\.ic\.neighbours"):
        load_icdiffusion("ic", generator_config(neighbours=1), CPU, torch.float32, trained[0])


def test_attention_and_single_level_unets_run():
    for unet in (
        {"block_out_channels": [12, 24, 24], "layers_per_block": 2, "attention": True},
        {"block_out_channels": [8], "layers_per_block": 1, "attention": False},
    ):
        model = ConditionedUNet(build_unet(unet, 16), condition_dim=5)
        embeddings = model.embed(torch.randn(2, 5), torch.tensor([False, True]))
        assert torch.equal(embeddings[1], model.null.detach())
        assert model(torch.randn(2, 3, 16, 16), torch.tensor([3, 900]), embeddings).shape == (2, 3, 16, 16)


def test_conditioning_features_are_the_stored_encoders_features(trained, sources):
    from genssl.generate.icdiffusion.train import ENCODER_FILE
    from genssl.models.encoder_file import encode, load_encoder

    out, _ = trained
    generator = load_icdiffusion("ic", generator_config(), CPU, torch.float32, out)
    images, _ = sources
    features = generator.conditioning_features(images)
    encoder, _, dim = load_encoder(out / ENCODER_FILE)
    expected = encode(encoder, torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255).numpy()
    assert features.shape == (len(images), dim)
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
