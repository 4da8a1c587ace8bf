"""The interface every image source implements."""

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from PIL import Image


class Source(ABC):
    """An indexable collection of labelled images, read from where the data lives.

    Subclasses are built from the dataset's resolved configuration, check in ``__init__`` that their data is
    there (raising :class:`~genssl.errors.DatasetNotFoundError`), and must be picklable so that worker
    processes can decode in parallel.
    """

    #: Class names; label ``k`` is ``classes[k]``.
    classes: list[str]

    def __init__(self, name: str, config: dict[str, Any], seed: int) -> None:
        self.name = name
        self.config = config
        self.seed = seed

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def load(self, index: int) -> tuple[Image.Image, int]:
        """Image ``index`` and its label. Raise ``OSError``/``ValueError`` if the image cannot be decoded."""

    def item_name(self, index: int) -> str:
        """What to call item ``index`` in messages: its file path where it has one."""
        return f"{self.config['source']}[{index}]"

    def official_splits(self) -> dict[str, np.ndarray] | None:
        """Source indices of the splits the source defines itself (``train``, ``val``, ``test``), or ``None``."""
        return None
