"""The instance conditions of the workflow-trained generators: h = f(x) / ||f(x)||_2, the L2-normalised features of
a frozen conditioning encoder f (an ``encoder.safetensors`` of this study)."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genssl.generate.base import to_float_images
from genssl.models.encoder_file import encode
from genssl.progress import progress
from genssl.store import ImageStore

#: Images encoded per batch when the conditions of the train split are computed.
ENCODE_BATCH = 256


@torch.no_grad()
def condition_features(encoder: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """h = f(x) / ||f(x)||_2: L2-normalised float32 features (B, D) of float images (B, 3, H, W) in [0, 1]."""
    return F.normalize(encode(encoder, images).float(), dim=1)


@torch.no_grad()
def train_conditions(encoder: nn.Module, store: ImageStore, indices: np.ndarray, device: torch.device) -> torch.Tensor:
    """Normalised conditions (N, D) of the store's images at ``indices``, on the CPU."""
    chunks = []
    for start in progress(range(0, len(indices), ENCODE_BATCH), desc="encode", unit="batch"):
        images = to_float_images(store.get_batch(indices[start : start + ENCODE_BATCH])).to(device)
        chunks.append(condition_features(encoder, images).cpu())
    return torch.cat(chunks)
