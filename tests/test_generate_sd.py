"""The Stable Diffusion backends on tiny random pipelines (tests/tiny_pipelines.py), through ``load_*`` and
``generate``: shapes, determinism in (seed, image index, variant), independence of batch size and batch-mates,
shared image embeddings, the paper's sampler settings, the speed settings, and the errors for a missing or wrong
weights directory."""

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from genssl.config import validate_config
from genssl.errors import GensslError
from genssl.generate.base import resize_images, to_uint8_images, variant_generators
from genssl.generate.stable_diffusion import load_sd_image_variation, load_sd_unclip
from tests.tiny_pipelines import BUILDERS, SIZE

LOADERS = {"sd_unclip": load_sd_unclip, "sd_image_variation": load_sd_image_variation}
#: The pipelines' own guidance defaults (``guidance_scale: null`` must keep them).
PIPELINE_GUIDANCE = {"sd_unclip": 10.0, "sd_image_variation": 7.5}
OUT = 24


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny pipelines are overhead-bound: one thread is as fast as two, and does not stall (5 to 50 times
    slower, seen here) while another process holds a core, as two OpenMP threads waiting on each other do."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sd")
    return {backend: build(root / backend) for backend, build in BUILDERS.items()}


@pytest.fixture(scope="module")
def sources() -> tuple[np.ndarray, np.ndarray]:
    """Three non-square source images (centre-cropped by the backend) and their dataset indices."""
    images = np.random.default_rng(0).integers(0, 256, size=(3, 40, 48, 3), dtype=np.uint8)
    return images, np.array([5, 11, 12])


def load(backend: str, path: Path | str, **settings):
    entry = {"backend": backend, "path": str(path), "variants": 2, "input_size": SIZE, "device": "cpu", **settings}
    config = validate_config({"generators": {"gen": entry}})["generators"]["gen"]
    return LOADERS[backend]("gen", config, torch.device("cpu"), torch.float32, None)


@pytest.fixture(scope="module", params=sorted(LOADERS))
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def reference(backend, weights, sources) -> np.ndarray:
    """Variants of the sources at seed 0, batch size 1 and the schema's defaults."""
    images, indices = sources
    return load(backend, weights[backend], batch_size=1).generate(images, indices, 0, OUT)


def test_shape_and_repeatability(backend, weights, sources, reference):
    images, indices = sources
    assert reference.shape == (3, 2, OUT, OUT, 3) and reference.dtype == np.uint8
    assert reference.std() > 10  # real images, not a constant (a NaN sampler would give zeros)
    again = load(backend, weights[backend], batch_size=1).generate(images, indices, 0, OUT)
    np.testing.assert_array_equal(again, reference)


def assert_same_up_to_rounding(out, reference):
    """Batched kernels round differently for other batch shapes: at most one level, in under 0.1 % of values.
    A sample that drew its noise from another sample's generator would differ by 100 levels and more."""
    diff = np.abs(out.astype(int) - reference)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


@pytest.mark.parametrize("batch_size", [4, 7])
def test_batch_size_does_not_change_a_sample(backend, weights, sources, reference, batch_size):
    images, indices = sources
    generator = load(backend, weights[backend], batch_size=batch_size)
    out = generator.generate(images, indices, 0, OUT)
    assert_same_up_to_rounding(out, reference)
    np.testing.assert_array_equal(generator.generate(images, indices, 0, OUT), out)


def test_batch_mates_and_position_do_not_change_a_sample(backend, weights, sources, reference):
    images, indices = sources
    generator = load(backend, weights[backend], batch_size=3)
    # Image 12 first, next to a new image; then image 5 alone.
    stranger = np.full((1, 40, 48, 3), 200, dtype=np.uint8)
    out = generator.generate(np.concatenate([images[2:], stranger]), np.array([12, 99]), 0, OUT)
    assert_same_up_to_rounding(out[0], reference[2])
    assert_same_up_to_rounding(generator.generate(images[:1], indices[:1], 0, OUT)[0], reference[0])


def test_variants_seeds_and_indices_differ(backend, weights, sources, reference):
    images, indices = sources
    generator = load(backend, weights[backend], batch_size=6)
    assert np.abs(reference[:, 0].astype(int) - reference[:, 1]).mean() > 5
    other_seed = generator.generate(images, indices, 1, OUT)
    assert all(np.abs(other_seed[i].astype(int) - reference[i]).mean() > 5 for i in range(3))
    # The same pixels under another dataset index are another sample.
    other_index = generator.generate(images[:1], np.array([6]), 0, OUT)
    assert np.abs(other_index[0].astype(int) - reference[0]).mean() > 5


def test_paper_sampler_settings(backend, weights, sources):
    images, indices = sources
    generator = load(backend, weights[backend], batch_size=2)
    assert generator.config["inference_steps"] == 10 and generator.config["guidance_scale"] is None
    scheduler = generator.pipe.scheduler
    assert isinstance(scheduler, DDIMScheduler)
    assert scheduler.config.timestep_spacing == "trailing" and not scheduler.config.clip_sample
    # Zero terminal SNR needs v-prediction (unCLIP); the epsilon-prediction image-variation model keeps its betas.
    v_prediction = backend == "sd_unclip"
    assert scheduler.config.prediction_type == ("v_prediction" if v_prediction else "epsilon")
    assert scheduler.config.rescale_betas_zero_snr == v_prediction
    assert (scheduler.alphas_cumprod[-1] == 0) == v_prediction
    default = generator.generate(images[:1], indices[:1], 0, OUT)
    assert scheduler.timesteps.tolist() == list(range(999, 0, -100))
    # guidance_scale null is the pipeline's own default; another scale gives another image.
    same = load(backend, weights[backend], guidance_scale=PIPELINE_GUIDANCE[backend]).generate(
        images[:1], indices[:1], 0, OUT
    )
    np.testing.assert_array_equal(same, default)
    unguided = load(backend, weights[backend], guidance_scale=1.0).generate(images[:1], indices[:1], 0, OUT)
    assert np.abs(unguided.astype(int) - default).mean() > 1


