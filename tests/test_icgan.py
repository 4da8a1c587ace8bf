"""The workflow-trained icgan on 16 px digits: BigGAN's layers, training (finite moving losses, byte-identical
reruns), batch-independent deterministic sampling, refusal of stale weights, and generation into a variant store."""

import csv
import json
import subprocess

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from genssl.cli import main
from genssl.config import validate_config
from genssl.errors import ConfigError, GensslError
from genssl.generate.conditioning import condition_features
from genssl.generate.generation import generate
from genssl.generate.icgan import load_icgan, train_icgan
from genssl.generate.icgan.biggan import Discriminator, Generator, orthogonal_init
from genssl.generate.icgan.layers import SNLinear
from genssl.generate.icgan.sampling import truncated_noise
from genssl.generate.icgan.standardise import Standardiser
from genssl.generate.icgan.train import ema_update, hinge_discriminator_loss, hinge_generator_loss
from genssl.generate.variant_store import VariantStore
from genssl.models import build_backbone
from genssl.models.encoder_file import encode, load_encoder, save_encoder
from genssl.store import ImageStore, verify_store
from tests.helpers import REPO

CPU = torch.device("cpu")
STEPS = 30


def study(**generator):
    entry = {
        "backend": "icgan",
        "conditioning": {"encoder": "encoder.safetensors"},
        "variants": 2,
        "batch_size": 4,
        "shards": 2,
        "neighbours": 3,
        "architecture": {"ch": 2, "dim_z": 12, "feature_embedding": 8},
        "train": {"steps": STEPS, "batch_size": 16, "d_ch": 2, "ema_start": 10},
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


def generator_config(**generator):
    return study(**generator)["generators"]["ic"]


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
    record = train_icgan("ic", generator_config(), 0, digits16, encoder, out)
    return out, record


@pytest.fixture(scope="module")
def sources(digits16):
    store = ImageStore(digits16)
    indices = store.split("train")[:8]
    return store.get_batch(indices), indices


def test_spectral_norm_divides_by_the_power_iteration_estimate_and_updates_only_in_training():
    torch.manual_seed(0)
    layer = SNLinear(6, 4)
    u = layer.u0.clone()
    matrix = layer.weight.detach()
    v = torch.nn.functional.normalize(u @ matrix)
    u_next = torch.nn.functional.normalize(v @ matrix.T)
    sigma = (v @ matrix.T @ u_next.T).item()
    x = torch.randn(3, 6)
    layer.eval()
    torch.testing.assert_close(layer(x), x @ (matrix / sigma).T + layer.bias.detach())
    assert torch.equal(layer.u0, u)
    layer.train()
    layer(x)
    torch.testing.assert_close(layer.u0, u_next)
    assert layer.sv0.item() == pytest.approx(sigma, rel=1e-6)
    for _ in range(50):  # the power iteration converges to the largest singular value
        layer(x)
    assert layer.sv0.item() == pytest.approx(torch.linalg.matrix_norm(matrix, ord=2).item(), rel=1e-4)


def test_the_networks_shapes_and_batch_norm_statistics_make_eval_samples_independent_of_their_batch():
    torch.manual_seed(0)
    generator = Generator(16, 5, ch=2, dim_z=13, feature_embedding=4, attention=(8,))
    orthogonal_init(generator)
    assert generator.dim_z == 12  # 13 entries in 3 chunks of 4: the remainder is dropped, as in the release
    z, h = torch.randn(6, 12), torch.nn.functional.normalize(torch.randn(6, 5), dim=1)
    images = generator(z, h)
    assert images.shape == (6, 3, 16, 16) and images.abs().max() <= 1
    generator.eval()
    torch.testing.assert_close(generator(z, h)[:2], generator(z[:2], h[:2]))
    with pytest.raises(ValueError, match="takes 12"):
        generator(torch.randn(6, 13), h)
    discriminator = Discriminator(16, 5, ch=2, attention=(8,))
    assert discriminator(images, h).shape == (6,)


def test_hinge_losses_and_the_moving_average():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-3.0, 0.0])
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx((0 + 0.5) / 2 + (0 + 1) / 2)
    assert hinge_generator_loss(fake).item() == pytest.approx(1.5)
    model, ema = torch.nn.BatchNorm1d(2), torch.nn.BatchNorm1d(2)
    model.weight.data.fill_(3.0)
    model.running_mean.fill_(1.0)
    ema_update(ema, model, 0.75)
    torch.testing.assert_close(ema.weight.data, torch.full((2,), 0.75 + 0.25 * 3))
    torch.testing.assert_close(ema.running_mean, torch.full((2,), 0.25))


