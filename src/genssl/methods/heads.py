"""Projection and prediction heads (MLPs) shared by the methods, and the momentum (EMA) update."""

import copy

import torch
from torch import nn


def mlp(
    in_dim: int,
    hidden_dim: int,
    out_dim: int,
    hidden_layers: int = 1,
    batch_norm: bool = True,
    hidden_bias: bool = True,
    last_bn: bool = False,
) -> nn.Sequential:
    """``hidden_layers`` x (Linear -> [BatchNorm1d] -> ReLU), then Linear to ``out_dim``.

    ``last_bn`` appends a BatchNorm1d without affine parameters (SimSiam's projector)."""
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(hidden_layers):
        layers.append(nn.Linear(dim, hidden_dim, bias=hidden_bias))
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers.append(nn.ReLU(inplace=True))
        dim = hidden_dim
    layers.append(nn.Linear(dim, out_dim))
    if last_bn:
        layers.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*layers)


def momentum_copy(module: nn.Module) -> nn.Module:
    """A frozen copy of ``module`` (the target network of MoCo and BYOL), initialised to the same weights."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def momentum_update(online: nn.Module, target: nn.Module, tau: float) -> None:
    """EMA of parameters: ``xi <- tau * xi + (1 - tau) * theta`` for each target parameter ``xi`` and online
    parameter ``theta`` (buffers such as BN statistics are the target's own)."""
    online_params = list(online.parameters())
    target_params = list(target.parameters())
    torch._foreach_mul_(target_params, tau)
    torch._foreach_add_(target_params, online_params, alpha=1 - tau)
