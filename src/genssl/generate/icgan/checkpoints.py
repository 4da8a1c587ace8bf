"""Reading a released ``torch.save`` state dict and matching it to a module with strict keys and shapes, with
errors that name the file, the config key, the keys at fault and the layout expected."""

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from genssl.errors import GensslError

#: Keys listed per kind of mismatch in an error message.
LISTED = 5


def read_state_dict(path: str | os.PathLike[str], key: str, expected: str) -> dict[str, torch.Tensor]:
    """The tensors of the ``torch.save``'d dict at ``path`` (config key ``key``), loaded with ``weights_only`` (no
    code runs). A missing or unreadable file, or one that is not a flat dict of tensors, raises
    :class:`GensslError` naming the key, the path and the ``expected`` layout; nothing is downloaded."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise GensslError(f"{key}: {path} does not exist; expected {expected}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises pickle, zip and runtime errors alike
        raise GensslError(f"{key}: cannot read {path} as a torch state dict ({error}); expected {expected}") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise GensslError(f"{key}: {path} is not a flat dict of tensors; expected {expected}")
    return dict(state)


def check_keys(
    found: Mapping[str, torch.Tensor],
    wanted: Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    key: str,
    expected: str,
) -> None:
    """Raise :class:`GensslError` unless ``found`` has exactly the keys of ``wanted`` with the same shapes; the
    message names the first :data:`LISTED` missing, unexpected and wrongly shaped keys (with both shapes), in the
    order of the module's (or the file's) state dict."""
    missing = [k for k in wanted if k not in found]
    unexpected = [k for k in found if k not in wanted]
    shapes = [
        f"{k} {tuple(found[k].shape)} (expected {tuple(wanted[k].shape)})"
        for k in wanted
        if k in found and found[k].shape != wanted[k].shape
    ]
    parts = [
        f"{label}: {', '.join(keys[:LISTED])}{' ...' if len(keys) > LISTED else ''}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes))
        if keys
    ]
    if parts:
        raise GensslError(f"{key}: {path} does not match {expected} ({'; '.join(parts)})")
