"""``imagefolder``: a class-per-folder tree of image files (ImageNet-1k, ImageNet-100, your own data).

Two layouts are recognised under ``root``:

* split layout — ``root/train/<class>/...`` plus ``root/val/<class>/...`` and/or ``root/test/<class>/...``.
  These are official splits: ``train`` is the training pool; ``test`` is the test split, and when there is no
  ``test`` folder, ``val`` is (ImageNet convention: the official validation set is the held-out evaluation set,
  and the validation split used for model selection is carved from train with ``val_fraction``). With both
  ``val`` and ``test`` folders, each is its own split.
* flat layout — ``root/<class>/...``: one pool, split seeded and stratified.

Classes are the sorted folder names of the training pool; files are found recursively inside each class
folder, sorted by path, with the extensions in ``EXTENSIONS`` (case-insensitive), so the store's order is the
same on every file system.
"""

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from genssl.data.sources.base import Source
from genssl.errors import DatasetNotFoundError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SPLIT_FOLDERS = ("train", "val", "test")
HOW_TO_OBTAIN = (
    "imagefolder expects ROOT/<class>/<image> or ROOT/train/<class>/<image> with ROOT/val/<class>/<image> "
    "(for ImageNet-1k: extract ILSVRC2012_img_train.tar into ROOT/train, one folder per synset, and sort the "
    "validation images into ROOT/val/<synset>/ with the devkit's ground truth)"
)


def _class_files(folder: Path) -> list[str]:
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        files.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.lower().endswith(EXTENSIONS))
    return files


def _class_folders(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


class ImageFolderSource(Source):
    def __init__(self, name: str, config: dict[str, Any], seed: int) -> None:
        super().__init__(name, config, seed)
        root = Path(config["root"]).expanduser()
        if not root.is_dir():
            raise DatasetNotFoundError(
                f"dataset '{name}' (source imagefolder): root {root} does not exist or is not a directory "
                f"(datasets.{name}.root). {HOW_TO_OBTAIN}"
            )
        top = _class_folders(root)
        split_layout = "train" in top and set(top) <= set(SPLIT_FOLDERS) and len(top) > 1
        parts = [p for p in SPLIT_FOLDERS if p in top] if split_layout else [None]
        train_dir = root / "train" if split_layout else root
        self.classes = _class_folders(train_dir)
        if not self.classes:
            raise DatasetNotFoundError(
                f"dataset '{name}' (source imagefolder): no class folders in {train_dir}. {HOW_TO_OBTAIN}"
            )
        class_index = {c: k for k, c in enumerate(self.classes)}
        self._files: list[str] = []
        labels: list[int] = []
        self._part_ranges: dict[str, tuple[int, int]] = {}
        for part in parts:
            part_dir = root / part if part else root
            extra = sorted(set(_class_folders(part_dir)) - set(self.classes))
            if extra:
                raise DatasetNotFoundError(
                    f"dataset '{name}': {part_dir} has class folders absent from {train_dir}: {', '.join(extra[:5])}"
                )
            start = len(self._files)
            for cls in self.classes:
                if (part_dir / cls).is_dir():
                    files = _class_files(part_dir / cls)
                    self._files.extend(files)
                    labels.extend([class_index[cls]] * len(files))
            self._part_ranges[part or "all"] = (start, len(self._files))
        if not self._files:
            raise DatasetNotFoundError(
                f"dataset '{name}' (source imagefolder): no images with extensions {', '.join(EXTENSIONS)} "
                f"under {root}. {HOW_TO_OBTAIN}"
            )
        self._labels = np.asarray(labels, dtype=np.int64)
        self._split_layout = split_layout

    def __len__(self) -> int:
        return len(self._files)

    def item_name(self, index: int) -> str:
        return self._files[index]

    def load(self, index: int) -> tuple[Image.Image, int]:
        with Image.open(self._files[index]) as image:
            image.load()
            return image.copy(), int(self._labels[index])

    def official_splits(self) -> dict[str, np.ndarray] | None:
        if not self._split_layout:
            return None
        ranges = {part: np.arange(a, b) for part, (a, b) in self._part_ranges.items()}
        if "test" not in ranges:
            ranges["test"] = ranges.pop("val")
        return ranges
