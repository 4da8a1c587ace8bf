"""Parameter groups, the linear learning-rate scaling rule and the optimiser factory (SGD, LARS, AdamW).

Biases and normalisation parameters (every parameter with ``p.ndim <= 1``) are by default put in a group with
weight decay 0 that LARS also excludes from adaptation. Every param group of the built optimiser records
``initial_lr``, its learning rate at build time; :class:`genssl.optim.schedule.WarmupCosine` then sets
``lr = initial_lr * f(step)``.
"""

from collections.abc import Iterable
from typing import Any

import torch

from genssl.errors import ConfigError
from genssl.optim.lars import LARS

OPTIMIZERS = ("adamw", "lars", "sgd")


def split_decay_groups(
    named_params: Iterable[tuple[str, torch.nn.Parameter]],
) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """``(regular, excluded)``: excluded = biases and normalisation parameters = every parameter with ``p.ndim <= 1``.

    Both lists keep the order of ``named_params``.
    """
    regular, excluded = [], []
    for _, p in named_params:
        (excluded if p.ndim <= 1 else regular).append(p)
    return regular, excluded


def decay_groups(
    named_params: Iterable[tuple[str, torch.nn.Parameter]],
    name: str,
    weight_decay: float,
    exclude_bias_n_norm: bool = True,
    **options: Any,
) -> list[dict[str, Any]]:
    """Param groups of ``named_params`` for optimiser ``name``: a regular group with ``weight_decay`` and, with
    ``exclude_bias_n_norm``, a group of biases and normalisation parameters with weight decay 0 (and
    ``exclude=True`` for LARS). Empty groups are left out; ``options`` (e.g. ``fixed_lr``) go into every group."""
    named_params = list(named_params)
    if exclude_bias_n_norm:
        regular, excluded = split_decay_groups(named_params)
    else:
        regular, excluded = [p for _, p in named_params], []
    groups: list[dict[str, Any]] = []
    if regular:
        groups.append({"params": regular, "weight_decay": weight_decay, **options})
    if excluded:
        groups.append({"params": excluded, "weight_decay": 0.0, **options})
        if name == "lars":
            groups[-1]["exclude"] = True
    return groups


def scaled_lr(base_lr: float, batch_size: int) -> float:
    """Linear scaling rule: ``lr = base_lr * batch_size / 256`` (``batch_size`` = the GLOBAL batch, all processes)."""
    return base_lr * batch_size / 256


def multi_tensor_implementation(params: Iterable[torch.Tensor]) -> dict[str, bool]:
    """The keyword that makes ``torch.optim.SGD`` / ``AdamW`` update all parameters at once: ``{"fused": True}``
    (one kernel per step) when every parameter is a floating-point CUDA tensor, else ``{"foreach": True}``."""
    params = list(params)
    if params and all(p.is_cuda and p.is_floating_point() for p in params):
        return {"fused": True}
    return {"foreach": True}


def build_optimizer(
    named_params: Iterable[tuple[str, torch.nn.Parameter]],
    name: str,
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
    eta: float = 0.02,
    betas: tuple[float, float] = (0.9, 0.999),
    exclude_bias_n_norm: bool = True,
    extra_groups: list[dict[str, Any]] | None = None,
    eps: float = 1e-8,
    clip_lr: bool = False,
) -> torch.optim.Optimizer:
    """Build ``name`` (``"sgd"``, ``"lars"`` or ``"adamw"``) over ``named_params``.

    ``lr`` is the already scaled learning rate (see :func:`scaled_lr`). With ``exclude_bias_n_norm`` the params
    are split by :func:`decay_groups` into a regular group (``weight_decay``) and an excluded group
    (weight decay 0, and ``exclude=True`` for LARS); otherwise they form one regular group. Empty groups are left
    out. SGD is ``torch.optim.SGD`` with ``momentum``, LARS is :class:`genssl.optim.lars.LARS` with ``momentum``,
    ``eta`` and ``clip_lr``, AdamW is ``torch.optim.AdamW`` with ``betas`` and ``eps``; SGD and AdamW run
    PyTorch's fused (CUDA) or foreach implementation (see :func:`multi_tensor_implementation`), chosen from the
    parameters' device, so build the optimiser after moving the model.

    ``extra_groups`` (e.g. a predictor or a linear probe with its own learning rate) are appended as given, after
    the model's groups: each dict has ``"params"`` and optionally ``"lr"`` / ``"weight_decay"`` (defaulting to
    ``lr`` / ``weight_decay``) or any other key of the optimiser's param groups (for LARS, ``"exclude"``).
    A group may also carry ``"fixed_lr": True``, which the schedule honours by leaving its learning rate at
    ``initial_lr`` (SimSiam's predictor). The input dicts are not modified.

    Every param group of the result records ``"initial_lr"`` = its ``"lr"`` at build time.
    Raises :class:`genssl.errors.ConfigError` for an unknown ``name``.
    """
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
    groups = decay_groups(named_params, name, weight_decay, exclude_bias_n_norm)
    for extra in extra_groups or []:
        group = dict(extra)
        params = group["params"]
        group["params"] = [params] if isinstance(params, torch.Tensor) else list(params)
        groups.append(group)

    optimizer: torch.optim.Optimizer
    if name == "lars":
        optimizer = LARS(groups, lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, clip_lr=clip_lr)
    else:
        impl = multi_tensor_implementation(p for g in groups for p in g["params"])
        if name == "sgd":
            optimizer = torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay, **impl)
        else:
            optimizer = torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, **impl)
    for group in optimizer.param_groups:
        group["initial_lr"] = group["lr"]
    return optimizer
