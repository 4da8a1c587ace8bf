"""The contract between a self-supervised method and the shared trainer (:mod:`genssl.train`).

A method is an ``nn.Module`` holding the backbone, its heads and any momentum networks or queues (all of which
are saved in checkpoints). The trainer augments each batch into ``n_views`` views and calls
``loss = method(views, indices)`` (a scalar); it then runs backward and the optimiser step and calls
``method.after_step(step, total_steps)`` (momentum updates). ``indices`` are the positions ``0 .. N - 1`` of the
batch's images in the training split (DIET's class labels). ``param_groups()`` lists the trainable parameters
for the optimiser: ``(named_parameters, options)`` pairs, where options may hold ``fixed_lr`` (the group keeps
its initial lr).

State a method keeps outside the module and the optimiser (S-DIET's head on disk) goes through five hooks, all
no-ops by default: ``open_external`` (fresh, or from a checkpoint), ``prefetch_external`` (the next batch's
positions, before the current step: start reading its state), ``update_external`` (after each optimiser step, with
the loss scale), ``save_external`` (into a checkpoint being written) and ``close_external``.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class RunContext:
    """What a method may know about its run besides its config (given by the trainer)."""

    #: N: images in the training split.
    num_samples: int
    #: T: optimiser steps of the whole run.
    total_steps: int
    #: The learning rate of the first param group at optimiser step t (1-based): ``lr(t)``.
    lr: Callable[[int], float]
    #: The run's output directory (for files the method keeps there).
    out_dir: Path
    #: The study seed.
    seed: int


#: Optimiser parameter groups: (named parameters, options) pairs.
ParamGroups = list[tuple[list[tuple[str, nn.Parameter]], dict[str, Any]]]


class Method(nn.Module):
    """Base class: a backbone plus heads, with the loss in ``forward``."""

    #: Number of augmented views per image the trainer must provide.
    n_views: int = 2
    #: Whether ``forward`` takes the batch's ``indices`` on the host (CPU) rather than on the training device.
    host_indices: bool = False

    def __init__(
        self, backbone: nn.Module, feature_dim: int, config: dict[str, Any], context: RunContext | None = None
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.config = config
        self.context = context

    def forward(self, views: list[torch.Tensor], indices: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def param_groups(self) -> ParamGroups:
        """Trainable parameters: by default one group of every parameter that requires a gradient."""
        return [([(n, p) for n, p in self.named_parameters() if p.requires_grad], {})]

    def after_step(self, step: int, total_steps: int) -> None:
        """Called after every optimiser step (``step`` counts from 1); momentum methods update targets here."""

    def open_external(self, checkpoint: Path | None, step: int) -> None:
        """Set up the state kept outside the module: fresh (``checkpoint`` None) or as saved in ``checkpoint``
        after optimiser step ``step``."""

    def prefetch_external(self, indices: torch.Tensor) -> None:
        """The positions (CPU) of the batch after the one about to be trained: external state for them may be read
        now, while the current step computes. The result must not depend on whether this is called."""

    def update_external(self, step: int, grad_scale: float, skipped: bool) -> None:
        """After optimiser step ``step`` (from 1): gradients are multiplied by ``grad_scale`` (the AMP loss scale);
        ``skipped`` when the scaler skipped the step (non-finite gradients)."""

    @property
    def updates_external(self) -> bool:
        """Whether the method has an :meth:`update_external` of its own: only then does the trainer read the loss
        scale to the host after a step (under fp16 a wait for the device)."""
        return type(self).update_external is not Method.update_external

    def save_external(self, directory: Path | None) -> None:
        """Write the external state into the checkpoint directory being written. Called on every process: the
        one that writes the checkpoint passes its directory, the others ``None``."""

    def close_external(self, completed: bool) -> None:
        """Release the external state; ``completed`` when training finished (finalise it then)."""
