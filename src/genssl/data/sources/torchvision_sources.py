"""torchvision's datasets read from a local ``root``: cifar10, cifar100, stl10, food101, places365, inaturalist.

Nothing is downloaded unless the dataset's ``download: true`` is set. The official splits are used where
the dataset has them (train/test for CIFAR, STL-10 (labelled part) and Food-101; train-standard/val for
Places365, whose val is the test split); iNaturalist releases are single pools, split seeded and stratified.
The datasets are opened lazily in each process (they are not pickled to worker processes).
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from genssl.data.sources.base import Source
from genssl.errors import DatasetNotFoundError


@dataclass(frozen=True)
class TorchvisionSpec:
    """How to open one torchvision dataset: its parts (split name -> constructor) and where to get its data."""

    parts: dict[str, Callable[[str, dict[str, Any]], Any]]
    how_to_obtain: str


def _tv() -> Any:
    import torchvision.datasets

    return torchvision.datasets


def _inaturalist(root: str, cfg: dict[str, Any]) -> Any:
    ds = _tv().INaturalist(root, version=cfg["version"], download=cfg["download"])
    ds.index.sort()
    ds.classes = ds.all_categories
    return ds


SPECS: dict[str, TorchvisionSpec] = {
    "cifar10": TorchvisionSpec(
        {
            "train": lambda r, c: _tv().CIFAR10(r, train=True, download=c["download"]),
            "test": lambda r, c: _tv().CIFAR10(r, train=False, download=c["download"]),
        },
        "download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and extract it into "
        "ROOT (it creates ROOT/cifar-10-batches-py/)",
    ),
    "cifar100": TorchvisionSpec(
        {
            "train": lambda r, c: _tv().CIFAR100(r, train=True, download=c["download"]),
            "test": lambda r, c: _tv().CIFAR100(r, train=False, download=c["download"]),
        },
        "download cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and extract it into "
        "ROOT (it creates ROOT/cifar-100-python/)",
    ),
    "stl10": TorchvisionSpec(
        {
            "train": lambda r, c: _tv().STL10(r, split="train", download=c["download"]),
            "test": lambda r, c: _tv().STL10(r, split="test", download=c["download"]),
        },
        "download stl10_binary.tar.gz from https://cs.stanford.edu/~acoates/stl10/ and extract it into ROOT "
        "(it creates ROOT/stl10_binary/)",
    ),
    "food101": TorchvisionSpec(
        {
            "train": lambda r, c: _tv().Food101(r, split="train", download=c["download"]),
            "test": lambda r, c: _tv().Food101(r, split="test", download=c["download"]),
        },
        "download food-101.tar.gz from https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/ and extract "
        "it into ROOT (it creates ROOT/food-101/images and ROOT/food-101/meta)",
    ),
    "places365": TorchvisionSpec(
        {
            "train": lambda r, c: _tv().Places365(r, split="train-standard", small=c["small"], download=c["download"]),
            "test": lambda r, c: _tv().Places365(r, split="val", small=c["small"], download=c["download"]),
        },
        "download the Places365-Standard images (places365standard_easyformat / train_256 and val_256 for "
        "small: true) and filelist_places365-standard.tar from http://places2.csail.mit.edu/download.html "
        "and extract them into ROOT in torchvision's Places365 layout",
    ),
    "inaturalist": TorchvisionSpec(
        {"all": _inaturalist},
        "download the iNaturalist release named by `version` (e.g. train_val2018.tar.gz) from "
        "https://github.com/visipedia/inat_comp and extract it into ROOT/<version>/ (torchvision's layout)",
    ),
}


def _item_path(dataset: Any, index: int) -> str | None:
    if hasattr(dataset, "_image_files"):
        return str(dataset._image_files[index])
    if hasattr(dataset, "imgs"):
        return str(dataset.imgs[index][0])
    if hasattr(dataset, "index") and hasattr(dataset, "all_categories"):
        cat, fname = dataset.index[index]
        return str(Path(dataset.root, dataset.all_categories[cat], fname))
    return None


class TorchvisionSource(Source):
    def __init__(self, name: str, config: dict[str, Any], seed: int) -> None:
        super().__init__(name, config, seed)
        self.root = str(Path(config["root"]).expanduser())
        self._datasets: list[Any] | None = None
        if not Path(self.root).is_dir() and not config["download"]:
            raise DatasetNotFoundError(
                f"dataset '{name}' (source {config['source']}): root {self.root} does not exist "
                f"(datasets.{name}.root). To obtain it: {self.spec.how_to_obtain.replace('ROOT', self.root)}; "
                f"or set datasets.{name}.download: true on a machine with network access"
            )
        datasets = self._open()
        self.classes = [str(c) for c in datasets[0].classes]
        self._offsets = np.cumsum([0] + [len(d) for d in datasets])

    @property
    def spec(self) -> TorchvisionSpec:
        """Looked up by name (not stored: its constructors are lambdas, and the source is pickled to workers)."""
        return SPECS[self.config["source"]]

    def _open(self) -> list[Any]:
        if self._datasets is None:
            datasets = []
            for part, factory in self.spec.parts.items():
                try:
                    datasets.append(factory(self.root, self.config))
                except (RuntimeError, FileNotFoundError, OSError) as err:
                    raise DatasetNotFoundError(
                        f"dataset '{self.name}' (source {self.config['source']}, {part} split): data not found "
                        f"or incomplete under {self.root}: {err}. To obtain it: "
                        f"{self.spec.how_to_obtain.replace('ROOT', self.root)}"
                    ) from None
            self._datasets = datasets
        return self._datasets

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_datasets"] = None
        return state

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _locate(self, index: int) -> tuple[Any, int]:
        part = int(np.searchsorted(self._offsets, index, side="right")) - 1
        return self._open()[part], index - int(self._offsets[part])

    def item_name(self, index: int) -> str:
        dataset, j = self._locate(index)
        return _item_path(dataset, j) or super().item_name(index)

    def load(self, index: int) -> tuple[Image.Image, int]:
        dataset, j = self._locate(index)
        image, label = dataset[j]
        return image, int(label)

    def official_splits(self) -> dict[str, np.ndarray] | None:
        parts = list(self.spec.parts)
        if parts == ["all"]:
            return None
        return {part: np.arange(self._offsets[k], self._offsets[k + 1]) for k, part in enumerate(parts)}
