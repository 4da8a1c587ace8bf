"""DIET (Ibrahim et al. 2023, "Datum IndEx as Target"): every training image is its own class.

A linear head ``W_H`` (N x m, no bias) on the backbone output ``f(x)`` (m = the feature dimension) scores all N
training images; the loss is the cross-entropy of the datum index ``i`` with label smoothing ``alpha``::

    l(x_i) = - sum_n q_n log softmax(W_H f(x_i))_n,    q_n = (1 - alpha) [n = i] + alpha / N

(``alpha = 0.8`` as in public DIET code). One augmented view per image; AdamW. The whole head, its gradient and
both AdamW moments are in memory: 16 N m bytes in fp32 (S-DIET, :mod:`genssl.methods.sdiet`, keeps them on disk).
"""

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genssl.errors import ConfigError
from genssl.methods.base import Method, RunContext


def diet_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` (B x C) against class ``targets`` with label smoothing over the C classes."""
    return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)


class DIET(Method):
    """Backbone -> linear N-way head -> cross-entropy of the datum index (one view per image)."""

    n_views = 1

    def __init__(
        self, backbone: nn.Module, feature_dim: int, config: dict[str, Any], context: RunContext | None = None
    ) -> None:
        super().__init__(backbone, feature_dim, config, context)
        if context is None:
            raise ConfigError("methods.diet: DIET needs the run's number of training images (a RunContext)")
        self.label_smoothing = config["label_smoothing"]
        self.head = nn.Linear(feature_dim, context.num_samples, bias=False)

    def forward(self, views: list[torch.Tensor], indices: torch.Tensor) -> torch.Tensor:
        return diet_loss(self.head(self.backbone(views[0])), indices, self.label_smoothing)
