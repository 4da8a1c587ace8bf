"""Barlow Twins (Zbontar et al. 2021): drive the cross-correlation of the two views' embeddings to the identity."""

from typing import Any

import torch
from torch import nn

from genssl.distributed import gather_with_grad
from genssl.methods.base import Method, RunContext
from genssl.methods.heads import mlp


def barlow_twins_loss(
    z1: torch.Tensor, z2: torch.Tensor, lambd: float, scale: float, eps: float = 1e-5
) -> torch.Tensor:
    """With each embedding standardised per feature over the global batch of ``N`` (``zn = (z - mean) /
    sqrt(var + eps)``, biased variance), ``C = zn1^T zn2 / N`` and
    ``L = scale * ( sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2 )``."""
    z1, z2 = gather_with_grad(z1.float()), gather_with_grad(z2.float())
    n = z1.shape[0]
    zn1 = (z1 - z1.mean(0)) / torch.sqrt(z1.var(0, unbiased=False) + eps)
    zn2 = (z2 - z2.mean(0)) / torch.sqrt(z2.var(0, unbiased=False) + eps)
    c = zn1.T @ zn2 / n
    diag = torch.diagonal(c)
    on_diag = (1 - diag).pow(2).sum()
    off_diag = c.pow(2).sum() - diag.pow(2).sum()
    return scale * (on_diag + lambd * off_diag)


class BarlowTwins(Method):
    """Projector: 2 x (Linear-BN-ReLU), Linear; loss :func:`barlow_twins_loss` with ``lambda`` and ``scale``."""

    def __init__(
        self, backbone: nn.Module, feature_dim: int, config: dict[str, Any], context: RunContext | None = None
    ) -> None:
        super().__init__(backbone, feature_dim, config, context)
        self.projector = mlp(feature_dim, config["proj_hidden_dim"], config["proj_output_dim"], hidden_layers=2)

    def forward(self, views: list[torch.Tensor], indices: torch.Tensor) -> torch.Tensor:
        z1, z2 = (self.projector(self.backbone(v)) for v in views)
        return barlow_twins_loss(z1, z2, self.config["lambda"], self.config["scale_loss"])
