"""Randomly initialised IC-GAN releases written in the official layout: the generator's state dict as
BigGAN-PyTorch saves ``G_ema*.pth``, and a SwAV ResNet-50 as ``swav_800ep_pretrain.pth.tar`` holds it (DDP's
``module.`` prefix, SwAV's projection head and prototypes, no ``fc``). Every buffer gets non-default values, so a
loader that dropped one would be seen."""

from pathlib import Path
from typing import Any

import torch
from torchvision.models import resnet50

from genssl.generate.icgan.biggan import Generator, orthogonal_init

GENERATOR_FILE = "G_ema_best0.pth"
ENCODER_FILE = "swav_800ep_pretrain.pth.tar"


def randomise_statistics(module: torch.nn.Module) -> None:
    """Random values in every floating-point buffer (positive ones for variances)."""
    for name, buffer in module.named_buffers():
        if buffer.is_floating_point():
            buffer.copy_(torch.rand_like(buffer) + 0.5 if "var" in name else torch.randn_like(buffer))


def swav_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A torchvision ResNet-50's state dict in the SwAV release's layout."""
    state = {f"module.{k}": v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    state["module.projection_head.0.weight"] = torch.randn(16, 2048)
    state["module.projection_head.0.bias"] = torch.randn(16)
    state["module.prototypes.weight"] = torch.randn(8, 16)
    return state


def write_release(root: Path, architecture: dict[str, Any], resolution: int, seed: int = 0) -> tuple[Path, Path]:
    """Write a random generator of ``architecture`` at ``resolution`` and a random SwAV ResNet-50 into ``root``;
    return their paths (``generator_path``, ``encoder_path``)."""
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    generator = Generator.from_config(architecture, resolution, 2048)
    orthogonal_init(generator)
    randomise_statistics(generator)
    torch.save(generator.state_dict(), root / GENERATOR_FILE)
    swav = resnet50(weights=None)
    randomise_statistics(swav)
    torch.save(swav_state(swav), root / ENCODER_FILE)
    return root / GENERATOR_FILE, root / ENCODER_FILE