def test_truncated_noise_is_bounded_by_twice_the_truncation_and_depends_only_on_its_generator():
    generators = [torch.Generator().manual_seed(s) for s in range(400)]
    noise = truncated_noise(generators, 50, 0.7)
    assert noise.dtype == torch.float32 and noise.shape == (400, 50)
    assert noise.abs().max() <= 1.4 and noise.abs().max() > 1.35
    # the variance of N(0, 1) truncated to [-a, a]: 1 - 2 a phi(a) / (2 Phi(a) - 1)
    a = torch.tensor(1.4, dtype=torch.float64)
    phi = torch.exp(-(a**2) / 2) / (2 * torch.pi) ** 0.5
    variance = 1 - 2 * a * phi / (2 * torch.special.ndtr(a) - 1)
    assert noise.var().item() == pytest.approx(variance.item(), rel=0.02) and abs(noise.mean().item()) < 0.02
    again = truncated_noise([torch.Generator().manual_seed(s) for s in (7, 3)], 50, 0.7)
    torch.testing.assert_close(again, noise[[7, 3]], rtol=0, atol=0)
    untruncated = truncated_noise(generators[:100], 50, None)
    assert untruncated.abs().max() > 3 and untruncated.var().item() == pytest.approx(1.0, rel=0.05)


