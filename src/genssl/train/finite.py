"""The first non-finite loss of a run, watched on the device: no host synchronisation per step.

Each step adds its loss to :meth:`NonFiniteWatch.observe` (device ops only: a masked fill records the first step
whose loss is NaN or infinite, and that loss); :meth:`NonFiniteWatch.first` reads it, one synchronisation, which the
trainer does every ``pretrain.finite_check_every`` steps and at the end of every epoch, before a checkpoint is
written, so a checkpoint never holds parameters that saw a non-finite loss. With several processes the first bad
step of any process counts.
"""

import torch

from genssl.distributed import is_distributed

#: Stands for "no bad step" in the reduction over processes (larger than any step).
_NONE = 2**62


class NonFiniteWatch:
    """The first global step (from 0) whose loss was not finite, and that loss, kept on ``device``."""

    def __init__(self, device: torch.device) -> None:
        self.step = torch.full((), _NONE, dtype=torch.long, device=device)
        self.loss = torch.zeros((), dtype=torch.float32, device=device)

    def observe(self, loss: torch.Tensor, step: int) -> None:
        """Record ``step`` if its ``loss`` is not finite and no earlier step was (device ops only)."""
        bad = ~torch.isfinite(loss.detach().float()) & (self.step == _NONE)
        self.step.masked_fill_(bad, step)
        self.loss = torch.where(bad, loss.detach().float(), self.loss)

    def first(self) -> tuple[int, float] | None:
        """``(step, loss)`` of the first non-finite loss of any process, or None (synchronises)."""
        step = self.step.clone()
        if is_distributed():
            torch.distributed.all_reduce(step, op=torch.distributed.ReduceOp.MIN)
        value = int(step.item())
        return None if value == _NONE else (value, float(self.loss.item()))
