"""SimSiam (Chen & He 2021): siamese network with a predictor and a stop-gradient, no negatives, no momentum."""

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genssl.methods.base import Method, ParamGroups, RunContext
from genssl.methods.heads import mlp


def simsiam_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``D(p, z) = -cos(p, stopgrad(z))`` averaged over the batch."""
    return -F.cosine_similarity(p, z.detach(), dim=-1).mean()


class SimSiam(Method):
    """Projector: 2 x (Linear without bias - BN - ReLU), Linear, BN without affine; predictor: Linear without
    bias - BN - ReLU - Linear. Loss ``D(p1, z2) / 2 + D(p2, z1) / 2``. The predictor keeps a fixed lr (no
    schedule), as in the paper."""

    def __init__(
        self, backbone: nn.Module, feature_dim: int, config: dict[str, Any], context: RunContext | None = None
    ) -> None:
        super().__init__(backbone, feature_dim, config, context)
        out = config["proj_output_dim"]
        self.projector = mlp(
            feature_dim, config["proj_hidden_dim"], out, hidden_layers=2, hidden_bias=False, last_bn=True
        )
        self.predictor = mlp(out, config["pred_hidden_dim"], out, hidden_bias=False)

    def param_groups(self) -> ParamGroups:
        named = list(self.named_parameters())
        main = [(n, p) for n, p in named if not n.startswith("predictor.")]
        predictor = [(n, p) for n, p in named if n.startswith("predictor.")]
        return [(main, {}), (predictor, {"fixed_lr": True})]

    def forward(self, views: list[torch.Tensor], indices: torch.Tensor) -> torch.Tensor:
        z1, z2 = (self.projector(self.backbone(v)) for v in views)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        return simsiam_loss(p1, z2) / 2 + simsiam_loss(p2, z1) / 2
