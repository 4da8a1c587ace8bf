"""The instance-feature extractor of the IC-GAN release: the SwAV ResNet-50 of facebookresearch/swav
(``swav_800ep_pretrain.pth.tar``), h = f(x) / ||f(x)||_2 with f the 2048-dim average-pooled trunk output.

The file is a flat state dict of torchvision ResNet-50 names prefixed ``module.`` (saved from DistributedDataParallel),
with SwAV's projection head and prototypes (``module.projection_head.*``, ``module.prototypes.*``) and no ``fc``:
SwAV's own ``hubconf.py`` and IC-GAN's ``load_pretrained_feature_extractor`` both strip the prefix and load the trunk
into a torchvision ResNet-50 without strict key checking. Here the head is dropped and every other key must match the
trunk exactly (names and shapes), except the batch norms' ``num_batches_tracked`` counters, which do not enter an
eval-mode forward pass and are filled with 0 where the file lacks them.

Preprocessing as IC-GAN prepared the features its generator was trained on (``data_utils/make_hdf5.py``): the
source centre-cropped to a square and resized to the generator's resolution, normalised with the ImageNet mean and
standard deviation, then resized bicubically to ``input_size`` (224).
"""

import os

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet50

from genssl.errors import GensslError
from genssl.generate.base import resize_images
from genssl.generate.icgan.checkpoints import LISTED, check_keys, read_state_dict

#: The name of the released file.
SWAV_FILE = "swav_800ep_pretrain.pth.tar"
PREFIX = "module."
#: SwAV's training heads in the file, not part of the feature extractor.
HEADS = ("projection_head.", "prototypes.")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LAYOUT = (
    f"SwAV's ResNet-50 ({SWAV_FILE} of facebookresearch/swav): a torch.save'd dict of torchvision ResNet-50 names "
    f"prefixed {PREFIX!r} (module.conv1.weight, module.bn1.weight, ..., module.layer4.2.bn3.running_var; "
    "module.projection_head.* and module.prototypes.* are ignored)"
)


def swav_trunk() -> nn.Module:
    """A torchvision ResNet-50 whose ``fc`` is the identity: (B, 3, H, W) -> the 2048 pooled features."""
    model = resnet50(weights=None)
    model.fc = nn.Identity()
    return model


def load_swav(path: str | os.PathLike[str], key: str) -> nn.Module:
    """The SwAV trunk from the released file at ``path`` (config key ``key``), in eval mode; a missing file, a key
    without the ``module.`` prefix, or trunk keys that are missing, unexpected or of another shape are refused
    with a message naming them and the expected layout."""
    state = read_state_dict(path, key, LAYOUT)
    unprefixed = sorted(k for k in state if not k.startswith(PREFIX))
    if unprefixed:
        listed = ", ".join(unprefixed[:LISTED]) + (" ..." if len(unprefixed) > LISTED else "")
        raise GensslError(f"{key}: {path} has keys without the {PREFIX!r} prefix ({listed}); expected {LAYOUT}")
    trunk = {k[len(PREFIX) :]: v for k, v in state.items() if not k[len(PREFIX) :].startswith(HEADS)}
    model = swav_trunk()
    wanted = model.state_dict()
    counters = {k: v for k, v in wanted.items() if k.endswith("num_batches_tracked") and k not in trunk}
    check_keys({**counters, **trunk}, wanted, path, key, LAYOUT)
    model.load_state_dict({**counters, **trunk}, strict=True)
    return model.eval()


def swav_features(model: nn.Module, images: torch.Tensor, resolution: int, input_size: int) -> torch.Tensor:
    """f(x): SwAV's pooled float32 features (B, 2048) of float images (B, 3, H, W) in [0, 1], prepared as the
    module docstring says (IC-GAN conditions on h = f(x) / ||f(x)||_2)."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    x = (resize_images(images.float(), resolution) - mean) / std
    x = F.interpolate(x, size=(input_size, input_size), mode="bicubic", align_corners=False)
    return model(x).float()
