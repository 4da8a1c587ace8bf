"""Stable Diffusion image-variation backends: diffusers pipelines loaded from a local directory (``path``).

``sd_unclip`` is ``StableUnCLIPImg2ImgPipeline`` (the paper's stabilityai/stable-diffusion-2-1-unclip-small),
``sd_image_variation`` is ``StableDiffusionImageVariationPipeline`` (lambdalabs/sd-image-variations-diffusers).
Both are conditioned on the CLIP image embedding of the source, which is centre-cropped and resized to
``input_size`` and then prepared by the pipeline's own CLIP feature extractor.

Sampling follows the paper: the pipeline's scheduler is replaced by DDIM with "trailing" timestep spacing and
betas rescaled to zero terminal SNR, ``inference_steps`` steps, eta 0 (no step noise); ``guidance_scale`` null
keeps the pipeline's default (unCLIP 10, image variation 7.5); the pipeline generates at its UNet's native size
(``pipeline_size`` null: 768 px for unCLIP-small, 512 px for image variation, as the paper's code) and the variants
are resized to the store's size. Two deliberate departures for checkpoints the paper did not use: the zero-SNR
rescale is applied only to v-prediction models (an epsilon-prediction model such as image variation divides by
sqrt(alpha_bar) = 0 at the first trailing step: NaN or, with x0 clipping, a binary x0), and x0 clipping is always
off (it clips to [-1, 1], meant for pixel-space models; DDIM turns it on when built from a PNDM config that lacks
the key, as image variation's is).

Throughput (``benchmarks/generation_scale.py`` measures each step): the CLIP image embedding of a source is computed
once (:meth:`DiffusersVariations.encode`) and shared by its K variants, and unCLIP's prompt embeddings (the empty
prompt and the guidance's negative prompt) once when the backend is built; attention runs PyTorch's fused
scaled-dot-product kernels (diffusers' default) and the VAE decodes a whole batch at once (diffusers' default);
``channels_last`` (off by default: slower on an H200 and on the CPU) stores the UNet's and VAE's activations
channels-last and ``compile`` (null, the default: on CUDA) compiles the UNet with ``torch.compile`` (a
minute of compilation per batch shape, paid back within a shard; a compiler that fails falls back to the eager
UNet with a warning). Both only move values by rounding, so they are not part of a variant store's fingerprint.

Determinism: sample ``j`` draws all of its randomness from ``generators[j]`` alone. The pipelines' random draws
are the initial latents and, for unCLIP, the noise added to the image embedding (drawn even at noise_level 0,
which scales it by sqrt(1 - alpha_bar_0)); diffusers' ``randn_tensor`` draws each sample's share from its own
generator when given one generator per batch element, which :meth:`DiffusersVariations.sample` passes (with
``num_images_per_prompt`` 1 and one embedding per sample, so the batch is one row per sample). DDIM with eta 0
draws nothing; classifier-free guidance doubles only the UNet's input, not the draws.

The float results depend on the batch shape at the last bits: MKL and oneDNN on the CPU (and cuDNN on GPUs)
choose their kernels, and so the order of a sum, by it, so a batched sample differs from the same sample alone by
one level in about one uint8 value in 10^4 on the CPU (one in 10 on an H100 in fp16). The generation driver
keeps every batch's samples the same for any shard count and resume point
(:mod:`genssl.generate.base`), so stores are byte-identical across those anyway, and every call runs its whole
batch for throughput.
"""

import abc
import inspect
import json
import logging
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
from torch import nn

from genssl.errors import GensslError
from genssl.generate.base import VariantGenerator, resize_images, to_float_images

log = logging.getLogger(__name__)


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


class ImageVariationFromEmbeddings(StableDiffusionImageVariationPipeline):
    """``StableDiffusionImageVariationPipeline`` that also takes CLIP image embeddings (B, D) computed beforehand
    as ``image`` (unCLIP's pipeline takes them as ``image_embeds``; this one has no such argument)."""

    def _encode_image(
        self, image: Any, device: torch.device, num_images_per_prompt: int, do_classifier_free_guidance: bool
    ) -> torch.Tensor:
        if not (isinstance(image, torch.Tensor) and image.ndim == 2):
            return super()._encode_image(image, device, num_images_per_prompt, do_classifier_free_guidance)
        embeddings = image.to(device=device, dtype=self.image_encoder.dtype)
        embeddings = embeddings.repeat_interleave(num_images_per_prompt, dim=0).unsqueeze(1)
        if do_classifier_free_guidance:
            embeddings = torch.cat([torch.zeros_like(embeddings), embeddings])
        return embeddings


