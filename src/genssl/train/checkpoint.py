"""Resumable checkpoints as safetensors + JSON, written atomically.

A checkpoint is a directory::

    model.safetensors        the method's state dict (backbone, heads, momentum networks, queues, BN buffers)
    optimizer.safetensors    every tensor of the optimiser state, keyed "<param index>/<name>"
    state.json               trainer state (epoch, step, metrics so far), the optimiser's param groups and
                             non-tensor state, the loss scaler, and the digest of the run configuration

It is written to a temporary sibling and renamed over the previous one (:func:`genssl.atomic.atomic_directory`),
so the directory always holds the last complete checkpoint. Nothing is unpickled on load: safetensors and JSON
only (no ``torch.load``).
"""

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from genssl.atomic import atomic_directory
from genssl.errors import GensslError


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}/{name}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{index}/{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def save_checkpoint(
    directory: str | os.PathLike[str],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer_state: dict[str, Any],
    extra: Callable[[Path], None] | None = None,
) -> None:
    """Write the checkpoint ``directory`` (replacing an older one only once the new one is complete); ``extra``
    writes further files into the directory being written (a method's external state)."""
    model_tensors = {k: v.detach().contiguous().cpu().clone() for k, v in model.state_dict().items()}
    optimizer_tensors, optimizer_json = _optimizer_tensors(optimizer)
    with atomic_directory(directory) as tmp:
        save_file(model_tensors, str(tmp / "model.safetensors"))
        save_file(optimizer_tensors, str(tmp / "optimizer.safetensors"))
        state = {"trainer": trainer_state, "optimizer": optimizer_json}
        (tmp / "state.json").write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
        if extra is not None:
            extra(tmp)


def _damaged(directory: Path, problem: str) -> GensslError:
    return GensslError(
        f"checkpoint {directory}: {problem}; delete {directory} and rerun (rule pretrain): the run starts afresh"
    )


def read_trainer_state(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The trainer state of the checkpoint in ``directory``, or ``None`` if there is none."""
    file = Path(directory) / "state.json"
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text())["trainer"]
    except (ValueError, KeyError) as err:
        raise _damaged(Path(directory), f"state.json is damaged ({type(err).__name__}: {err})") from None


def load_checkpoint(
    directory: str | os.PathLike[str], model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Restore ``model`` and ``optimizer`` from ``directory`` in place; return the trainer state."""
    directory = Path(directory)
    try:
        state = json.loads((directory / "state.json").read_text())
        model_tensors = load_file(str(directory / "model.safetensors"))
        optimizer_tensors = load_file(str(directory / "optimizer.safetensors"))
    except (OSError, ValueError, SafetensorError) as err:
        raise _damaged(directory, f"cannot be read ({type(err).__name__}: {err})") from None
    device = next(model.parameters()).device
    missing, unexpected = model.load_state_dict(model_tensors, strict=False)
    if missing or unexpected:
        raise _damaged(
            directory, f"does not match the model (missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})"
        )
    per_param: dict[int, dict[str, Any]] = {}
    for key, value in optimizer_tensors.items():
        index, name = key.split("/", 1)
        per_param.setdefault(int(index), {})[name] = value.to(device)
    for key, value in state["optimizer"]["scalars"].items():
        index, name = key.split("/", 1)
        per_param.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": per_param, "param_groups": state["optimizer"]["param_groups"]})
    return state["trainer"]
