"""BYOL (Grill et al. 2020): online network with predictor regresses a momentum target network."""

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genssl.methods.base import RunContext
from genssl.methods.heads import mlp, momentum_copy
from genssl.methods.momentum import MomentumMethod


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``2 - 2 cos(p, z)`` averaged over the batch, i.e. the squared distance of the normalised vectors;
    ``z`` (the target projection) carries no gradient."""
    return 2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1).mean()


class BYOL(MomentumMethod):
    """Online: backbone -> projector -> predictor (both Linear-BN-ReLU-Linear); target: momentum copies of
    backbone and projector. Loss ``byol_loss(p1, z2') + byol_loss(p2, z1')``; the target follows the online
    network by the momentum update of :class:`~genssl.methods.momentum.MomentumMethod`."""

    def __init__(
        self, backbone: nn.Module, feature_dim: int, config: dict[str, Any], context: RunContext | None = None
    ) -> None:
        super().__init__(backbone, feature_dim, config, context)
        out = config["proj_output_dim"]
        self.projector = mlp(feature_dim, config["proj_hidden_dim"], out)
        self.predictor = mlp(out, config["pred_hidden_dim"], out)
        self.momentum_projector = momentum_copy(self.projector)

    def forward(self, views: list[torch.Tensor], indices: torch.Tensor) -> torch.Tensor:
        p1, p2 = (self.predictor(self.projector(self.backbone(v))) for v in views)
        with torch.no_grad():
            t1, t2 = (self.momentum_projector(self.momentum_backbone(v)) for v in views)
        return byol_loss(p1, t2) + byol_loss(p2, t1)

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [*super().momentum_pairs(), (self.projector, self.momentum_projector)]
