"""Stable Diffusion image-variation backends: diffusers pipelines loaded from a local directory (``path``).

``sd_unclip`` is ``StableUnCLIPImg2ImgPipeline`` (the paper's stabilityai/stable-diffusion-2-1-unclip-small),
``sd_image_variation`` is ``StableDiffusionImageVariationPipeline`` (lambdalabs/sd-image-variations-diffusers).
Both are conditioned on the CLIP image embedding of the source, which is centre-cropped and resized to
``input_size`` and then prepared by the pipeline's own CLIP feature extractor.

Sampling follows the paper: the pipeline's scheduler is replaced by DDIM with "trailing" timestep spacing and
betas rescaled to zero terminal SNR, ``inference_steps`` steps, eta 0 (no step noise); ``guidance_scale`` null
keeps the pipeline's default (unCLIP 10, image variation 7.5). Two deliberate departures for checkpoints the
paper did not use: the zero-SNR rescale is applied only to v-prediction models (an epsilon-prediction model such
as image variation divides by sqrt(alpha_bar) = 0 at the first trailing step: NaN or, with x0 clipping, a binary
x0), and x0 clipping is always off (it clips to [-1, 1], meant for pixel-space models; DDIM turns it on when built
from a PNDM config that lacks the key, as image variation's is).

Determinism: sample ``j`` draws all of its randomness from ``generators[j]`` alone. The pipelines' random draws
are the initial latents and, for unCLIP, the noise added to the image embedding (drawn even at noise_level 0,
which scales it by sqrt(1 - alpha_bar_0)); diffusers' ``randn_tensor`` draws each sample's share from its own
generator when given one generator per batch element, which :meth:`DiffusersVariations.run_pipeline` passes
(with ``num_images_per_prompt`` 1 and one prompt per image, so the batch is one row per sample). DDIM with eta 0
draws nothing; classifier-free guidance doubles only the UNet's input, not the draws.

The float results depend on the batch shape at the last bits: MKL and oneDNN on the CPU (and cuDNN on GPUs)
choose their kernels, and so the order of a sum, by it, so a batched sample differs from the same sample alone by
one level in about one uint8 value in 10^4 on the CPU (one in 10 on an H100 in fp16). The generation driver
keeps every batch's samples the same for any shard count and resume point
(:mod:`genssl.generate.base`), so stores are byte-identical across those anyway, and every call runs its whole
batch for throughput.
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from diffusers import (
    DDIMScheduler,
    DiffusionPipeline,
    StableDiffusionImageVariationPipeline,
    StableUnCLIPImg2ImgPipeline,
)

from genssl.errors import GensslError
from genssl.generate.base import VariantGenerator, resize_images, to_float_images


def load_pipeline(
    pipeline_class: type[DiffusionPipeline], key: str, path: str, model: str, layout: str, dtype: torch.dtype
) -> DiffusionPipeline:
    """``pipeline_class`` from the local diffusers directory ``path`` (never downloaded). A missing directory,
    one without ``model_index.json``, one saved from another pipeline class or one diffusers cannot load raise
    :class:`GensslError` naming the config ``key``, the path, the ``model`` expected there and its ``layout``."""
    directory = Path(path).expanduser()
    expected = f"the diffusers pipeline {model} ({pipeline_class.__name__}: {layout})"
    index = directory / "model_index.json"
    if not index.is_file():
        problem = "does not exist" if not directory.exists() else "has no model_index.json"
        raise GensslError(
            f"{key}: {directory} {problem}; expected a local copy of {expected}, "
            f"for example from `hf download {model} --local-dir {directory}`"
        )
    try:
        found = json.loads(index.read_text()).get("_class_name")
    except (ValueError, AttributeError) as error:
        raise GensslError(f"{key}: {index} is not a diffusers model index ({error}); expected {expected}") from error
    if found != pipeline_class.__name__:
        raise GensslError(f"{key}: {directory} holds a {found} pipeline; expected {expected}")
    try:
        return pipeline_class.from_pretrained(directory, dtype=dtype, local_files_only=True)
    except (OSError, ValueError, TypeError) as error:
        raise GensslError(f"{key}: cannot load {directory} as {expected}: {error}") from error


def paper_scheduler(config: Mapping[str, Any]) -> DDIMScheduler:
    """The paper's sampler from a pipeline's scheduler config: DDIM, "trailing" spacing, no x0 clipping, betas
    rescaled to zero terminal SNR for v-prediction models (see the module docstring for epsilon prediction)."""
    return DDIMScheduler.from_config(
        config,
        rescale_betas_zero_snr=config.get("prediction_type") == "v_prediction",
        timestep_spacing="trailing",
        clip_sample=False,
    )


class DiffusersVariations(VariantGenerator):
    """A variation pipeline conditioned on a source image's CLIP embedding. Subclasses name the pipeline class,
    the model it is meant to hold and its layout, and add their own call arguments (:meth:`call_kwargs`)."""

    pipeline_class: ClassVar[type[DiffusionPipeline]]
    model: ClassVar[str]
    layout: ClassVar[str]

    def __init__(self, name: str, config: dict[str, Any], device: torch.device, dtype: torch.dtype) -> None:
        super().__init__(name, config, device, dtype)
        key = f"generators.{name}.path"
        self.pipe = load_pipeline(self.pipeline_class, key, config["path"], self.model, self.layout, dtype)
        self.pipe.scheduler = paper_scheduler(self.pipe.scheduler.config)
        self.pipe.set_progress_bar_config(disable=True)
        self.pipe.to(device)

    def call_kwargs(self, batch: int) -> dict[str, Any]:
        """The pipeline's backend-specific arguments for a batch of ``batch`` images."""
        return {}

    def sample(self, images: np.ndarray, generators: list[torch.Generator]) -> torch.Tensor:
        """The batch in one pipeline call (see :meth:`VariantGenerator.sample`)."""
        if len(generators) != len(images):
            raise ValueError(f"{len(images)} images but {len(generators)} generators")
        return self.run_pipeline(images, generators)

    def clip_input(self, images: np.ndarray) -> torch.Tensor:
        """CLIP's input for uint8 source images: centre-cropped and resized to ``input_size``, then the pipeline's
        feature extractor (resize to CLIP's size, CLIP's normalisation)."""
        pixels = resize_images(to_float_images(images), self.config["input_size"])
        return self.pipe.feature_extractor(images=pixels, do_rescale=False, return_tensors="pt").pixel_values

    @torch.inference_mode()
    def conditioning_features(self, images: np.ndarray) -> np.ndarray:
        """CLIP's image embeddings (``image_encoder(...).image_embeds``), which both pipelines condition on."""
        pixels = self.clip_input(images).to(device=self.device, dtype=self.pipe.image_encoder.dtype)
        return self.pipe.image_encoder(pixels).image_embeds.float().cpu().numpy()

    def run_pipeline(self, images: np.ndarray, generators: list[torch.Generator]) -> torch.Tensor:
        """One pipeline call on a batch: float (B, 3, h, w) in [0, 1] on the device."""
        clip_input = self.clip_input(images)
        guidance = self.config["guidance_scale"]
        output = self.pipe(
            image=clip_input,
            generator=list(generators),
            num_images_per_prompt=1,
            num_inference_steps=self.config["inference_steps"],
            eta=0.0,
            output_type="pt",
            **({} if guidance is None else {"guidance_scale": guidance}),
            **self.call_kwargs(len(images)),
        )
        return output.images


