"""The contract between a self-supervised method and the shared trainer (:mod:`genssl.train`).

A method is an ``nn.Module`` holding the backbone, its heads and any momentum networks or queues (all of which
are saved in checkpoints). The trainer augments each batch into ``n_views`` views and calls
``loss = method(views, indices)`` (a scalar); it then runs backward and the optimiser step and calls
``method.after_step(step, total_steps)`` (momentum updates). ``indices`` are the dataset indices of the batch
(used by DIET-style methods). ``param_groups()`` lists the trainable parameters for the optimiser:
``(named_parameters, options)`` pairs, where options may hold ``fixed_lr`` (the group keeps its initial lr).
"""

from typing import Any

import torch
from torch import nn

#: Optimiser parameter groups: (named parameters, options) pairs.
ParamGroups = list[tuple[list[tuple[str, nn.Parameter]], dict[str, Any]]]


class Method(nn.Module):
    """Base class: a backbone plus heads, with the loss in ``forward``."""

    #: Number of augmented views per image the trainer must provide.
    n_views: int = 2
    #: Name of the standard augmentation preset the method uses by default (symmetric or asymmetric views).
    views_preset: str = "simclr"

    def __init__(self, backbone: nn.Module, feature_dim: int, config: dict[str, Any]) -> None:
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.config = config

    def forward(self, views: list[torch.Tensor], indices: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def param_groups(self) -> ParamGroups:
        """Trainable parameters: by default one group of every parameter that requires a gradient."""
        return [([(n, p) for n, p in self.named_parameters() if p.requires_grad], {})]

    def after_step(self, step: int, total_steps: int) -> None:
        """Called after every optimiser step (``step`` counts from 1); momentum methods update targets here."""
