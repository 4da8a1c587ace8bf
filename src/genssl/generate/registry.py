"""The generator backends by name: each is a ``load(name, config, device, dtype, weights_dir)`` function that
returns a :class:`~genssl.generate.base.VariantGenerator`, imported only when used (diffusers is heavy)."""

import importlib
from pathlib import Path
from typing import Any

from genssl.generate.base import VariantGenerator, generation_device, generation_dtype

BACKENDS = {
    "icdiffusion": "genssl.generate.icdiffusion.backend:load_icdiffusion",
    "sd_unclip": "genssl.generate.stable_diffusion:load_sd_unclip",
    "sd_image_variation": "genssl.generate.stable_diffusion:load_sd_image_variation",
}
#: Backends trained in the workflow (rule train_generator -> results/generators/{dataset}/{generator}/).
TRAINED = ("icdiffusion",)


def load_generator(name: str, config: dict[str, Any], weights_dir: Path | None = None) -> VariantGenerator:
    """The generator ``name`` with its resolved config entry, on the configured device and precision."""
    module, function = BACKENDS[config["backend"]].split(":")
    device = generation_device(config["device"])
    dtype = generation_dtype(config["precision"], device)
    return getattr(importlib.import_module(module), function)(name, config, device, dtype, weights_dir)
