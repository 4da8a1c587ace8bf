"""Per-step learning-rate schedule (linear warm-up then half-cosine) and BYOL's cosine target momentum.

With ``W`` warm-up steps, ``T`` total steps, start factor ``s`` and final factor ``m``, the learning rate of a
param group at optimiser step ``t`` (counted from 0) is ``initial_lr * f(t)`` where::

    t < W:   f = s + (1 - s) * t / W
    t >= W:  f = m + (1 - m) * 0.5 * (1 + cos(pi * min(1, (t - W) / max(1, T - W))))

so ``f(0) = s``, ``f(W) = 1`` and ``f(t) = m`` for every ``t >= T`` (when ``W < T``).
"""

import math
from typing import Any

import torch


def _lerp(a: float, b: float, w: float) -> float:
    """``(1 - w) * a + w * b``, written so that it is exactly ``a`` at ``w = 0`` and exactly ``b`` at ``w = 1``."""
    return (1.0 - w) * a + w * b


def lr_factor(
    step: int, total_steps: int, warmup_steps: int, warmup_start: float = 0.0, min_factor: float = 0.0
) -> float:
    """Linear warm-up from ``warmup_start`` to 1 over ``warmup_steps`` steps, then half-cosine from 1 to
    ``min_factor`` at ``total_steps``; ``step`` counts optimiser steps from 0. With ``W = warmup_steps`` and
    ``T = total_steps``::

        step < W:   f = warmup_start + (1 - warmup_start) * step / W
        step >= W:  f = min_factor + (1 - min_factor) * 0.5 * (1 + cos(pi * min(1, (step - W) / max(1, T - W))))

    The formulas are evaluated as interpolations that are exact at the ends: ``f(0) = warmup_start`` (for
    ``W > 0``), ``f(W) = 1`` and ``f(step) = min_factor`` for ``step >= T`` (for ``W < T``).
    Requires ``0 <= step``, ``0 <= W <= T`` and ``T > 0``.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < warmup_steps:
        return _lerp(warmup_start, 1.0, step / warmup_steps)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 at progress 0, exactly 0 at progress 1
    return _lerp(min_factor, 1.0, cosine)


class WarmupCosine:
    """Per-step scheduler: :meth:`set_step` sets ``group["lr"] = group["initial_lr"] * lr_factor(step, ...)``.

    A group without ``"initial_lr"`` gets it set to its current ``"lr"`` on first use; a group with
    ``"fixed_lr": True`` keeps ``lr = initial_lr``. :meth:`state_dict` holds plain ints and floats
    (JSON-serialisable); a resumed run loads it and continues with ``set_step(optimizer, last_step + 1)``.
    """

    def __init__(self, total_steps: int, warmup_steps: int, warmup_start: float = 0.0, min_factor: float = 0.0) -> None:
        lr_factor(0, total_steps, warmup_steps, warmup_start, min_factor)  # validates the arguments
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.warmup_start = float(warmup_start)
        self.min_factor = float(min_factor)
        self.last_step = -1  # no step set yet

    def factor(self, step: int) -> float:
        """:func:`lr_factor` of ``step`` with this scheduler's settings."""
        return lr_factor(step, self.total_steps, self.warmup_steps, self.warmup_start, self.min_factor)

    def set_step(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set every group's ``lr`` for optimiser step ``step`` and return the factor ``f(step)``."""
        f = self.factor(step)
        for group in optimizer.param_groups:
            initial = group.setdefault("initial_lr", group["lr"])
            group["lr"] = initial if group.get("fixed_lr", False) else initial * f
        self.last_step = int(step)
        return f

    def state_dict(self) -> dict[str, Any]:
        """The settings and the last step set, as plain ints and floats."""
        return {
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "warmup_start": self.warmup_start,
            "min_factor": self.min_factor,
            "last_step": self.last_step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        lr_factor(0, state["total_steps"], state["warmup_steps"], state["warmup_start"], state["min_factor"])
        self.total_steps = int(state["total_steps"])
        self.warmup_steps = int(state["warmup_steps"])
        self.warmup_start = float(state["warmup_start"])
        self.min_factor = float(state["min_factor"])
        self.last_step = int(state["last_step"])


def cosine_momentum(step: int, total_steps: int, base: float, final: float) -> float:
    """BYOL's target momentum: ``tau = final - (final - base) * (cos(pi * step / total_steps) + 1) / 2``.

    ``tau = base`` at step 0 and ``final`` at ``total_steps`` (exactly; evaluated as an interpolation); ``step`` is
    clamped to ``[0, total_steps]``, so later steps stay at ``final``.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    progress = min(max(step, 0), total_steps) / total_steps
    weight = (math.cos(math.pi * progress) + 1.0) / 2.0  # weight of base: 1 at step 0, exactly 0 at total_steps
    return _lerp(final, base, weight)
