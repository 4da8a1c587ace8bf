"""How a method's run steps: the one place that resolves its batch, learning rate and step counts. The trainer
runs it and the report shows it.

With ``N`` training images, global batch ``B`` (``methods.X.batch_size``, else ``pretrain.batch_size``) over ``W``
processes, ``E`` epochs and ``E_w`` warm-up epochs::

    local batch     B / W                              (B must be divisible by W, and B <= N)
    steps / epoch   S = floor(N / B)                   (the tail of each epoch's permutation is dropped)
    total steps     T = S E
    warm-up steps   min(T, round(E_w S))
    peak lr         lr = base_lr B / 256               (the linear scaling rule, on the global batch)
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
    #: B: images per optimiser step, all processes together.
    batch_size: int
    #: The configuration key ``B`` comes from.
    batch_key: str
    #: B / W: images per step of one process.
    local_batch: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    #: The peak learning rate the optimiser receives (before the warm-up + cosine factor).
    lr: float

    @classmethod
    def resolve(cls, config: dict[str, Any], method: str, num_train: int, world_size: int = 1) -> "StepPlan":
        """The plan of ``method`` in ``config`` (resolved) for ``num_train`` training images and ``world_size``
        processes; a batch larger than the training split or not divisible by the processes is refused, naming
        its key."""
        pretrain, own = config["pretrain"], config["methods"][method]
        key = f"methods.{method}.batch_size" if "batch_size" in own else "pretrain.batch_size"
        batch = own.get("batch_size", pretrain["batch_size"])
        if batch > num_train:
            raise ConfigError(
                f"{key}: batch of {batch} is larger than the {num_train} training images of {pretrain['dataset']}"
            )
        if batch % world_size:
            raise ConfigError(f"{key}: batch of {batch} is not divisible by the {world_size} processes")
        steps_per_epoch = num_train // batch
        total_steps = steps_per_epoch * pretrain["epochs"]
        return cls(
            num_train=num_train,
            batch_size=batch,
            batch_key=key,
            local_batch=batch // world_size,
            steps_per_epoch=steps_per_epoch,
            total_steps=total_steps,
            warmup_steps=min(total_steps, round(pretrain["warmup_epochs"] * steps_per_epoch)),
            lr=scaled_lr(own["lr"], batch),
        )
