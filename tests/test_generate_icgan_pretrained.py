"""icgan_pretrained: the IC-GAN release's generator and SwAV encoder from local files in the official layout (a
randomly initialised small-width generator and a random SwAV ResNet-50 saved as the release saves them), loaded
with strict keys, sampled deterministically, and refused with the key, the path and the layout named."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.models import resnet50

from genssl.cli import main
from genssl.config import validate_config
from genssl.errors import GensslError
from genssl.generate.base import to_uint8_images, variant_generators
from genssl.generate.generation import generate
from genssl.generate.icgan import load_icgan_pretrained
from genssl.generate.icgan.biggan import Generator
from genssl.generate.icgan.swav import IMAGENET_MEAN, IMAGENET_STD
from genssl.generate.variant_store import VariantStore
from genssl.store import StoreWriter, verify_store
from tests.tiny_releases import write_release

CPU = torch.device("cpu")
ARCHITECTURE = {
    "ch": 2,
    "dim_z": 20,
    "feature_embedding": 8,
    "attention": [32],
    "class_embeddings": 10,
    "class_embedding_dim": 4,
}


def entry(release, **settings):
    return {
        "backend": "icgan_pretrained",
        "generator_path": str(release / "G_ema_best0.pth"),
        "encoder_path": str(release / "swav_800ep_pretrain.pth.tar"),
        "architecture": ARCHITECTURE,
        "resolution": 64,
        "input_size": 32,
        "variants": 2,
        "batch_size": 4,
        "shards": 1,
        **settings,
    }


def generator_config(release, **settings):
    return validate_config({"generators": {"ig": entry(release, **settings)}})["generators"]["ig"]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    write_release(root, ARCHITECTURE, 64)
    return root


@pytest.fixture(scope="module")
def loaded(release):
    return load_icgan_pretrained("ig", generator_config(release), CPU, torch.float32, None)


@pytest.fixture(scope="module")
def sources():
    images = np.random.default_rng(0).integers(0, 256, (6, 40, 40, 3), dtype=np.uint8)
    return images, np.array([3, 9, 11, 20, 21, 40])


def test_the_default_architecture_is_the_256_px_releases_layout():
    config = validate_config(
        {"generators": {"ig": {"backend": "icgan_pretrained", "generator_path": "g", "encoder_path": "e"}}}
    )
    gen = config["generators"]["ig"]
    assert gen["truncation"] == 0.7 and gen["resolution"] == 256 and gen["input_size"] == 224
    state = Generator.from_config(gen["architecture"], gen["resolution"], 2048).state_dict()
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert len(shapes) == 198
    assert shapes["shared.weight"] == (1000, 128)  # built by the release although IC-GAN never uses it
    assert shapes["shared_feat.weight"] == (512, 2048) and shapes["shared_feat.u0"] == (1, 512)
    assert shapes["linear.weight"] == (16 * 96 * 4 * 4, 17)  # 120 // 7 chunks of the hierarchical z
    assert shapes["blocks.0.0.conv1.weight"] == (1536, 1536, 3, 3) and shapes["blocks.0.0.conv_sc.weight"][2:] == (1, 1)
    assert shapes["blocks.0.0.bn1.gain.weight"] == (1536, 512 + 17) and "blocks.0.0.bn1.gain.bias" not in shapes
    assert shapes["blocks.0.0.bn1.stored_mean"] == (1536,) and shapes["blocks.5.0.bn2.stored_var"] == (96,)
    assert [k for k in shapes if k.split(".")[2:3] == ["1"] and k.endswith("gamma")] == ["blocks.3.1.gamma"]
    assert shapes["blocks.3.1.theta.weight"] == (48, 384, 1, 1) and shapes["blocks.3.1.o.weight"] == (384, 192, 1, 1)
    assert shapes["output_layer.0.gain"] == (96,) and shapes["output_layer.2.weight"] == (3, 96, 3, 3)
    assert all(shapes[k] == (1,) for k in shapes if k.endswith(".sv0"))


def test_the_release_round_trips_with_strict_keys(release, loaded):
    saved = torch.load(release / "G_ema_best0.pth", weights_only=True)
    state = loaded.generator.state_dict()
    assert set(state) == set(saved)
    assert all(torch.equal(state[k], saved[k]) for k in saved)
    assert not loaded.generator.training


def test_conditioning_features_are_the_swav_trunks_features(release, loaded, sources):
    """SwAV's pooled features f(x); G is conditioned on h = f(x) / ||f(x)||."""
    images, _ = sources
    features = loaded.conditioning_features(images)
    assert features.dtype == np.float32 and features.shape == (6, 2048)
    # The hub's way of loading SwAV (strip "module.", non-strict) and IC-GAN's preprocessing, written out.
    reference = resnet50(weights=None)
    reference.fc = torch.nn.Identity()
    state = torch.load(release / "swav_800ep_pretrain.pth.tar", weights_only=True)
    reference.load_state_dict({k.replace("module.", ""): v for k, v in state.items()}, strict=False)
    x = torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255
    x = F.interpolate(x, size=(64, 64), mode="bilinear", antialias=True, align_corners=False)
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = F.interpolate(x, size=(32, 32), mode="bicubic", align_corners=False)
    with torch.no_grad():
        expected = reference.eval()(x)
    scale = np.abs(expected.numpy()).max()  # raw pooled features: compare relative to their scale
    np.testing.assert_allclose(features / scale, expected.numpy() / scale, atol=1e-4)


