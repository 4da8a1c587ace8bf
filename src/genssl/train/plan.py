"""How a method's run steps: the one place that resolves its batch, gradient accumulation, learning rate and step
counts. The trainer runs it and the report shows it.

With ``N`` training images, batch ``B`` (``methods.X.batch_size``, else ``pretrain.batch_size``: images per forward
pass, all processes together) over ``W`` processes, ``k`` forward passes per optimiser step
(``methods.X.accumulate_steps``), ``E`` epochs and ``E_w`` warm-up epochs::

    local batch       B / W                          (B must be divisible by W)
    images per step   B k                            (must be <= N)
    steps / epoch     S = floor(N / (B k))           (the tail of each epoch's permutation is dropped)
    forwards / epoch  S k
    total steps       T = S E                        (optimiser steps: the schedule and momentum advance per step)
    warm-up steps     min(T, round(E_w S))
    peak lr           lr = base_lr B k / 256         (the linear scaling rule, on the images per optimiser step)

The lr rule is solo-learn's: it scales ``lr`` by its per-forward batch (per-GPU batch x GPUs x nodes) / 256 and then
multiplies it by ``accumulate_grad_batches``, and each micro-batch's loss is divided by ``k`` (Lightning), so
the gradient of a step is the mean over its ``B k`` images (docs/paper-settings.md, "The learning-rate rule").
"""

from dataclasses import dataclass
from typing import Any

from genssl.errors import ConfigError
from genssl.optim import scaled_lr


@dataclass(frozen=True)
class StepPlan:
    """The resolved steps of one method's run (module docstring)."""

    #: N: images in the training split.
    num_train: int
    #: B: images per forward pass, all processes together.
    batch_size: int
    #: The configuration key ``B`` comes from.
    batch_key: str
    #: k: forward passes (micro-batches of B) whose gradients make one optimiser step.
    accumulate_steps: int
    #: B / W: images per forward pass of one process.
    local_batch: int
    #: S: optimiser steps per epoch.
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    #: The peak learning rate the optimiser receives (before the warm-up + cosine factor).
    lr: float

    @property
    def images_per_step(self) -> int:
        """B k: the images whose mean gradient makes one optimiser step."""
        return self.batch_size * self.accumulate_steps

    @property
    def forwards_per_epoch(self) -> int:
        """S k: the forward passes (micro-batches) of one epoch."""
        return self.steps_per_epoch * self.accumulate_steps

    @classmethod
    def resolve(cls, config: dict[str, Any], method: str, num_train: int, world_size: int = 1) -> "StepPlan":
        """The plan of ``method`` in ``config`` (resolved) for ``num_train`` training images and ``world_size``
        processes; a step larger than the training split or a batch not divisible by the processes is refused,
        naming its key."""
        pretrain, own = config["pretrain"], config["methods"][method]
        key = f"methods.{method}.batch_size" if "batch_size" in own else "pretrain.batch_size"
        batch = own.get("batch_size", pretrain["batch_size"])
        accumulate = own["accumulate_steps"]
        if batch * accumulate > num_train:
            step = f"batch of {batch}" if accumulate == 1 else f"step of {batch} x {accumulate} accumulated images"
            raise ConfigError(f"{key}: {step} is larger than the {num_train} training images of {pretrain['dataset']}")
        if batch % world_size:
            raise ConfigError(f"{key}: batch of {batch} is not divisible by the {world_size} processes")
        steps_per_epoch = num_train // (batch * accumulate)
        total_steps = steps_per_epoch * pretrain["epochs"]
        return cls(
            num_train=num_train,
            batch_size=batch,
            batch_key=key,
            accumulate_steps=accumulate,
            local_batch=batch // world_size,
            steps_per_epoch=steps_per_epoch,
            total_steps=total_steps,
            warmup_steps=min(total_steps, round(pretrain["warmup_epochs"] * steps_per_epoch)),
            lr=scaled_lr(own["lr"], batch * accumulate),
        )