def on_cuda_by_default(setting: bool | None, device: torch.device) -> bool:
    """A speed setting that is ``true``, ``false``, or null: on CUDA only."""
    return device.type == "cuda" if setting is None else setting


def compile_forward(module: nn.Module, name: str) -> None:
    """``torch.compile`` the ``forward`` of ``module`` (called ``name`` in the log) in place, falling back to the
    eager forward with a warning when the compiler fails (at the first call, where torch.compile fails)."""
    eager = module.forward
    compiled = torch.compile(eager, fullgraph=False)

    def forward(*args: Any, **kwargs: Any) -> Any:
        try:
            return compiled(*args, **kwargs)
        except Exception as error:  # the compiler's errors are of many kinds (backend, lowering, toolchain)
            log.warning("torch.compile of the %s failed; running it eagerly: %s", name, str(error).splitlines()[0])
            module.forward = eager
            return eager(*args, **kwargs)

    module.forward = forward


class DiffusersVariations(VariantGenerator):
    """A variation pipeline conditioned on a source image's CLIP embedding. Subclasses name the pipeline class,
    the model it is meant to hold and its layout, and how a batch of embeddings enters the pipeline
    (:meth:`embedding_kwargs`)."""

    pipeline_class: ClassVar[type[DiffusionPipeline]]
    model: ClassVar[str]
    layout: ClassVar[str]

    def __init__(
        self, name: str, config: dict[str, Any], device: torch.device, dtype: torch.dtype, pipe: DiffusionPipeline
    ) -> None:
        """The backend on ``pipe``, whose weights are in ``dtype`` already (it is moved to ``device``)."""
        super().__init__(name, config, device, dtype)
        self.pipe = pipe
        self.pipe.scheduler = paper_scheduler(pipe.scheduler.config)
        self.pipe.set_progress_bar_config(disable=True)
        self.pipe.to(device)
        if on_cuda_by_default(config["channels_last"], device):
            self.pipe.unet.to(memory_format=torch.channels_last)
            self.pipe.vae.to(memory_format=torch.channels_last)
        if on_cuda_by_default(config["compile"], device):
            compile_forward(self.pipe.unet, "UNet")
        default = inspect.signature(type(pipe).__call__).parameters["guidance_scale"].default
        self.guidance_scale = default if config["guidance_scale"] is None else config["guidance_scale"]
        size = config["pipeline_size"] or pipe.unet.config.sample_size * pipe.vae_scale_factor
        self.size = {"height": size, "width": size}

    @classmethod
    def load(cls, name: str, config: dict[str, Any], device: torch.device, dtype: torch.dtype) -> "DiffusersVariations":
        """The backend on the pipeline saved at ``config["path"]`` (:func:`load_pipeline`)."""
        key = f"generators.{name}.path"
        pipe = load_pipeline(cls.pipeline_class, key, config["path"], cls.model, cls.layout, dtype)
        return cls(name, config, device, dtype, pipe)

    def call_kwargs(self, batch: int) -> dict[str, Any]:
        """The pipeline's backend-specific arguments for a call on ``batch`` source images (the way the paper's
        code calls it; the benchmarks' baseline)."""
        return {}

    def clip_input(self, images: np.ndarray) -> torch.Tensor:
        """CLIP's input for uint8 source images: centre-cropped and resized to ``input_size``, then the pipeline's
        feature extractor (resize to CLIP's size, CLIP's normalisation)."""
        pixels = resize_images(to_float_images(images), self.config["input_size"])
        return self.pipe.feature_extractor(images=pixels, do_rescale=False, return_tensors="pt").pixel_values

    @torch.inference_mode()
    def encode(self, images: np.ndarray) -> torch.Tensor:
        """CLIP's image embeddings ``image_encoder(...).image_embeds`` (B, D) on the device, which both pipelines
        condition on."""
        pixels = self.clip_input(images).to(device=self.device, dtype=self.pipe.image_encoder.dtype)
        return self.pipe.image_encoder(pixels).image_embeds

    @torch.inference_mode()
    def conditioning_features(self, images: np.ndarray) -> np.ndarray:
        """CLIP's image embeddings (:meth:`encode`) as float32."""
        return self.encode(images).float().cpu().numpy()

    @torch.inference_mode()
    def sample(self, conditions: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        """One pipeline call on a batch of image embeddings: float (B, 3, h, w) in [0, 1] on the device."""
        if len(conditions) != len(generators):
            raise ValueError(f"{len(conditions)} conditions but {len(generators)} generators")
        output = self.pipe(
            generator=list(generators),
            num_images_per_prompt=1,
            num_inference_steps=self.config["inference_steps"],
            guidance_scale=self.guidance_scale,
            eta=0.0,
            output_type="pt",
            **self.size,
            **self.embedding_kwargs(conditions),
        )
        return output.images

    @abc.abstractmethod
    def embedding_kwargs(self, conditions: torch.Tensor) -> dict[str, Any]:
        """The pipeline's arguments that carry a batch of image embeddings (and the backend's own)."""


class StableUnCLIPVariations(DiffusersVariations):
    """``StableUnCLIPImg2ImgPipeline``: the image embedding (noised by ``noise_level``) and the text ``prompt``,
    encoded once (with the guidance's negative prompt, the pipeline's default empty one)."""

    pipeline_class = StableUnCLIPImg2ImgPipeline
    model = "stabilityai/stable-diffusion-2-1-unclip-small"
    layout = (
        "model_index.json, feature_extractor/, image_encoder/, image_normalizer/, image_noising_scheduler/, "
        "tokenizer/, text_encoder/, unet/, scheduler/, vae/"
    )

    def __init__(
        self, name: str, config: dict[str, Any], device: torch.device, dtype: torch.dtype, pipe: DiffusionPipeline
    ) -> None:
        super().__init__(name, config, device, dtype, pipe)
        with torch.inference_mode():
            self.prompt_embeds = self.pipe.encode_prompt(config["prompt"], device, 1, self.guidance_scale > 1)

    def call_kwargs(self, batch: int) -> dict[str, Any]:
        return {"prompt": [self.config["prompt"]] * batch, "noise_level": self.config["noise_level"]}

    def embedding_kwargs(self, conditions: torch.Tensor) -> dict[str, Any]:
        positive, negative = self.prompt_embeds
        batch = len(conditions)
        return {
            "image_embeds": conditions,
            "prompt_embeds": positive.expand(batch, -1, -1),
            "negative_prompt_embeds": None if negative is None else negative.expand(batch, -1, -1),
            "noise_level": self.config["noise_level"],
        }


class StableDiffusionImageVariations(DiffusersVariations):
    """``StableDiffusionImageVariationPipeline``: the image embedding alone (with the checkpoint's safety checker,
    if it ships one), run as :class:`ImageVariationFromEmbeddings`."""

    pipeline_class = StableDiffusionImageVariationPipeline
    model = "lambdalabs/sd-image-variations-diffusers"
    layout = "model_index.json, feature_extractor/, image_encoder/, unet/, scheduler/, vae/ (safety_checker/ optional)"

    def __init__(
        self, name: str, config: dict[str, Any], device: torch.device, dtype: torch.dtype, pipe: DiffusionPipeline
    ) -> None:
        pipe = ImageVariationFromEmbeddings(
            **pipe.components, requires_safety_checker=pipe.config.requires_safety_checker
        )
        super().__init__(name, config, device, dtype, pipe)

    def embedding_kwargs(self, conditions: torch.Tensor) -> dict[str, Any]:
        return {"image": conditions}


def load_sd_unclip(
    name: str, config: dict[str, Any], device: torch.device, dtype: torch.dtype, weights_dir: Path | None
) -> VariantGenerator:
    """Backend ``sd_unclip`` from ``config["path"]`` (``weights_dir`` is unused: nothing is trained)."""
    return StableUnCLIPVariations.load(name, config, device, dtype)


def load_sd_image_variation(
    name: str, config: dict[str, Any], device: torch.device, dtype: torch.dtype, weights_dir: Path | None
) -> VariantGenerator:
    """Backend ``sd_image_variation`` from ``config["path"]`` (``weights_dir`` is unused: nothing is trained)."""
    return StableDiffusionImageVariations.load(name, config, device, dtype)
