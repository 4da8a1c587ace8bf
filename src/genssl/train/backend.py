"""Where and how a pretraining run computes: its device and process group, autocast precision and memory layout,
and the determinism settings of its device."""

import os
from dataclasses import dataclass
from typing import Any

import torch

from genssl import devices
from genssl.distributed import init_from_env


@dataclass(frozen=True)
class Backend:
    """The device of this process, its rank among ``world_size`` processes, the autocast dtype (None: fp32) and
    whether activations are channels-last."""

    device: torch.device
    rank: int
    world_size: int
    autocast_dtype: torch.dtype | None
    channels_last: bool

    @property
    def main_process(self) -> bool:
        """Rank 0, which writes checkpoints and outputs."""
        return self.rank == 0

    @property
    def precision(self) -> str:
        """The compute precision's name (``float32``, ``bfloat16``, ``float16``)."""
        return str(self.autocast_dtype or torch.float32).removeprefix("torch.")


def setup_backend(pretrain: dict[str, Any]) -> Backend:
    """The backend of the ``pretrain`` config section, joining the process group torchrun describes. The CPU runs
    deterministic algorithms (byte-identical reruns); CUDA uses cuDNN autotuning and TF32 unless
    ``cudnn_deterministic``."""
    device = devices.select_device(pretrain["device"], "pretrain.device", int(os.environ.get("LOCAL_RANK", "0")))
    rank, world_size, _ = init_from_env(device.type)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    else:
        torch.backends.cudnn.benchmark = not pretrain["cudnn_deterministic"]
        torch.backends.cudnn.deterministic = pretrain["cudnn_deterministic"]
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Backend(
        device=device,
        rank=rank,
        world_size=world_size,
        autocast_dtype=devices.autocast_dtype(pretrain["precision"], device),
        channels_last=pretrain["channels_last"],
    )