def test_samples_have_the_releases_size_and_range_and_are_deterministic_per_sample(loaded, sources):
    images, indices = sources
    samples = loaded.sample(loaded.encode(images[:3]), variant_generators(0, "ig", indices[:3], 1))
    assert samples.shape == (3, 3, 64, 64) and samples.dtype == torch.float32
    assert samples.min() >= 0 and samples.max() <= 1 and samples.std() > 0
    first = loaded.generate(images, indices, 0, 16)
    assert first.shape == (6, 2, 16, 16, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(loaded.generate(images, indices, 0, 16), first)
    assert not np.array_equal(loaded.generate(images, indices, 1, 16), first)
    assert (first[:, 0] != first[:, 1]).any(axis=(1, 2, 3)).all()
    loaded.config["batch_size"] = 1
    np.testing.assert_array_equal(loaded.generate(images[:2], indices[:2], 0, 16), first[:2])
    loaded.config["batch_size"] = 5
    np.testing.assert_array_equal(loaded.generate(images, indices, 0, 16), first)
    loaded.config["batch_size"] = 4
    np.testing.assert_array_equal(loaded.generate(images[[4, 1]], indices[[4, 1]], 0, 16), first[[4, 1]])


def test_shared_features_give_exactly_the_per_variant_features_output(loaded, sources):
    """generate() encodes each source once for its K variants; encoding every variant's copy is bit-identical
    (the encoder runs micro-batches of a fixed shape)."""
    images, indices = sources
    shared = loaded.generate(images, indices, 0, 64)
    samples = loaded.sample(loaded.encode(np.repeat(images, 2, axis=0)), variant_generators(0, "ig", indices, 2))
    np.testing.assert_array_equal(to_uint8_images(samples).reshape(shared.shape), shared)


def _save_without(source, target, key):
    state = torch.load(source, weights_only=True)
    del state[key]
    torch.save(state, target)


def test_a_missing_or_foreign_key_is_refused_with_the_key_named(release, tmp_path):
    _save_without(release / "G_ema_best0.pth", tmp_path / "G.pth", "blocks.1.0.bn2.gain.u0")
    config = generator_config(release, generator_path=str(tmp_path / "G.pth"))
    with pytest.raises(
        GensslError, match=r"generators\.ig\.generator_path: .*G\.pth.*missing: blocks\.1\.0\.bn2\.gain\.u0"
    ):
        load_icgan_pretrained("ig", config, CPU, torch.float32, None)
    without_class_embedding = generator_config(release, architecture={**ARCHITECTURE, "class_embeddings": 0})
    with pytest.raises(GensslError, match=r"unexpected: shared\.weight"):
        load_icgan_pretrained("ig", without_class_embedding, CPU, torch.float32, None)
    other_noise = generator_config(release, architecture={**ARCHITECTURE, "dim_z": 25})
    with pytest.raises(GensslError, match=r"dim_z 25.*wrong shape: linear\.weight \(512, 4\) \(expected \(512, 5\)\)"):
        load_icgan_pretrained("ig", other_noise, CPU, torch.float32, None)
    _save_without(release / "swav_800ep_pretrain.pth.tar", tmp_path / "swav.pth.tar", "module.layer3.2.conv2.weight")
    config = generator_config(release, encoder_path=str(tmp_path / "swav.pth.tar"))
    with pytest.raises(
        GensslError, match=r"generators\.ig\.encoder_path: .*swav\.pth\.tar.*missing: layer3\.2\.conv2\.weight"
    ):
        load_icgan_pretrained("ig", config, CPU, torch.float32, None)


def test_swav_files_without_the_prefix_or_the_batch_counters(release, tmp_path):
    state = torch.load(release / "swav_800ep_pretrain.pth.tar", weights_only=True)
    torch.save({k.removeprefix("module."): v for k, v in state.items()}, tmp_path / "bare.pth.tar")
    config = generator_config(release, encoder_path=str(tmp_path / "bare.pth.tar"))
    with pytest.raises(
        GensslError, match=r"without the 'module\.' prefix \(bn1\.bias, .*swav_800ep_pretrain\.pth\.tar"
    ):
        load_icgan_pretrained("ig", config, CPU, torch.float32, None)
    torch.save({k: v for k, v in state.items() if "num_batches_tracked" not in k}, tmp_path / "counters.pth.tar")
    config = generator_config(release, encoder_path=str(tmp_path / "counters.pth.tar"))
    generator = load_icgan_pretrained("ig", config, CPU, torch.float32, None)
    images = np.zeros((1, 8, 8, 3), np.uint8)
    assert generator.conditioning_features(images).shape == (1, 2048)


def test_missing_or_unreadable_files_name_the_path_and_the_layout(release, tmp_path):
    config = generator_config(release, generator_path=str(tmp_path / "nowhere" / "G_ema.pth"))
    with pytest.raises(
        GensslError, match=r"generators\.ig\.generator_path: .*nowhere/G_ema\.pth does not exist.*G_ema"
    ):
        load_icgan_pretrained("ig", config, CPU, torch.float32, None)
    config = generator_config(release, encoder_path=str(tmp_path / "swav.tar"))
    with pytest.raises(GensslError, match=r"encoder_path: .*swav\.tar does not exist.*swav_800ep_pretrain\.pth\.tar"):
        load_icgan_pretrained("ig", config, CPU, torch.float32, None)
    (tmp_path / "text.pth").write_text("not a checkpoint")
    config = generator_config(release, generator_path=str(tmp_path / "text.pth"))
    with pytest.raises(GensslError, match=r"cannot read .*text\.pth as a torch state dict"):
        load_icgan_pretrained("ig", config, CPU, torch.float32, None)
    torch.save({"config": {"resolution": 256}}, tmp_path / "state_dict_best0.pth")
    config = generator_config(release, generator_path=str(tmp_path / "state_dict_best0.pth"))
    with pytest.raises(GensslError, match=r"state_dict_best0\.pth is not a flat dict of tensors"):
        load_icgan_pretrained("ig", config, CPU, torch.float32, None)


def test_generation_into_a_variant_store(release, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(1)
    writer = StoreWriter(data, "raw", (16, 16, 3))
    for _ in range(10):
        writer.add(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8).tobytes())
    writer.close(np.zeros(10, np.int64), ["0"], {"train": np.arange(10)}, {"source": "test"})
    config = validate_config({"seed": 0, "generators": {"ig": entry(release, shards=2)}})
    generate(config, "ig", data, tmp_path / "augment" / "ig")
    store = VariantStore(tmp_path / "augment" / "ig")
    assert verify_store(tmp_path / "augment" / "ig") == [] and store.k == 2 and store.images.shape == (16, 16, 3)
    assert (tmp_path / "augment" / "ig" / "preview.png").is_file()


def test_the_pretrained_backend_is_not_trained_in_the_workflow(release, tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"generators": {"ig": entry(release)}}))
    assert main(["train-generator", "--config", str(config), "--generator", "ig"]) == 2
    assert "generators.ig: backend icgan_pretrained is not trained in the workflow" in capsys.readouterr().err
