"""The generator backends by name: each is a ``load(name, config, device, dtype, weights_dir)`` function that
returns a :class:`~genssl.generate.base.VariantGenerator`, imported only when used (diffusers is heavy); and the
trainers of the backends trained in the workflow, ``train(name, config, seed, data_dir, encoder_path, out_dir)``."""

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from genssl.generate.base import VariantGenerator, generation_device, generation_dtype

BACKENDS = {
    "icdiffusion": "genssl.generate.icdiffusion.backend:load_icdiffusion",
    "icgan": "genssl.generate.icgan.backend:load_icgan",
    "sd_unclip": "genssl.generate.stable_diffusion:load_sd_unclip",
    "sd_image_variation": "genssl.generate.stable_diffusion:load_sd_image_variation",
    "icgan_pretrained": "genssl.generate.icgan.pretrained:load_icgan_pretrained",
}
#: Backends trained in the workflow (rule train_generator -> results/generators/{dataset}/{generator}/) and their
#: trainers.
TRAINED = {
    "icdiffusion": "genssl.generate.icdiffusion.train:train_icdiffusion",
    "icgan": "genssl.generate.icgan.train:train_icgan",
}


def _resolve(target: str) -> Callable[..., Any]:
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def load_generator(name: str, config: dict[str, Any], weights_dir: Path | None = None) -> VariantGenerator:
    """The generator ``name`` with its resolved config entry, on the configured device and precision."""
    device = generation_device(config["device"])
    dtype = generation_dtype(config["precision"], device)
    return _resolve(BACKENDS[config["backend"]])(name, config, device, dtype, weights_dir)


def train_generator(
    name: str, config: dict[str, Any], seed: int, data_dir: Path, encoder_path: Path, out_dir: Path
) -> dict[str, Any]:
    """Train the generator ``name`` (its resolved entry, of a backend in :data:`TRAINED`) into ``out_dir``; return
    the record of its ``generator.json``."""
    return _resolve(TRAINED[config["backend"]])(name, config, seed, data_dir, encoder_path, out_dir)
