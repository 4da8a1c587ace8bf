"""Image sources by name (the ``source`` key of a dataset's configuration)."""

from typing import Any

from genssl.data.sources.base import Source
from genssl.data.sources.digits import DigitsSource
from genssl.data.sources.imagefolder import ImageFolderSource
from genssl.data.sources.shapes import ShapesSource
from genssl.data.sources.torchvision_sources import SPECS, TorchvisionSource
from genssl.errors import ConfigError

SOURCES: dict[str, type[Source]] = {
    "digits": DigitsSource,
    "shapes": ShapesSource,
    "imagefolder": ImageFolderSource,
    **{name: TorchvisionSource for name in SPECS},
}


def build_source(name: str, config: dict[str, Any], seed: int) -> Source:
    """Open the source of dataset ``name``; an unknown ``source`` is refused with the list of known ones."""
    source = config.get("source")
    if source not in SOURCES:
        raise ConfigError(
            f"datasets.{name}.source: unknown source {source!r}; known sources: {', '.join(sorted(SOURCES))}"
        )
    return SOURCES[source](name, config, seed)


__all__ = ["SOURCES", "Source", "build_source"]