def test_unclip_prompt_and_noise_level_are_used(weights, sources):
    images, indices = sources
    default = load("sd_unclip", weights["sd_unclip"]).generate(images[:1], indices[:1], 0, OUT)
    for settings in ({"prompt": "a photo"}, {"noise_level": 500}):
        out = load("sd_unclip", weights["sd_unclip"], **settings).generate(images[:1], indices[:1], 0, OUT)
        assert np.abs(out.astype(int) - default).mean() > 1, settings


@pytest.mark.parametrize("layout", ["missing", "empty"])
def test_missing_weights_name_the_key_path_and_model(backend, tmp_path, layout):
    path = tmp_path / "weights"
    if layout == "empty":
        path.mkdir()
    model = {"sd_unclip": "stable-diffusion-2-1-unclip-small", "sd_image_variation": "sd-image-variations-diffusers"}
    with pytest.raises(GensslError) as error:
        load(backend, path)
    message = str(error.value)
    for part in ("generators.gen.path", str(path), model[backend], "model_index.json", "unet/"):
        assert part in message


def test_a_directory_of_the_other_pipeline_is_refused(weights):
    with pytest.raises(GensslError, match=r"holds a StableDiffusionImageVariationPipeline.*StableUnCLIPImg2Img"):
        load("sd_unclip", weights["sd_image_variation"])
    # diffusers itself would load this one (unCLIP's directory has every part image variation needs).
    with pytest.raises(GensslError, match=r"holds a StableUnCLIPImg2ImgPipeline.*StableDiffusionImageVariation"):
        load("sd_image_variation", weights["sd_unclip"])


def test_conditioning_features_are_the_pipelines_clip_image_embeddings(backend, weights, sources):
    images, _ = sources
    generator = load(backend, weights[backend])
    features = generator.conditioning_features(images)
    assert features.shape == (3, generator.pipe.image_encoder.config.projection_dim) and features.dtype == np.float32
    clip_input = generator.clip_input(images)
    with torch.no_grad():
        expected = generator.pipe.image_encoder(clip_input).image_embeds.numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(features[0], features[1])  # different images, different embeddings
    np.testing.assert_allclose(generator.conditioning_features(images[:1]), features[:1], rtol=1e-5, atol=1e-6)


def test_shared_image_embeddings_give_the_per_variant_embeddings_output(backend, weights, sources):
    """generate() encodes each source once for its K variants; encoding every variant's copy of the source is the
    same computation on more rows (CLIP's batch shape may move a value by one level)."""
    images, indices = sources
    generator = load(backend, weights[backend], batch_size=6)
    shared = generator.generate(images, indices, 0, OUT)
    conditions = generator.encode(np.repeat(images, 2, axis=0))
    with torch.inference_mode():
        samples = generator.sample(conditions, variant_generators(0, "gen", indices, 2))
    per_variant = to_uint8_images(resize_images(samples.float(), OUT)).reshape(shared.shape)
    assert_same_up_to_rounding(per_variant, shared)


def test_embeddings_enter_the_pipeline_as_the_images_did(backend, weights, sources):
    """The pipeline called on the precomputed embeddings (and unCLIP's prompt embeddings encoded once) gives what
    it gives when called on the CLIP inputs and the prompt, one call per batch (the backend before sharing)."""
    images, indices = sources
    generator = load(backend, weights[backend])
    generators = variant_generators(0, "gen", indices, 1)
    with torch.inference_mode():
        embedded = generator.sample(generator.encode(images), generators)
        direct = generator.pipe(
            image=generator.clip_input(images),
            generator=variant_generators(0, "gen", indices, 1),
            num_inference_steps=10,
            guidance_scale=generator.guidance_scale,
            output_type="pt",
            **generator.call_kwargs(len(images)),
        ).images
    torch.testing.assert_close(embedded, direct, atol=2e-3, rtol=0)
    assert embedded.std() > 0.05


def test_pipeline_size_sets_the_generated_side(backend, weights, sources):
    images, indices = sources
    native = load(backend, weights[backend])
    smaller = load(backend, weights[backend], pipeline_size=16)
    with torch.inference_mode():
        assert native.sample(native.encode(images[:1]), variant_generators(0, "gen", indices[:1], 1)).shape[-1] == SIZE
        assert smaller.sample(smaller.encode(images[:1]), variant_generators(0, "gen", indices[:1], 1)).shape[-1] == 16
    assert smaller.generate(images[:1], indices[:1], 0, OUT).shape == (1, 2, OUT, OUT, 3)


def test_a_failing_compiler_falls_back_to_the_eager_unet(weights, sources, monkeypatch, caplog):
    images, indices = sources
    eager = load("sd_unclip", weights["sd_unclip"]).generate(images[:1], indices[:1], 0, OUT)

    def broken(function, **options):
        def compiled(*args, **kwargs):
            raise RuntimeError("no C++ compiler found\nmore detail")

        return compiled

    monkeypatch.setattr(torch, "compile", broken)
    generator = load("sd_unclip", weights["sd_unclip"], compile=True)
    with caplog.at_level("WARNING", logger="genssl.generate.stable_diffusion"):
        np.testing.assert_array_equal(generator.generate(images[:1], indices[:1], 0, OUT), eager)
    assert "torch.compile of the UNet failed; running it eagerly: no C++ compiler found" in caplog.text
    assert caplog.text.count("torch.compile of the UNet failed") == 1  # once, then eager for good
