"""Optimisers (SGD, LARS, AdamW) and the per-step learning-rate and target-momentum schedules for pretraining."""

from genssl.optim.build import OPTIMIZERS, build_optimizer, decay_groups, scaled_lr, split_decay_groups
from genssl.optim.lars import LARS
from genssl.optim.schedule import WarmupCosine, cosine_momentum, lr_factor

__all__ = [
    "LARS",
    "OPTIMIZERS",
    "WarmupCosine",
    "build_optimizer",
    "cosine_momentum",
    "decay_groups",
    "lr_factor",
    "scaled_lr",
    "split_decay_groups",
]
