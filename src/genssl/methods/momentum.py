"""The base of methods with momentum (EMA) targets, as solo-learn's ``BaseMomentumMethod``: BYOL and MoCo v2+."""

from typing import Any

from torch import nn

from genssl.methods.base import Method, RunContext
from genssl.methods.heads import momentum_copy, momentum_update
from genssl.optim.schedule import cosine_momentum


class MomentumMethod(Method):
    """A method whose targets are momentum copies of online modules: ``momentum_backbone`` of the backbone here,
    further pairs (e.g. the projector's) added by the subclass in :meth:`momentum_pairs`.

    After optimiser step ``t`` (from 1) of ``T``, every target ``xi`` of an online ``theta`` is updated
    ``xi <- tau xi + (1 - tau) theta`` with ``tau`` of step ``t - 1`` going from ``base_tau`` to ``final_tau`` on a
    cosine (:func:`genssl.optim.schedule.cosine_momentum`), a function of the step alone, so a resumed run continues
    the same schedule.
    """

    def __init__(
        self, backbone: nn.Module, feature_dim: int, config: dict[str, Any], context: RunContext | None = None
    ) -> None:
        super().__init__(backbone, feature_dim, config, context)
        self.momentum_backbone = momentum_copy(backbone)

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """``(online, target)`` pairs the momentum update runs over."""
        return [(self.backbone, self.momentum_backbone)]

    def after_step(self, step: int, total_steps: int) -> None:
        tau = cosine_momentum(step - 1, total_steps, self.config["base_tau"], self.config["final_tau"])
        for online, target in self.momentum_pairs():
            momentum_update(online, target, tau)
