"""Backbones: torchvision ResNet-18/50 and a small width-configurable ResNet for the CPU default.

A backbone maps images (B, 3, H, W) to features (B, D): the globally average-pooled output of its last stage
(torchvision's ``fc`` is replaced by the identity). ``small_stem`` replaces the ImageNet stem (7x7 stride-2
conv + 3x3 stride-2 max-pool) by a 3x3 stride-1 conv without max-pool, as solo-learn does for CIFAR-size
images, so 32 px inputs are not downsampled 4x before the first stage. Weights start random: pretrained
weights, when wanted, come from a local file (nothing is downloaded).
"""

import importlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from genssl.errors import ConfigError


def _small_stem(model: nn.Module, width: int) -> None:
    model.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()


def _torchvision_resnet(name: str) -> Callable[..., tuple[nn.Module, int]]:
    """A builder of torchvision's ``name`` (imported when used: torchvision takes seconds to import, which every
    short evaluation job would pay)."""

    def build(small_stem: bool = False, zero_init_residual: bool = False, **_: Any) -> tuple[nn.Module, int]:
        factory = getattr(importlib.import_module("torchvision.models"), name)
        model = factory(weights=None, zero_init_residual=zero_init_residual)
        if small_stem:
            _small_stem(model, model.conv1.out_channels)
        dim = model.fc.in_features
        model.fc = nn.Identity()
        return model, dim

    return build


class BasicBlock(nn.Module):
    """ResNet's basic block, as torchvision's (the same parameter names): ``relu(bn2(conv2(relu(bn1(conv1(x))))) +
    shortcut(x))`` with 3x3 convolutions, the first of stride ``stride``, and ``downsample`` as the shortcut when
    given (else the identity)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + shortcut)


class SmallResNet(nn.Module):
    """A ResNet of BasicBlocks with stage widths ``width * (1, 2, 4, 8)`` and ``blocks`` blocks per stage.

    Stem: 3x3 conv (stride 1 with ``small_stem``, else 7x7 stride 2 + max-pool), BN, ReLU; stages 2-4 halve the
    resolution; output: global average pool, dimension ``8 * width``. Initialisation as torchvision's ResNet
    (Kaiming-normal convolutions, BN weight 1 and bias 0).
    """

    def __init__(
        self,
        width: int = 16,
        blocks: tuple[int, ...] = (1, 1, 1, 1),
        small_stem: bool = True,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if small_stem:
            self.stem = nn.Sequential(
                nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(3, width, 7, 2, 3, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, 1),
            )
        layers: list[nn.Module] = []
        in_ch = width
        for stage, n in enumerate(blocks):
            out_ch = width * 2**stage
            for b in range(n):
                stride = 2 if stage > 0 and b == 0 else 1
                down = None
                if stride != 1 or in_ch != out_ch:
                    down = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))
                layers.append(BasicBlock(in_ch, out_ch, stride, down))
                in_ch = out_ch
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dim = in_ch
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.layers(self.stem(x))), 1)


def _small_resnet(
    width: int = 16,
    blocks: list[int] | tuple[int, ...] = (1, 1, 1, 1),
    small_stem: bool = True,
    zero_init_residual: bool = False,
    **_: Any,
) -> tuple[nn.Module, int]:
    model = SmallResNet(width, tuple(blocks), small_stem, zero_init_residual)
    return model, model.dim


BACKBONES: dict[str, Callable[..., tuple[nn.Module, int]]] = {
    "resnet18": _torchvision_resnet("resnet18"),
    "resnet50": _torchvision_resnet("resnet50"),
    "small_resnet": _small_resnet,
}


def build_backbone(config: dict[str, Any]) -> tuple[nn.Module, int]:
    """The backbone named by ``config["name"]`` and its feature dimension; unknown names list the valid ones."""
    name = config.get("name")
    if name not in BACKBONES:
        raise ConfigError(f"pretrain.backbone.name: unknown backbone {name!r}; known: {', '.join(sorted(BACKBONES))}")
    options = {k: v for k, v in config.items() if k != "name"}
    return BACKBONES[name](**options)
