"""Self-supervised methods by name: each a small module (heads + loss) over the shared trainer."""

from typing import Any

from torch import nn

from genssl.errors import ConfigError
from genssl.methods.barlowtwins import BarlowTwins
from genssl.methods.base import Method, RunContext
from genssl.methods.byol import BYOL
from genssl.methods.diet import DIET
from genssl.methods.mocov2plus import MoCoV2Plus
from genssl.methods.sdiet import SDIET
from genssl.methods.simclr import SimCLR
from genssl.methods.simsiam import SimSiam

METHODS: dict[str, type[Method]] = {
    "simclr": SimCLR,
    "mocov2plus": MoCoV2Plus,
    "byol": BYOL,
    "simsiam": SimSiam,
    "barlowtwins": BarlowTwins,
    "diet": DIET,
    "sdiet": SDIET,
}


def build_method(
    name: str, backbone: nn.Module, feature_dim: int, config: dict[str, Any], context: RunContext | None = None
) -> Method:
    """The method ``name`` over ``backbone``; an unknown name lists the valid ones. DIET-style methods need the
    run ``context``."""
    if name not in METHODS:
        raise ConfigError(f"methods.{name}: unknown method {name!r}; known: {', '.join(sorted(METHODS))}")
    return METHODS[name](backbone, feature_dim, config, context)


__all__ = ["METHODS", "Method", "RunContext", "build_method"]
