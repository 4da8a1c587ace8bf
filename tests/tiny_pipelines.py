"""Tiny randomly initialised Stable Diffusion pipelines, saved as local diffusers directories.

Built the way diffusers' own fast tests build theirs, and by the same builder as the real-size architectures
(:func:`genssl.generate.architectures.build_pipeline`): the real pipeline classes with real (tiny) components, each
seeded with ``torch.manual_seed(0)``, so a directory holds the same weights on every run; the CLIP tokenizer is the
byte-level one of that module. Each pipeline generates ``SIZE`` px images (UNet ``sample_size`` 16 on a VAE that
upsamples by 2) in well under a CPU second for 10 steps.

The schedulers are those of the released checkpoints, so a backend that replaces them is seen doing it: unCLIP
ships a DDIM scheduler (v-prediction, "leading" spacing), image variation a PNDM scheduler (epsilon prediction).
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from genssl.generate.architectures import build_pipeline

#: Side of the generated images in pixels.
SIZE = 32
#: Width of the CLIP embeddings (image embedding, text hidden states, UNet cross-attention).
EMBED = 32
#: CLIP input side of the tiny feature extractors and image encoders.
CLIP_SIZE = 32
#: Tokens per prompt.
TOKENS = 16
#: The byte-level tokenizer's vocabulary: BOS, EOS and 256 bytes, each alone and as a word end.
VOCABULARY = 2 + 2 * 256


def _unet(class_embed_dim: int | None) -> dict[str, Any]:
    """A two-level UNet on 16 x 16 latents; ``class_embed_dim`` adds unCLIP's projected image-embedding input."""
    extra = {}
    if class_embed_dim is not None:
        extra = {"class_embed_type": "projection", "projection_class_embeddings_input_dim": class_embed_dim}
    config = {
        "sample_size": SIZE // 2,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
        "block_out_channels": [16, 32],
        "norm_num_groups": 8,
        "attention_head_dim": [2, 4],
        "cross_attention_dim": EMBED,
        "layers_per_block": 1,
        "use_linear_projection": True,
        **extra,
    }
    return {"class": "UNet2DConditionModel", "config": config}


VAE = {
    "class": "AutoencoderKL",
    "config": {
        "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
        "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
        "block_out_channels": [8, 16],
        "norm_num_groups": 8,
        "latent_channels": 4,
        "sample_size": SIZE,
    },
}
IMAGE_ENCODER = {
    "class": "CLIPVisionModelWithProjection",
    "config": {
        "hidden_size": EMBED,
        "projection_dim": EMBED,
        "intermediate_size": 37,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "image_size": CLIP_SIZE,
        "patch_size": 4,
    },
}
FEATURE_EXTRACTOR = {
    "class": "CLIPImageProcessor",
    "config": {"size": {"shortest_edge": CLIP_SIZE}, "crop_size": {"height": CLIP_SIZE, "width": CLIP_SIZE}},
}
#: Stable Diffusion's training schedule (scaled linear betas 0.00085 to 0.012, 1000 steps).
SD_SCHEDULE = {
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "set_alpha_to_one": False,
    "steps_offset": 1,
}

SD_UNCLIP = {
    "pipeline": "StableUnCLIPImg2ImgPipeline",
    "components": {
        "feature_extractor": FEATURE_EXTRACTOR,
        "image_encoder": IMAGE_ENCODER,
        "image_normalizer": {"class": "StableUnCLIPImageNormalizer", "config": {"embedding_dim": EMBED}},
        "image_noising_scheduler": {"class": "DDPMScheduler", "config": {"beta_schedule": "squaredcos_cap_v2"}},
        "tokenizer": {"class": "CLIPTokenizer", "config": {"model_max_length": TOKENS}},
        "text_encoder": {
            "class": "CLIPTextModel",
            "config": {
                "vocab_size": VOCABULARY,
                "bos_token_id": 0,
                "eos_token_id": 1,
                "pad_token_id": 1,
                "hidden_size": EMBED,
                "projection_dim": EMBED,
                "intermediate_size": 37,
                "num_attention_heads": 4,
                "num_hidden_layers": 2,
                "max_position_embeddings": TOKENS,
            },
        },
        "unet": _unet(class_embed_dim=2 * EMBED),
        "scheduler": {
            "class": "DDIMScheduler",
            "config": {**SD_SCHEDULE, "prediction_type": "v_prediction", "clip_sample": False},
        },
        "vae": VAE,
    },
}
SD_IMAGE_VARIATION = {
    "pipeline": "StableDiffusionImageVariationPipeline",
    "pipeline_arguments": {"safety_checker": None, "requires_safety_checker": False},
    "components": {
        "vae": VAE,
        "image_encoder": IMAGE_ENCODER,
        "unet": _unet(class_embed_dim=None),
        "scheduler": {"class": "PNDMScheduler", "config": {**SD_SCHEDULE, "skip_prk_steps": True}},
        "feature_extractor": FEATURE_EXTRACTOR,
    },
}


def tiny_sd_unclip(directory: Path) -> Path:
    """Save a tiny ``StableUnCLIPImg2ImgPipeline`` (v-prediction, like stable-diffusion-2-1-unclip-small) to
    ``directory``; return it."""
    build_pipeline(SD_UNCLIP).save_pretrained(directory)
    return directory


def tiny_sd_image_variation(directory: Path) -> Path:
    """Save a tiny ``StableDiffusionImageVariationPipeline`` (epsilon prediction, no safety checker, like
    lambdalabs/sd-image-variations-diffusers without it) to ``directory``; return it."""
    build_pipeline(SD_IMAGE_VARIATION).save_pretrained(directory)
    return directory


#: Backend name (``generators.*.backend``) -> the builder of its tiny pipeline directory.
BUILDERS: dict[str, Callable[[Path], Path]] = {
    "sd_unclip": tiny_sd_unclip,
    "sd_image_variation": tiny_sd_image_variation,
}
