"""``genssl features``: frozen-encoder features of every split of a downstream dataset (rule extract_features, or
evaluate_encoder with :mod:`genssl.evaluate.encoder`).

For each split of the dataset store (train, val, test, in the store's sorted index order) the images are read in
batches, preprocessed deterministically (:mod:`genssl.evaluate.preprocess`: shorter side to
``input_size / crop_fraction``, centre ``input_size`` square) and encoded; the pooled float32 features are written
with labels and dataset indices to a feature file (:mod:`genssl.evaluate.feature_file`). Two kinds of encoders:

- a pretrained SSL encoder (``encoder.safetensors``): features ``f(x)``, the backbone's pooled output of the
  image normalised as in training (:func:`genssl.models.encoder_file.encode`);
- a generator's conditioning encoder: the features the generator is conditioned on, before any normalisation it
  applies (:meth:`genssl.generate.base.VariantGenerator.conditioning_features`): the frozen encoder of a trained
  icdiffusion/icgan generator, CLIP's image embedding for the Stable Diffusion backends, SwAV for IC-GAN.

On the CPU the file is a pure function of (encoder, store, preprocessing): extracting twice gives the same bytes.
"""

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from genssl import devices
from genssl.config import dataset_config, encoder_crop_fraction, encoder_input_size, generator_config
from genssl.errors import ConfigError, GensslError
from genssl.evaluate.feature_file import SPLITS, SplitFeatures, save_feature_set
from genssl.evaluate.preprocess import preprocess_batch
from genssl.generate.base import to_float_images
from genssl.models.encoder_file import encode, load_encoder
from genssl.progress import progress_bar
from genssl.provenance import code_version
from genssl.store import ImageStore
from genssl.store.manifest import MANIFEST, sha256_file

log = logging.getLogger(__name__)

#: Encodes a uint8 batch (B, S, S, 3) into float32 features (B, D) on the CPU.
Encoder = Callable[[torch.Tensor], torch.Tensor]


class PreprocessedBatches(Dataset):
    """Batch ``b`` of ``indices``: the store's images ``indices[b B : (b + 1) B]``, preprocessed to uint8
    (B, S, S, 3). Indexed by batch number, so DataLoader workers each read and preprocess whole batches."""

    def __init__(self, store: ImageStore, indices: np.ndarray, batch: int, preprocess: dict[str, Any]) -> None:
        self.store, self.indices, self.batch, self.preprocess = store, indices, batch, preprocess

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch)

    def __getitem__(self, item: int) -> torch.Tensor:
        chosen = self.indices[item * self.batch : (item + 1) * self.batch]
        images = self.store.get_batch(chosen) if self.store.shape is not None else [self.store[i] for i in chosen]
        return torch.from_numpy(preprocess_batch(images, **self.preprocess))


def preprocessing(config: dict[str, Any], dataset: str | None = None) -> dict[str, Any]:
    """The keyword arguments of :func:`preprocess_batch` that the config's ``features`` block sets for ``dataset``."""
    return {
        "size": encoder_input_size(config, dataset),
        "crop_fraction": encoder_crop_fraction(config, dataset),
        "interpolation": config["features"]["interpolation"],
    }


def extract_splits(
    encoder: Encoder, store: ImageStore, config: dict[str, Any], desc: str, dataset: str | None = None
) -> dict[str, SplitFeatures]:
    """The features of every split of ``store``, the downstream dataset ``dataset`` (see the module docstring)."""
    feat = config["features"]
    splits = {name: store.split(name) for name in SPLITS if name in store.manifest["splits"]}
    total = sum(len(indices) for indices in splits.values())
    out = {}
    with progress_bar(total, desc=desc, unit="img") as bar:
        for name, indices in splits.items():
            batches = PreprocessedBatches(store, indices, feat["batch_size"], preprocessing(config, dataset))
            loader = DataLoader(batches, batch_size=None, shuffle=False, num_workers=feat["num_workers"])
            chunks = []
            for images in loader:
                chunks.append(encoder(images))
                bar.update(len(images))
            features = torch.cat(chunks).numpy() if chunks else None
            out[name] = SplitFeatures(features, store.labels[indices], indices)
    dim = next((s.features.shape[1] for s in out.values() if s.features is not None), None)
    if dim is None:
        raise GensslError(f"{store.path}: no images in any split to extract features of")
    empty = np.zeros((0, dim), np.float32)
    return {name: s if s.features is not None else SplitFeatures(empty, s.labels, s.indices) for name, s in out.items()}


