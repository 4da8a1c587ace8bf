"""MoCo v2+ (Chen et al. 2020, solo-learn's symmetric variant): momentum encoder, a queue of keys, InfoNCE."""

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genssl.distributed import gather_with_grad
from genssl.methods.base import RunContext
from genssl.methods.heads import momentum_copy
from genssl.methods.momentum import MomentumMethod


def moco_loss(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE with a queue: for normalised queries ``q`` (B, d), their keys ``k`` (B, d) and the queue of past
    keys (d, K), ``logits = [q_i . k_i, q_i . queue] / T`` and the loss is the cross-entropy with target 0,
    averaged over the batch. Keys carry no gradient."""
    positive = (q * k.detach()).sum(dim=1, keepdim=True)
    negative = q @ queue.detach()
    logits = torch.cat([positive, negative], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


class MoCoV2Plus(MomentumMethod):
    """Online backbone + projector (Linear-ReLU-Linear) for queries; their momentum copies for keys.

    Loss ``(L(q1, k2, queue_2) + L(q2, k1, queue_1)) / 2`` (symmetrised); after the loss, the keys of the
    global batch (gathered from all processes) replace the oldest entries of each view's queue. The key encoder
    follows the query encoder by the momentum update of :class:`~genssl.methods.momentum.MomentumMethod`.
    """

    def __init__(
        self, backbone: nn.Module, feature_dim: int, config: dict[str, Any], context: RunContext | None = None
    ) -> None:
        super().__init__(backbone, feature_dim, config, context)
        self.temperature = config["temperature"]
        self.projector = nn.Sequential(
            nn.Linear(feature_dim, config["proj_hidden_dim"]),
            nn.ReLU(inplace=True),
            nn.Linear(config["proj_hidden_dim"], config["proj_output_dim"]),
        )
        self.momentum_projector = momentum_copy(self.projector)
        queue = F.normalize(torch.randn(2, config["proj_output_dim"], config["queue_size"]), dim=1)
        self.register_buffer("queue", queue)
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def _enqueue(self, k1: torch.Tensor, k2: torch.Tensor) -> None:
        keys = torch.stack([gather_with_grad(k1), gather_with_grad(k2)])  # (2, N, d)
        n, size = keys.shape[1], self.queue.shape[2]
        if size % n:
            raise ValueError(f"queue_size {size} must be a multiple of the global batch size {n}")
        ptr = int(self.queue_ptr)
        self.queue[:, :, ptr : ptr + n] = keys.permute(0, 2, 1)
        self.queue_ptr[0] = (ptr + n) % size

    def forward(self, views: list[torch.Tensor], indices: torch.Tensor) -> torch.Tensor:
        q1, q2 = (F.normalize(self.projector(self.backbone(v)), dim=1) for v in views)
        with torch.no_grad():
            k1, k2 = (F.normalize(self.momentum_projector(self.momentum_backbone(v)), dim=1) for v in views)
        queue = self.queue.clone()
        loss = (moco_loss(q1, k2, queue[1], self.temperature) + moco_loss(q2, k1, queue[0], self.temperature)) / 2
        self._enqueue(k1.float(), k2.float())
        return loss

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [*super().momentum_pairs(), (self.projector, self.momentum_projector)]
