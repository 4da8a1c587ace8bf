"""The published architectures of the paper's generators, as JSON package data, and their builders with random
weights (for tests on the meta device and for benchmarks at the real size; nothing is downloaded).

Each JSON file (:data:`FILES`) holds one model's architecture, every component with its ``class``, its ``config``
(the keyword arguments of that class or of its config class) and its ``source``: where the numbers come from, and
which could not be confirmed offline (the closest documented default is used then):

- ``sd_unclip_small.json``: stabilityai/stable-diffusion-2-1-unclip-small (``StableUnCLIPImg2ImgPipeline``);
- ``sd_image_variation.json``: lambdalabs/sd-image-variations-diffusers (``StableDiffusionImageVariationPipeline``,
  without its safety checker, which filters outputs and is not part of generating them);
- ``icgan_256.json``: the IC-GAN 256 px release and its SwAV ResNet-50.

A CLIP tokenizer needs CLIP's BPE vocabulary files, which cannot be had offline: :func:`byte_level_tokenizer`
stands in with a byte-level vocabulary without merges, so a prompt becomes other token ids than CLIP's, padded to
the same 77 tokens (the same cost; the paper's empty prompt is BOS, EOS and padding either way).
"""

import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

import diffusers
import torch
import transformers
from diffusers import DiffusionPipeline
from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
from tokenizers.pre_tokenizers import ByteLevel
from torch import nn

#: Backend name (``generators.*.backend``) -> its architecture file.
FILES = {
    "sd_unclip": "sd_unclip_small.json",
    "sd_image_variation": "sd_image_variation.json",
    "icgan_pretrained": "icgan_256.json",
}
#: transformers models built from a config object: model class -> config class.
TRANSFORMERS_MODELS = {
    "CLIPVisionModelWithProjection": "CLIPVisionConfig",
    "CLIPTextModel": "CLIPTextConfig",
}
#: diffusers models, built from their config's keyword arguments.
DIFFUSERS_MODELS = {
    "UNet2DConditionModel": diffusers.UNet2DConditionModel,
    "AutoencoderKL": diffusers.AutoencoderKL,
    "StableUnCLIPImageNormalizer": StableUnCLIPImageNormalizer,
}
SCHEDULERS = {"DDIMScheduler", "DDPMScheduler", "PNDMScheduler"}


def architecture(backend: str) -> dict[str, Any]:
    """The architecture of ``backend``'s published model (one of :data:`FILES`)."""
    if backend not in FILES:
        raise KeyError(f"no published architecture for backend {backend!r}; one of {sorted(FILES)}")
    return json.loads(resources.files(__package__).joinpath(FILES[backend]).read_text())


def byte_level_tokenizer(model_max_length: int) -> transformers.CLIPTokenizer:
    """A CLIP BPE tokenizer over single bytes (each byte alone and as a word end ``</w>``), no merges, padding to
    ``model_max_length`` tokens."""
    chars = sorted(ByteLevel.alphabet())
    words = ["<|startoftext|>", "<|endoftext|>", *chars, *(f"{c}</w>" for c in chars)]
    vocab = {word: i for i, word in enumerate(words)}
    return transformers.CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def build_component(spec: Mapping[str, Any], seed: int) -> Any:
    """One pipeline component from its ``class`` and ``config``; a network gets random weights drawn after
    ``torch.manual_seed(seed)``, in eval mode, on the current default device (``with torch.device(...)``)."""
    name, config = spec["class"], dict(spec["config"])
    if name in TRANSFORMERS_MODELS:
        torch.manual_seed(seed)
        config_class = getattr(transformers, TRANSFORMERS_MODELS[name])
        module: nn.Module = getattr(transformers, name)(config_class(**config))
        return module.eval()
    if name in DIFFUSERS_MODELS:
        torch.manual_seed(seed)
        return DIFFUSERS_MODELS[name](**config).eval()
    if name in SCHEDULERS:
        return getattr(diffusers, name).from_config(config)
    if name == "CLIPImageProcessor":
        return transformers.CLIPImageProcessor(**config)
    if name == "CLIPTokenizer":
        return byte_level_tokenizer(**config)
    raise ValueError(f"no builder for component class {name!r}")


def build_pipeline(
    spec: Mapping[str, Any], device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> DiffusionPipeline:
    """The diffusers pipeline of an architecture (:func:`architecture`, or a dict of the same form) with random
    weights, its networks created directly on ``device`` (``meta``: shapes only, no memory) in ``dtype``."""
    with torch.device(device):
        components = {name: build_component(part, seed) for name, part in spec["components"].items()}
    for part in components.values():
        if isinstance(part, nn.Module) and dtype != torch.float32:  # built in float32
            part.to(dtype)
    return getattr(diffusers, spec["pipeline"])(**components, **spec.get("pipeline_arguments", {}))


def parameter_counts(pipeline: DiffusionPipeline) -> dict[str, int]:
    """Parameters per network component of a pipeline."""
    return {
        name: sum(p.numel() for p in part.parameters())
        for name, part in pipeline.components.items()
        if isinstance(part, nn.Module)
    }