def test_training_gives_finite_moving_losses_and_a_self_contained_directory(trained, encoder):
    out, record = trained
    with open(out / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, STEPS + 1))
    d_losses = np.array([float(r["d_loss"]) for r in rows])
    g_losses = np.array([float(r["g_loss"]) for r in rows])
    assert np.isfinite(d_losses).all() and np.isfinite(g_losses).all()
    assert d_losses.std() > 0.01 and g_losses.std() > 0.01
    assert d_losses[-5:].mean() < 0.5 * d_losses[:3].mean(), d_losses  # D learns from its large initial outputs
    assert json.loads((out / "generator.json").read_text()) == record
    assert record["image_size"] == 16 and record["neighbours"] == 3 and record["condition_dim"] == 16
    assert record["config"] == generator_config()
    assert record["final_d_loss"] == pytest.approx(d_losses[-STEPS // 10 :].mean(), abs=1e-5)
    assert record["final_g_loss"] == pytest.approx(g_losses[-STEPS // 10 :].mean(), abs=1e-5)
    assert (out / "encoder.safetensors").read_bytes() == encoder.read_bytes()
    weights = load_file(str(out / "generator.safetensors"))
    expected = Generator.from_config(generator_config()["architecture"], 16, 16).state_dict()
    assert set(weights) == set(expected) and "shared_feat.u0" in weights and "blocks.1.0.bn2.stored_var" in weights
    assert not any(k.startswith("shared.") for k in weights)  # class_embeddings 0: no unused class embedding
    standardiser = load_file(str(out / "condition.safetensors"))
    assert standardiser["mean"].shape == standardiser["std"].shape == (16,) and (standardiser["std"] > 0).all()


def test_training_twice_gives_identical_bytes(trained, digits16, encoder, tmp_path):
    out, _ = trained
    train_icgan("ic", generator_config(), 0, digits16, encoder, tmp_path / "again")
    for file in ("generator.safetensors", "condition.safetensors", "losses.csv", "generator.json"):
        assert (tmp_path / "again" / file).read_bytes() == (out / file).read_bytes(), file


def test_training_refuses_bad_input(digits16, encoder, tmp_path):
    with pytest.raises(GensslError, match=r"missing\.safetensors"):
        train_icgan("ic", generator_config(), 0, digits16, tmp_path / "missing.safetensors", tmp_path / "out")
    with pytest.raises(GensslError, match="no-store"):
        train_icgan("ic", generator_config(), 0, tmp_path / "no-store", encoder, tmp_path / "out")
    with pytest.raises(ConfigError, match=r"generators\.ic\.neighbours"):
        train_icgan("ic", generator_config(neighbours=100_000), 0, digits16, encoder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_config_refuses_keys_of_other_backends():
    with pytest.raises(ConfigError, match=r"generators\.ic\.unet: not a setting of backend 'icgan'"):
        generator_config(unet={})
    with pytest.raises(ConfigError, match=r"generators\.ic\.train: Additional properties.*'lr' was unexpected"):
        generator_config(train={"lr": 0.1})
    with pytest.raises(ConfigError, match=r"generators\.ic\.resolution: 24 is not one of"):
        generator_config(resolution=24)


def _generate(weights, sources, config, seed=0):
    images, indices = sources
    return load_icgan("ic", config, CPU, torch.float32, weights).generate(images, indices, seed, 16)


def test_generated_variants_are_deterministic_and_independent_of_the_batch(trained, sources):
    out, _ = trained
    images, indices = sources
    first = _generate(out, sources, generator_config())
    assert first.shape == (8, 2, 16, 16, 3) and first.dtype == np.uint8 and first.std() > 0
    np.testing.assert_array_equal(_generate(out, sources, generator_config()), first)
    for batch_size in (1, 3, 8):
        np.testing.assert_array_equal(_generate(out, sources, generator_config(batch_size=batch_size)), first)
    assert (first[:, 0] != first[:, 1]).any(axis=(1, 2, 3)).all()
    assert not np.array_equal(_generate(out, sources, generator_config(), seed=1), first)

    # 8 images x 5 variants = 40 samples: more than one micro-batch in one call.
    many = _generate(out, sources, generator_config(variants=5, batch_size=40))
    np.testing.assert_array_equal(many[:, :2], first)
    subset = [6, 1, 3]
    reordered = _generate(out, (images[subset], indices[subset]), generator_config(variants=5, batch_size=7))
    np.testing.assert_array_equal(reordered, many[subset])


def test_truncation_changes_the_samples(trained, sources):
    out, _ = trained
    plain = _generate(out, sources, generator_config())
    for truncation in (0.3, None):
        other = _generate(out, sources, generator_config(truncation=truncation))
        assert other.shape == plain.shape and not np.array_equal(other, plain)


def test_conditioning_features_are_the_stored_encoders_features(trained, sources):
    """f(x), what G's condition h = f(x) / ||f(x)|| is computed from (the similarity analysis compares them)."""
    out, _ = trained
    images, _ = sources
    generator = load_icgan("ic", generator_config(), CPU, torch.float32, out)
    features = generator.conditioning_features(images)
    encoder, _, _ = load_encoder(out / "encoder.safetensors")
    pixels = torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255
    assert features.dtype == np.float32 and features.shape == (8, 16)
    np.testing.assert_allclose(features, encode(encoder, pixels).numpy(), rtol=1e-5, atol=1e-6)
    unit = torch.nn.functional.normalize(torch.from_numpy(features), dim=1)
    np.testing.assert_allclose(unit.numpy(), condition_features(encoder, pixels).numpy(), rtol=1e-5, atol=1e-6)
    standardiser = Standardiser.load(out / "condition.safetensors")
    assert not torch.allclose(standardiser(unit), unit)


def test_loading_refuses_missing_incomplete_or_stale_weights(trained, tmp_path):
    config = generator_config()
    with pytest.raises(GensslError, match=r"no-weights.*genssl train-generator"):
        load_icgan("ic", config, CPU, torch.float32, tmp_path / "no-weights")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GensslError, match=r"empty.*generator\.safetensors.*train_generator"):
        load_icgan("ic", config, CPU, torch.float32, tmp_path / "empty")
    with pytest.raises(GensslError, match=r"generators\.ic\.neighbours"):
        load_icgan("ic", generator_config(neighbours=1), CPU, torch.float32, trained[0])
    with pytest.raises(GensslError, match=r"generators\.ic\.architecture.*retrain"):
        load_icgan("ic", generator_config(architecture={"ch": 3}), CPU, torch.float32, trained[0])


def test_generation_writes_a_variant_store_with_a_preview(digits16, trained, tmp_path):
    out, _ = trained
    store_dir = tmp_path / "augment" / "ic"
    manifest = generate(study(), "ic", digits16, store_dir, out)
    data, store = ImageStore(digits16), VariantStore(store_dir)
    train = data.split("train")
    assert verify_store(store_dir) == [] and store.k == 2 and (store.sources == train).all()
    assert store.images.n == 2 * len(train) and store.images.shape == (16, 16, 3)
    assert manifest["variants"]["fingerprint"]["settings"]["backend"] == "icgan"
    first = store.get(train[:6], np.zeros(6, np.int64))
    np.testing.assert_array_equal(
        first, _generate(out, (data.get_batch(train[:6]), train[:6]), study()["generators"]["ic"])[:, 0]
    )
    assert np.asarray(Image.open(store_dir / "preview.png")).shape[0] > 8 * 96


def test_the_train_generator_command_dispatches_to_icgan(digits16, encoder, trained, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(study()))
    out = tmp_path / "cli"
    args = ["train-generator", "--config", str(config), "--generator", "ic", "--data", str(digits16)]
    threads = str(torch.get_num_threads())  # the fixture's: another count rounds differently
    assert main([*args, "--encoder", str(encoder), "--out", str(out), "--threads", threads]) == 0
    assert (out / "generator.safetensors").read_bytes() == (trained[0] / "generator.safetensors").read_bytes()


def test_the_dag_trains_icgan_but_not_the_pretrained_gan(tmp_path, env_with_venv):
    config = {
        "datasets": {"digits": {"source": "digits"}},
        "pretrain": {"dataset": "digits"},
        "methods": {"simclr": {}},
        "generators": {
            "icgan": {"backend": "icgan", "shards": 3},
            "release": {"backend": "icgan_pretrained", "generator_path": "G.pth", "encoder_path": "swav.pth.tar"},
        },
        "augmentations": {"standard": {}, "gan": {"generator": "icgan"}, "paper": {"generator": "release"}},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    for weights in ("G.pth", "swav.pth.tar"):  # the release's local weights: a dry run checks that they exist
        (tmp_path / weights).touch()
    config_file = str(tmp_path / "config.yaml")
    command = ["snakemake", "-n", "--snakefile", str(REPO / "Snakefile"), "--configfile", config_file, "-d", tmp_path]
    result = subprocess.run(command, env=env_with_venv, capture_output=True, text=True, check=True)
    counts = dict(
        line.split() for line in result.stdout.splitlines() if len(line.split()) == 2 and line.split()[1].isdigit()
    )
    assert counts["train_generator"] == "1" and counts["generate_shard"] == str(3 + 4)
    assert counts["gather_augmentations"] == "2" and counts["pretrain"] == "3"
    assert "results/generators/digits/icgan/generator.json" in result.stdout
    assert "results/generators/digits/release" not in result.stdout
