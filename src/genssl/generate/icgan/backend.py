"""Sampling from a trained ``icgan`` generator (the directory written by
:func:`~genssl.generate.icgan.train.train_icgan`): G_ema conditioned on the stored encoder's normalised features of
the source, h = f(x) / ||f(x)||, encoded at the source's own size as the training images were
(:mod:`~genssl.generate.icgan.sampling` says how the noise is drawn)."""

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from genssl.generate.base import VariantGenerator
from genssl.generate.icgan.biggan import Generator
from genssl.generate.icgan.sampling import ICGANVariants
from genssl.generate.icgan.standardise import CONDITION_FILE, Standardiser
from genssl.generate.icgan.train import GENERATOR_FILE
from genssl.generate.trained import ENCODER_FILE, RECORD_FILE, check_trained_directory
from genssl.models.encoder_file import encode, load_encoder

#: The files of a trained generator's directory that sampling reads.
REQUIRED_FILES = (GENERATOR_FILE, CONDITION_FILE, ENCODER_FILE, RECORD_FILE)
#: The config keys that define the trained model (the others only affect sampling).
TRAINED_KEYS = ("conditioning", "neighbours", "architecture", "train")


def load_icgan(
    name: str, config: dict[str, Any], device: torch.device, dtype: torch.dtype, weights_dir: Path | None
) -> VariantGenerator:
    """The trained generator ``name`` in ``weights_dir`` on ``device`` with weights in ``dtype``, sampling with
    ``config["truncation"]``."""
    record = check_trained_directory(name, "icgan", config, weights_dir, REQUIRED_FILES, TRAINED_KEYS)
    weights_dir = Path(weights_dir)
    generator = Generator.from_config(config["architecture"], record["image_size"], record["condition_dim"])
    generator.load_state_dict(load_file(str(weights_dir / GENERATOR_FILE)), strict=True)
    encoder, _, _ = load_encoder(weights_dir / ENCODER_FILE)
    encoder.to(device).eval()
    standardiser = Standardiser.load(weights_dir / CONDITION_FILE)
    return ICGANVariants(name, config, device, dtype, generator, lambda x: encode(encoder, x).float(), standardiser)
