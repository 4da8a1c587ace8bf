"""LARS: SGD with momentum and layer-wise adaptive rate scaling, as solo-learn implements it.

For each parameter ``p`` with gradient ``g`` in a group with learning rate ``lr``, momentum ``m``, weight decay
``wd``, trust coefficient ``eta`` and ``eps``:

* if the group is not excluded and ``||p|| != 0`` and ``||g|| != 0``::

      q = eta * ||p|| / (||g|| + wd * ||p|| + eps)        # trust ratio
      q = min(q / lr, 1)                                 # only when clip_lr
      d = (g + wd * p) * q

* if the group is not excluded but ``||p|| == 0`` or ``||g|| == 0``: ``d = g + wd * p``;
* if the group is excluded (biases and normalisation parameters): ``d = g`` (no weight decay, no adaptation).

Then, as in ``torch.optim.SGD`` without dampening or Nesterov: ``buf = d`` on a parameter's first step and
``buf = m * buf + d`` afterwards, and ``p = p - lr * buf``. Norms are Euclidean norms over the whole tensor.
"""

from collections.abc import Callable, Iterable
from typing import Any

import torch


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise adaptive rate scaling (see the module docstring for the update).

    Param group keys: ``lr``, ``momentum`` (0.9), ``weight_decay`` (0), ``eta`` (0.02), ``eps`` (1e-8),
    ``clip_lr`` (False) and ``exclude`` (False; True for a group of biases and normalisation parameters, which
    then gets neither weight decay nor adaptation). The momentum buffer is ``self.state[p]["momentum_buffer"]``.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        eta: float = 0.02,
        eps: float = 1e-8,
        clip_lr: bool = False,
        exclude: bool = False,
    ) -> None:
        if lr < 0:
            raise ValueError(f"invalid learning rate: {lr}")
        if momentum < 0:
            raise ValueError(f"invalid momentum: {momentum}")
        if weight_decay < 0:
            raise ValueError(f"invalid weight_decay: {weight_decay}")
        if eta <= 0:
            raise ValueError(f"invalid eta: {eta}")
        if eps < 0:
            raise ValueError(f"invalid eps: {eps}")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "eta": eta,
            "eps": eps,
            "clip_lr": clip_lr,
            "exclude": exclude,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Perform one update of every parameter that has a gradient; ``closure`` re-evaluates the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["exclude"]:
                    d = g.clone()
                else:
                    d = g.add(p, alpha=wd) if wd != 0 else g.clone()
                    # Branch-free (no host synchronisation): q = 1 where either norm is zero, i.e. d = g + wd * p.
                    p_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                    q = group["eta"] * p_norm / (g_norm + wd * p_norm + group["eps"])
                    if group["clip_lr"]:
                        q = torch.clamp(q / lr, max=1.0)
                    q = torch.where((p_norm != 0) & (g_norm != 0), q, torch.ones_like(q))
                    d.mul_(q)
                if momentum != 0:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = d
                    else:
                        buf.mul_(momentum).add_(d)
                    d = buf
                p.add_(d, alpha=-lr)
        return loss
