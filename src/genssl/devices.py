"""Where a stage runs: the device a config's ``device`` key asks for, the autocast dtype of its ``precision``, and
the peak memory it took."""

import resource

import torch

from genssl.errors import ConfigError


def select_device(requested: str, key: str, local_rank: int = 0) -> torch.device:
    """``auto``: CUDA (device ``local_rank``) when available, else the CPU; ``cuda`` without a CUDA device is an
    error naming the config ``key``."""
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError(f"{key}: 'cuda' requested but no CUDA device is available")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device``: None (fp32) on the CPU or for ``fp32``; on CUDA bf16 for
    ``bf16``, fp16 for ``fp16``, and for ``auto`` bf16 where supported, else fp16."""
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "bf16" or (precision == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def peak_memory(device: torch.device) -> dict[str, float | str]:
    """``{"peak_memory_mib", "peak_memory_kind"}``: on CUDA ``torch.cuda.max_memory_allocated`` (tensors on the
    device), on the CPU the process's peak resident set size (``ru_maxrss``: everything, the interpreter and
    libraries included)."""
    if device.type == "cuda":
        return {
            "peak_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20,
            "peak_memory_kind": "cuda_allocated",
        }
    return {"peak_memory_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "peak_memory_kind": "cpu_rss"}
