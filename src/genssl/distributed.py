"""torch.distributed helpers: process-group setup from torchrun's environment, differentiable gathers, SyncBN.

Launch several processes with ``torchrun --nproc_per_node=N -m genssl pretrain ...`` (and ``--nnodes`` for
several nodes); :func:`init_from_env` reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` and joins the group (NCCL on
CUDA, gloo on CPU). Without those variables everything runs in one process and the helpers are identities.
"""

import datetime
import os

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def init_from_env(device_type: str) -> tuple[int, int, int]:
    """Join the process group torchrun describes; return (rank, world size, local rank). (0, 1, 0) when alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, 0
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not is_distributed():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    return dist.get_rank(), dist.get_world_size(), local_rank


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` of every process along dim 0 (rank order), keeping gradients to every process's input.

    The backward pass sums the gradients that all processes send to each piece, so a loss computed on the
    gathered tensor and averaged by DDP has the gradient of the same loss on one process holding the whole batch.
    """
    if not is_distributed() or world_size() == 1:
        return x
    return torch.cat(dist_fn.all_gather(x.contiguous()), dim=0)


def all_reduce_sum_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over processes; differentiable (the gradient is summed back to every process)."""
    if not is_distributed() or world_size() == 1:
        return x
    return dist_fn.all_reduce(x, op=dist.ReduceOp.SUM)


class CPUSyncBatchNorm(_BatchNorm):
    """Batch normalisation with statistics over the global batch of all processes, for CPU (gloo) runs.

    torch's ``SyncBatchNorm`` only runs on accelerators. Here, in training mode with several processes, the
    batch mean is ``mu = sum_p sum_i x_pi / N`` and the (biased) variance ``var = sum_p sum_i (x_pi - mu)^2 / N``
    over all ``N`` examples (and spatial positions) of all processes, computed in two differentiable
    all-reduces; ``y = (x - mu) / sqrt(var + eps) * weight + bias``. Running statistics use the unbiased
    variance ``var * N / (N - 1)``, as ``BatchNorm`` does. Alone, or in eval mode, it is ``BatchNorm``.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and world_size() > 1):
            return super().forward(x)
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = all_reduce_sum_with_grad(torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device))
        mean = all_reduce_sum_with_grad(x.sum(dims)) / count
        centred = x - mean.reshape(shape)
        var = all_reduce_sum_with_grad((centred * centred).sum(dims)) / count
        y = centred * torch.rsqrt(var.reshape(shape) + self.eps)
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                momentum = self.momentum if self.momentum is not None else 0.1
                unbiased = var.detach() * count / (count - 1).clamp(min=1)
                self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
                self.running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)
                self.num_batches_tracked.add_(1)
        return y


def convert_sync_batchnorm(module: nn.Module, device_type: str) -> nn.Module:
    """Replace every BatchNorm layer by its synchronised version: torch's on CUDA, :class:`CPUSyncBatchNorm` on CPU."""
    if device_type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    converted = module
    if isinstance(module, _BatchNorm) and not isinstance(module, CPUSyncBatchNorm):
        converted = CPUSyncBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        if module.affine:
            with torch.no_grad():
                converted.weight.copy_(module.weight)
                converted.bias.copy_(module.bias)
        if module.track_running_stats:
            converted.running_mean.copy_(module.running_mean)
            converted.running_var.copy_(module.running_var)
            converted.num_batches_tracked.copy_(module.num_batches_tracked)
    for name, child in module.named_children():
        converted.add_module(name, convert_sync_batchnorm(child, device_type))
    return converted
