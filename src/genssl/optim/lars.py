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

The step runs on all the tensors of a param group at once (per device and dtype): ``torch._foreach_*`` ops for
the elementwise work and the norms, and the trust ratios of a group as one vector, so the number of kernels does
not grow with the number of parameters (bar the scaling ``d = q d``, one multiplication per tensor inside a
single ``_foreach_mul_``) and nothing waits on the device.
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
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grouped = self._group_tensors_by_device_and_dtype([params, [p.grad for p in params]])
            for (device_params, device_grads), _ in grouped.values():
                directions = _directions(device_params, device_grads, group)
                if group["momentum"] != 0:
                    directions = self._momentum(device_params, directions, group["momentum"], group["exclude"])
                torch._foreach_add_(device_params, directions, alpha=-group["lr"])
        return loss

    def _momentum(
        self, params: list[torch.Tensor], directions: list[torch.Tensor], momentum: float, shared: bool
    ) -> list[torch.Tensor]:
        """``buf = d`` for the parameters without a buffer yet (a copy of ``d`` where the directions are ``shared``
        with the gradients), ``buf = m * buf + d`` for the others; returns the buffers."""
        states = [self.state[p] for p in params]
        old = [i for i, state in enumerate(states) if "momentum_buffer" in state]
        if old:
            buffers = [states[i]["momentum_buffer"] for i in old]
            torch._foreach_mul_(buffers, momentum)
            torch._foreach_add_(buffers, [directions[i] for i in old])
        for state, d in zip(states, directions, strict=True):
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = d.clone() if shared else d
        return [state["momentum_buffer"] for state in states]


def _directions(params: list[torch.Tensor], grads: list[torch.Tensor], group: dict[str, Any]) -> list[torch.Tensor]:
    """The update directions ``d`` of the module docstring for tensors of one device and dtype: new tensors, or the
    gradients themselves in an excluded group (``d = g``)."""
    if group["exclude"]:
        return grads
    lr, wd = group["lr"], group["weight_decay"]
    # Trust ratios of all tensors as one vector; q = 1 where either norm is zero, i.e. d = g + wd * p.
    p_norm = torch.stack(torch._foreach_norm(params))
    g_norm = torch.stack(torch._foreach_norm(grads))
    q = group["eta"] * p_norm / (g_norm + wd * p_norm + group["eps"])
    if group["clip_lr"]:
        q = torch.clamp(q / lr, max=1.0)
    q = torch.where((p_norm != 0) & (g_norm != 0), q, torch.ones_like(q))
    if wd == 0:
        return torch._foreach_mul(grads, q.unbind())
    directions = torch._foreach_add(grads, params, alpha=wd)
    torch._foreach_mul_(directions, q.unbind())
    return directions
