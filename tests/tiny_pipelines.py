"""Tiny randomly initialised Stable Diffusion pipelines, saved as local diffusers directories.

Built the way diffusers' own fast tests build theirs: the real pipeline classes with real (tiny) components,
each seeded with ``torch.manual_seed``, so a directory holds the same weights on every run. The CLIP tokenizer
is built offline from a byte-level vocabulary (no merges) instead of being downloaded. Each pipeline generates
``SIZE`` px images (UNet ``sample_size`` 16 on a VAE that upsamples by 2) in well under a CPU second for 10 steps.

The schedulers are those of the released checkpoints, so a backend that replaces them is seen doing it: unCLIP
ships a DDIM scheduler (v-prediction, "leading" spacing), image variation a PNDM scheduler (epsilon prediction).
"""

from collections.abc import Callable
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    PNDMScheduler,
    StableDiffusionImageVariationPipeline,
    StableUnCLIPImg2ImgPipeline,
    UNet2DConditionModel,
)
from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
from tokenizers.pre_tokenizers import ByteLevel
from transformers import (
    CLIPImageProcessor,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

#: Side of the generated images in pixels.
SIZE = 32
#: Width of the CLIP embeddings (image embedding, text hidden states, UNet cross-attention).
EMBED = 32
#: CLIP input side of the tiny feature extractors and image encoders.
CLIP_SIZE = 32


def _tokenizer() -> CLIPTokenizer:
    """A CLIP BPE tokenizer over single bytes (each byte alone and as a word end ``</w>``), no merges."""
    chars = sorted(ByteLevel.alphabet())
    words = ["<|startoftext|>", "<|endoftext|>", *chars, *(f"{c}</w>" for c in chars)]
    return CLIPTokenizer(vocab={word: i for i, word in enumerate(words)}, merges=[], model_max_length=16)


def _text_encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    torch.manual_seed(0)
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=EMBED,
        projection_dim=EMBED,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=tokenizer.model_max_length,
    )
    return CLIPTextModel(config).eval()


def _image_encoder() -> CLIPVisionModelWithProjection:
    torch.manual_seed(0)
    config = CLIPVisionConfig(
        hidden_size=EMBED,
        projection_dim=EMBED,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        image_size=CLIP_SIZE,
        patch_size=4,
    )
    return CLIPVisionModelWithProjection(config).eval()


def _unet(class_embed_dim: int | None) -> UNet2DConditionModel:
    """A two-level UNet on 16 x 16 latents; ``class_embed_dim`` adds unCLIP's projected image-embedding input."""
    torch.manual_seed(0)
    extra = {}
    if class_embed_dim is not None:
        extra = {"class_embed_type": "projection", "projection_class_embeddings_input_dim": class_embed_dim}
    return UNet2DConditionModel(
        sample_size=SIZE // 2,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(16, 32),
        norm_num_groups=8,
        attention_head_dim=(2, 4),
        cross_attention_dim=EMBED,
        layers_per_block=1,
        use_linear_projection=True,
        **extra,
    ).eval()


def _vae() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        norm_num_groups=8,
        latent_channels=4,
        sample_size=SIZE,
    ).eval()


def _feature_extractor() -> CLIPImageProcessor:
    return CLIPImageProcessor(size={"shortest_edge": CLIP_SIZE}, crop_size={"height": CLIP_SIZE, "width": CLIP_SIZE})


def _sd_scheduler(cls: type[DDIMScheduler] | type[PNDMScheduler], **kwargs: object) -> DDIMScheduler | PNDMScheduler:
    """Stable Diffusion's training schedule (scaled linear betas 0.00085 to 0.012, 1000 steps)."""
    return cls(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        set_alpha_to_one=False,
        steps_offset=1,
        **kwargs,
    )


def tiny_sd_unclip(directory: Path) -> Path:
    """Save a tiny ``StableUnCLIPImg2ImgPipeline`` (v-prediction, like stable-diffusion-2-1-unclip-small) to
    ``directory``; return it."""
    tokenizer = _tokenizer()
    pipe = StableUnCLIPImg2ImgPipeline(
        feature_extractor=_feature_extractor(),
        image_encoder=_image_encoder(),
        image_normalizer=StableUnCLIPImageNormalizer(embedding_dim=EMBED).eval(),
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        tokenizer=tokenizer,
        text_encoder=_text_encoder(tokenizer),
        unet=_unet(class_embed_dim=2 * EMBED),
        scheduler=_sd_scheduler(DDIMScheduler, prediction_type="v_prediction", clip_sample=False),
        vae=_vae(),
    )
    pipe.save_pretrained(directory)
    return directory


def tiny_sd_image_variation(directory: Path) -> Path:
    """Save a tiny ``StableDiffusionImageVariationPipeline`` (epsilon prediction, no safety checker, like
    lambdalabs/sd-image-variations-diffusers without it) to ``directory``; return it."""
    pipe = StableDiffusionImageVariationPipeline(
        vae=_vae(),
        image_encoder=_image_encoder(),
        unet=_unet(class_embed_dim=None),
        scheduler=_sd_scheduler(PNDMScheduler, skip_prk_steps=True),
        safety_checker=None,
        feature_extractor=_feature_extractor(),
        requires_safety_checker=False,
    )
    pipe.save_pretrained(directory)
    return directory


#: Backend name (``generators.*.backend``) -> the builder of its tiny pipeline directory.
BUILDERS: dict[str, Callable[[Path], Path]] = {
    "sd_unclip": tiny_sd_unclip,
    "sd_image_variation": tiny_sd_image_variation,
}