class StableUnCLIPVariations(DiffusersVariations):
    """``StableUnCLIPImg2ImgPipeline``: the image embedding (noised by ``noise_level``) and the text ``prompt``."""

    pipeline_class = StableUnCLIPImg2ImgPipeline
    model = "stabilityai/stable-diffusion-2-1-unclip-small"
    layout = (
        "model_index.json, feature_extractor/, image_encoder/, image_normalizer/, image_noising_scheduler/, "
        "tokenizer/, text_encoder/, unet/, scheduler/, vae/"
    )

    def call_kwargs(self, batch: int) -> dict[str, Any]:
        return {"prompt": [self.config["prompt"]] * batch, "noise_level": self.config["noise_level"]}


class StableDiffusionImageVariations(DiffusersVariations):
    """``StableDiffusionImageVariationPipeline``: the image embedding alone (with the checkpoint's safety checker,
    if it ships one)."""

    pipeline_class = StableDiffusionImageVariationPipeline
    model = "lambdalabs/sd-image-variations-diffusers"
    layout = "model_index.json, feature_extractor/, image_encoder/, unet/, scheduler/, vae/ (safety_checker/ optional)"


def load_sd_unclip(
    name: str, config: dict[str, Any], device: torch.device, dtype: torch.dtype, weights_dir: Path | None
) -> VariantGenerator:
    """Backend ``sd_unclip`` from ``config["path"]`` (``weights_dir`` is unused: nothing is trained)."""
    return StableUnCLIPVariations(name, config, device, dtype)


def load_sd_image_variation(
    name: str, config: dict[str, Any], device: torch.device, dtype: torch.dtype, weights_dir: Path | None
) -> VariantGenerator:
    """Backend ``sd_image_variation`` from ``config["path"]`` (``weights_dir`` is unused: nothing is trained)."""
    return StableDiffusionImageVariations(name, config, device, dtype)