def _dataset_meta(name: str, data_dir: Path, store: ImageStore) -> dict[str, Any]:
    return {"name": name, "manifest_sha256": sha256_file(data_dir / MANIFEST), "classes": store.classes}


def _open_store(data_dir: str | os.PathLike[str]) -> tuple[Path, ImageStore]:
    data_dir = Path(data_dir)
    if not (data_dir / MANIFEST).is_file():
        raise GensslError(f"{data_dir}: no prepared dataset store; prepare it first (genssl prepare)")
    return data_dir, ImageStore(data_dir)


def check_backbone(recorded: dict[str, Any], expected: dict[str, Any], path: Path) -> None:
    """Refuse an encoder whose recorded backbone differs from the config's ``pretrain.backbone``, naming the keys."""
    keys = sorted(k for k in set(recorded) | set(expected) if recorded.get(k) != expected.get(k))
    if keys:
        detail = "; ".join(
            f"pretrain.backbone.{k}: encoder {recorded.get(k)!r}, config {expected.get(k)!r}" for k in keys
        )
        raise GensslError(f"{path}: the encoder does not match the configured backbone ({detail})")


def _encoder_function(backbone: torch.nn.Module, device: torch.device, dtype: torch.dtype | None) -> Encoder:
    backbone = backbone.to(device).eval()

    @torch.inference_mode()
    def run(images: torch.Tensor) -> torch.Tensor:
        pixels = to_float_images(images).to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            return encode(backbone, pixels).float().cpu()

    return run


def extract_encoder_features(
    config: dict[str, Any],
    downstream: str,
    encoder_path: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
) -> dict[str, Any]:
    """Features of the SSL encoder ``encoder_path`` on every split of ``downstream``'s store ``data_dir``, written to
    ``out_path``; returns the file's metadata. The encoder must match ``pretrain.backbone``."""
    dataset_config(config, downstream)
    encoder_path = Path(encoder_path)
    data_dir, store = _open_store(data_dir)
    backbone, backbone_config, _ = load_encoder(encoder_path)
    check_backbone(backbone_config, config["pretrain"]["backbone"], encoder_path)
    device = devices.select_device(config["features"]["device"], "features.device")
    dtype = devices.autocast_dtype(config["features"]["precision"], device)
    meta = {
        "encoder": {"kind": "pretrained", "file": str(encoder_path), "sha256": sha256_file(encoder_path)},
        "dataset": _dataset_meta(downstream, data_dir, store),
        "preprocessing": preprocessing(config, downstream),
    }
    return _extract(_encoder_function(backbone, device, dtype), store, config, meta, out_path, downstream)


def extract_conditioning_features(
    config: dict[str, Any],
    downstream: str,
    generator: str,
    data_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    weights_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Features of generator ``generator``'s conditioning encoder on every split of ``downstream``, written to
    ``out_path``; returns the file's metadata."""
    from genssl.generate.registry import TRAINED, load_generator

    dataset_config(config, downstream)
    gen = generator_config(config, generator)
    if gen["backend"] in TRAINED and weights_dir is None:
        raise ConfigError(f"generators.{generator}: backend {gen['backend']} needs its trained weights (--weights)")
    data_dir, store = _open_store(data_dir)
    model = load_generator(generator, gen, None if weights_dir is None else Path(weights_dir))

    def run(images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(model.conditioning_features(images.numpy()), dtype=np.float32))

    meta = {
        "encoder": {"kind": "conditioning", "generator": generator, "backend": gen["backend"]},
        "dataset": _dataset_meta(downstream, data_dir, store),
        "preprocessing": preprocessing(config, downstream),
    }
    return _extract(run, store, config, meta, out_path, downstream)


def _extract(
    encoder: Encoder,
    store: ImageStore,
    config: dict[str, Any],
    meta: dict[str, Any],
    out_path: str | os.PathLike[str],
    downstream: str,
) -> dict[str, Any]:
    """Extract, add the feature dimension to ``meta``, write the file; return ``meta``."""
    started = time.perf_counter()
    splits = extract_splits(encoder, store, config, desc=f"features {downstream}", dataset=downstream)
    meta = {**meta, "feature_dim": int(next(iter(splits.values())).features.shape[1]), "code": code_version()}
    save_feature_set(out_path, splits, meta)
    seconds = time.perf_counter() - started
    n = sum(len(s.indices) for s in splits.values())
    log.info(
        "%s: %d images -> %d-dim features in %.1f s (%.0f images/s)",
        out_path,
        n,
        meta["feature_dim"],
        seconds,
        n / max(seconds, 1e-9),
    )
    return meta
