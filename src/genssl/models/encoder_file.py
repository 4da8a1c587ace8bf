"""``encoder.safetensors``: a pretrained backbone's weights with the configuration that rebuilds it.

The file holds the backbone's state dict and one metadata key, :data:`ENCODER_METADATA`, whose value is the JSON
``{"backbone": <the pretrain.backbone config>, "feature_dim": D}`` (one key only: safetensors writes a metadata
map in no fixed order, which would break byte identity). :func:`load_encoder` rebuilds the backbone from that
configuration and loads the weights with strict key matching.
"""

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from genssl.atomic import atomic_file
from genssl.augment.pipeline import MEAN, STD
from genssl.errors import GensslError
from genssl.models.backbones import build_backbone

ENCODER_METADATA = "genssl.encoder"


def save_encoder(path: Path, backbone: nn.Module, backbone_config: dict[str, Any], feature_dim: int) -> None:
    """Write the backbone's state dict with its configuration as metadata (atomically)."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in backbone.state_dict().items()}
    info = {"backbone": backbone_config, "feature_dim": feature_dim}
    metadata = {ENCODER_METADATA: json.dumps(info, sort_keys=True)}
    with atomic_file(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_encoder(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any], int]:
    """``(backbone in eval mode, its config, feature dim D)`` from an encoder file written by :func:`save_encoder`.

    A missing or unreadable file, a file without the metadata, or weights whose keys or shapes do not match the
    recorded backbone are refused with a message naming the file and the keys.
    """
    path = Path(path)
    if not path.is_file():
        raise GensslError(f"{path}: no encoder file; pretrain it first (results/pretrain/.../encoder.safetensors)")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open is not a mapping)
    except (SafetensorError, OSError) as err:
        raise GensslError(f"{path}: not a readable safetensors file ({err})") from None
    if ENCODER_METADATA not in metadata:
        raise GensslError(f"{path}: no {ENCODER_METADATA!r} metadata; not an encoder written by genssl pretrain")
    info = json.loads(metadata[ENCODER_METADATA])
    backbone, dim = build_backbone(info["backbone"])
    expected = backbone.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    shapes = sorted(k for k in set(expected) & set(tensors) if expected[k].shape != tensors[k].shape)
    if missing or unexpected or shapes:
        parts = [
            f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes))
            if keys
        ]
        raise GensslError(f"{path}: weights do not match the backbone {info['backbone']} ({'; '.join(parts)})")
    backbone.load_state_dict(tensors, strict=True)
    backbone.eval()
    return backbone, info["backbone"], int(info.get("feature_dim", dim))


@torch.no_grad()
def encode(backbone: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Pooled features (B, D) of float images (B, 3, H, W) in [0, 1], normalised as the training views are
    (:data:`genssl.augment.pipeline.MEAN` / ``STD``)."""
    mean = torch.tensor(MEAN, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return backbone((images - mean) / std)
