"""SimCLR (Chen et al. 2020): a projector and the NT-Xent loss over the views of the global batch."""

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genssl.distributed import gather_with_grad, rank
from genssl.methods.base import Method, RunContext
from genssl.methods.heads import mlp


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent over ``2N`` views of ``N`` images (``N`` = the global batch, gathered from all processes).

    With ``u = z / ||z||`` and ``s(a, b) = u_a . u_b``, each local view ``a`` with positive ``p(a)`` (the other
    view of the same image) contributes
    ``l_a = -log( exp(s(a, p(a)) / T) / sum_{k != a} exp(s(a, k) / T) )``, ``k`` ranging over all ``2N`` views;
    the loss is the mean of ``l_a`` over the ``2B`` local views. Averaged over processes (as DDP does with
    gradients), this equals the loss of one process holding the whole batch.
    """
    u1, u2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    b = u1.shape[0]
    g1, g2 = gather_with_grad(u1), gather_with_grad(u2)
    n = g1.shape[0]
    local = torch.arange(b, device=u1.device) + rank() * b
    anchors = torch.cat([u1, u2])
    logits = anchors @ torch.cat([g1, g2]).T / temperature
    self_index = torch.cat([local, local + n])
    positive = torch.cat([local + n, local])
    rows = torch.arange(2 * b, device=u1.device)
    logits = logits.masked_fill(
        torch.zeros_like(logits, dtype=torch.bool).index_put_((rows, self_index), torch.tensor(True)), float("-inf")
    )
    return F.cross_entropy(logits, positive)


class SimCLR(Method):
    """Backbone -> projector (Linear-BN-ReLU-Linear) -> NT-Xent with temperature ``T``."""

    def __init__(
        self, backbone: nn.Module, feature_dim: int, config: dict[str, Any], context: RunContext | None = None
    ) -> None:
        super().__init__(backbone, feature_dim, config, context)
        self.temperature = config["temperature"]
        self.projector = mlp(feature_dim, config["proj_hidden_dim"], config["proj_output_dim"])

    def forward(self, views: list[torch.Tensor], indices: torch.Tensor) -> torch.Tensor:
        z1, z2 = (self.projector(self.backbone(v)) for v in views)
        return nt_xent_loss(z1, z2, self.temperature)
