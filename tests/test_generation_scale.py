"""Generation at paper scale: the published architectures build at their real size (on the meta device: shapes, no
memory) with the published parameter counts, and the cost estimate of a variant store agrees with a real run."""

import json
import time

import numpy as np
import pytest
import torch

from genssl.cli import main
from genssl.config import validate_config
from genssl.generate.architectures import architecture, build_pipeline, parameter_counts
from genssl.generate.estimate import estimate
from genssl.generate.generation import GenerationPlan, generate_shard
from genssl.generate.icgan.biggan import Generator
from genssl.generate.icgan.swav import swav_trunk
from genssl.store import StoreWriter
from tests.tiny_pipelines import BUILDERS, CLIP_SIZE

# Published parameter counts and their sources.
#: Stable Diffusion 2's UNet: "865M UNet" (stabilityai/stable-diffusion-2 model card), 865,910,724 as counted for
#: stabilityai/stable-diffusion-2-1's UNet in diffusers; unCLIP adds the projection of its 1536-dim image-embedding
#: input into the 1280-dim time embedding, Linear(1536, 1280) + Linear(1280, 1280) = 3,607,040 parameters, and its
#: unet safetensors file is 3.48 GB of fp32 = 869.5 M (huggingface.co/stabilityai/stable-diffusion-2-1-unclip-small).
SD2_UNET = 865_910_724
UNCLIP_CLASS_EMBEDDING = 1536 * 1280 + 1280 + 1280 * 1280 + 1280
#: Stable Diffusion 1's UNet: "860M UNet" (CompVis/stable-diffusion-v1-4 model card), 859,520,964 in diffusers.
SD1_UNET = 859_520_964
#: The SD autoencoder: 83,653,863 (diffusers' AutoencoderKL of Stable Diffusion; 335 MB of fp32 weights).
VAE = 83_653_863
#: OpenAI CLIP ViT-L/14's image tower with its 1024 -> 768 projection: 303,966,208 (304 M, CLIP paper; the
#: image_encoder file of lambdalabs/sd-image-variations-diffusers is 1,215,993,967 bytes of fp32).
CLIP_VIT_L14_VISION = 303_966_208
#: OpenCLIP ViT-H/14's text tower to its 23rd layer (Stable Diffusion 2's text encoder): 340,387,840 (1.36 GB fp32).
SD2_TEXT_ENCODER = 340_387_840
#: torchvision's ResNet-50: 25,557,032 parameters (torchvision model docs), less its 2048 x 1000 classifier.
RESNET50_TRUNK = 25_557_032 - (2048 * 1000 + 1000)
#: IC-GAN's 256 px BigGAN generator (ch 96): no count is published; 90,014,340 as built here, whose every key and
#: shape matches the release's state dict (tests/test_generate_icgan_pretrained.py).
ICGAN_256_GENERATOR = 90_014_340


def test_sd_unclip_small_builds_at_its_published_size():
    pipe = build_pipeline(architecture("sd_unclip"), device="meta")
    assert type(pipe).__name__ == "StableUnCLIPImg2ImgPipeline"
    assert parameter_counts(pipe) == {
        "unet": SD2_UNET + UNCLIP_CLASS_EMBEDDING,
        "vae": VAE,
        "image_encoder": CLIP_VIT_L14_VISION,
        "text_encoder": SD2_TEXT_ENCODER,
        "image_normalizer": 2 * 768,
    }
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == 768
    assert pipe.tokenizer.model_max_length == pipe.text_encoder.config.max_position_embeddings == 77


def test_sd_image_variation_builds_at_its_published_size():
    pipe = build_pipeline(architecture("sd_image_variation"), device="meta")
    assert type(pipe).__name__ == "StableDiffusionImageVariationPipeline" and pipe.safety_checker is None
    assert parameter_counts(pipe) == {"unet": SD1_UNET, "vae": VAE, "image_encoder": CLIP_VIT_L14_VISION}
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == 512


def test_icgan_256_is_the_schemas_icgan_pretrained_default_and_builds_at_its_size():
    spec = architecture("icgan_pretrained")
    entry = {"backend": "icgan_pretrained", "generator_path": "g", "encoder_path": "e"}
    defaults = validate_config({"generators": {"ig": entry}})["generators"]["ig"]
    assert spec["generator"]["architecture"] == defaults["architecture"]
    assert spec["generator"]["resolution"] == defaults["resolution"]
    assert spec["encoder"]["input_size"] == defaults["input_size"]
    with torch.device("meta"):
        generator = Generator.from_config(
            spec["generator"]["architecture"], spec["generator"]["resolution"], spec["encoder"]["feature_dim"]
        )
        trunk = swav_trunk()
    assert sum(p.numel() for p in generator.parameters()) == ICGAN_256_GENERATOR
    assert sum(p.numel() for p in trunk.parameters()) == RESNET50_TRUNK


def test_every_component_names_its_source():
    for backend in ("sd_unclip", "sd_image_variation"):
        for name, part in architecture(backend)["components"].items():
            assert part["source"], (backend, name)
    with pytest.raises(KeyError, match="no published architecture for backend 'icdiffusion'"):
        architecture("icdiffusion")


@pytest.fixture(scope="module")
def one_thread():
    """One thread: the tiny pipeline is overhead-bound, and timings on a shared machine vary less."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def small_study(tmp_path_factory, one_thread):
    """48 random 32 px training images and a tiny sd_unclip generator: 96 variants, in calls of 4 images."""
    root = tmp_path_factory.mktemp("scale")
    data = root / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    writer = StoreWriter(data, "raw", (32, 32, 3))
    for _ in range(48):
        writer.add(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8).tobytes())
    writer.close(np.zeros(48, np.int64), ["0"], {"train": np.arange(48)}, {"source": "test"})
    entry = {
        "backend": "sd_unclip",
        "path": str(BUILDERS["sd_unclip"](root / "pipeline")),
        "variants": 2,
        "batch_size": 8,
        "shards": 1,
        "input_size": CLIP_SIZE,
        "device": "cpu",
    }
    return validate_config({"seed": 0, "generators": {"gen": entry}}), data, root


def test_the_estimate_is_within_2x_of_a_real_run(small_study, caplog):
    config, data, root = small_study
    plan = GenerationPlan(config, "gen", data, None)
    projected = estimate(plan)
    assert projected.generated == 96 and projected.bytes_per_image == 32 * 32 * 3  # raw images
    started = time.perf_counter()
    with caplog.at_level("INFO", logger="genssl.generate.generation"):
        generate_shard(config, "gen", 0, data, root / "augment", plan=plan)
    measured = time.perf_counter() - started
    assert "shard 0: projected from call 1: gen: 48 images x 2 variants = 96 generated" in caplog.text
    ratio = projected.device_hours * 3600 / measured
    assert 0.5 <= ratio <= 2, f"estimated {projected.device_hours * 3600:.2f} s, measured {measured:.2f} s"


def test_generate_estimate_prints_the_projection_and_writes_nothing(small_study, capsys):
    config, data, root = small_study
    config_file = root / "config.json"
    config_file.write_text(json.dumps(config))
    out = root / "estimated"
    command = ["generate", "--config", str(config_file), "--generator", "gen", "--data", str(data), "--out", str(out)]
    assert main([*command, "--estimate"]) == 0
    line = capsys.readouterr().out
    assert "48 images x 2 variants = 96 generated" in line and "device-hours" in line and "GB on disk (raw" in line
    assert not out.exists() and not (root / "estimated.shards").exists()
