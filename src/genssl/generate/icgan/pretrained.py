"""``icgan_pretrained``: the public IC-GAN ImageNet generator (BigGAN architecture, not class-conditional; the
paper's 256 px ``icgan_biggan_imagenet_res256``) with its SwAV ResNet-50 feature extractor, from local files.

``generator_path`` is the release's G_ema state dict (``G_ema*.pth``, BigGAN-PyTorch parameter names), loaded into
:class:`~genssl.generate.icgan.biggan.Generator` with strict keys and shapes (``architecture`` and ``resolution``
must be the release's: their defaults are the 256 px model's, ch 96, dim_z 120, a 512-dim feature embedding,
attention at 64 px and the unused 1000-class embedding); ``encoder_path`` is ``swav_800ep_pretrain.pth.tar``
(:mod:`~genssl.generate.icgan.swav`). Nothing is downloaded: a missing file or a key that does not match is refused
naming the config key, the path, the keys and the layout expected.

Sampling follows the paper's public code: h = the L2-normalised SwAV features of the source, z truncated at
``truncation`` 0.7 (every |z_k| <= 1.4), G in eval mode (the release's ``G_eval_mode``: stored batch-norm
statistics), output mapped from [-1, 1] to [0, 1] (:mod:`~genssl.generate.icgan.sampling`).
"""

import os
from pathlib import Path
from typing import Any

import torch

from genssl.generate.base import VariantGenerator
from genssl.generate.icgan.biggan import Generator
from genssl.generate.icgan.checkpoints import check_keys, read_state_dict
from genssl.generate.icgan.sampling import ICGANVariants
from genssl.generate.icgan.swav import load_swav, swav_features

#: The SwAV ResNet-50's feature dimension, the generator's instance-feature input.
FEATURE_DIM = 2048


def generator_layout(architecture: dict[str, Any], resolution: int) -> str:
    """What ``generator_path`` must hold, for error messages."""
    settings = ", ".join(f"{key} {value}" for key, value in sorted(architecture.items()))
    return (
        f"the IC-GAN release's G_ema state dict (G_ema*.pth: BigGAN-PyTorch names shared_feat.*, linear.*, "
        f"blocks.L.0.{{conv1,conv2,conv_sc,bn1,bn2}}.*, blocks.L.1.* where there is attention, output_layer.*) of "
        f"a {resolution} px generator with architecture {settings}"
    )


def load_release_generator(
    path: str | os.PathLike[str], key: str, architecture: dict[str, Any], resolution: int
) -> Generator:
    """The generator of ``architecture`` at ``resolution`` with the state dict at ``path`` (config key ``key``),
    keys and shapes matched strictly."""
    expected = generator_layout(architecture, resolution)
    state = read_state_dict(path, key, expected)
    generator = Generator.from_config(architecture, resolution, FEATURE_DIM)
    check_keys(state, generator.state_dict(), path, key, expected)
    generator.load_state_dict(state, strict=True)
    return generator


def load_icgan_pretrained(
    name: str, config: dict[str, Any], device: torch.device, dtype: torch.dtype, weights_dir: Path | None
) -> VariantGenerator:
    """Backend ``icgan_pretrained`` from ``config["generator_path"]`` and ``config["encoder_path"]`` (``weights_dir``
    is unused: nothing is trained). The generator's weights are cast to ``dtype``; the encoder runs in fp32."""
    resolution, input_size = config["resolution"], config["input_size"]
    generator = load_release_generator(
        config["generator_path"], f"generators.{name}.generator_path", config["architecture"], resolution
    )
    swav = load_swav(config["encoder_path"], f"generators.{name}.encoder_path").to(device)
    return ICGANVariants(
        name, config, device, dtype, generator, lambda x: swav_features(swav, x, resolution, input_size)
    )
