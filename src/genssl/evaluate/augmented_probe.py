"""The paper's linear-probe protocol: a linear layer on the frozen backbone, trained on augmented images.

Each of ``probe.augmented.epochs`` (or the dataset's ``epochs_by_dataset``) epochs visits the train split in a
seeded random order (``derive_seed(seed, "probe", "order", epoch)``) in batches of ``probe.augmented.batch_size``.
A batch is brought to a square of side ``input_size / crop_fraction`` (the dataset's: ``features.by_dataset``;
shorter side resized, centre square; a no-op when the store already holds images of that size), then one view
is drawn per image, random resized crop to ``input_size`` (area fraction ``crop_scale``) and horizontal flip
(``flip_p``), from ``derive_seed(seed, "probe", "views", epoch, step)``, and normalised as the pretraining views
are. The backbone (eval mode: batch-norm statistics frozen, no gradient) gives features f, the layer scores
W f + b, and the cross-entropy is minimised by SGD (momentum) or LARS (``eta``, ``clip_lr``,
``exclude_bias_n_norm``) at ``lr x batch / 256`` on a linear warm-up + cosine schedule per step. The trained
layer is scored on the cached test (and val) features of the feature file, which were extracted by the same
encoder with the deterministic evaluation preprocessing.
"""

import logging
import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genssl import devices
from genssl.augment import BatchAugment
from genssl.augment.pipeline import ViewSpec
from genssl.config import encoder_crop_fraction, encoder_input_size
from genssl.evaluate.feature_file import FeatureSet
from genssl.evaluate.knn import topk_accuracy
from genssl.evaluate.preprocess import preprocess_batch
from genssl.models.encoder_file import load_encoder
from genssl.optim import WarmupCosine, build_optimizer, scaled_lr
from genssl.progress import progress
from genssl.seeding import derive_seed
from genssl.store import ImageStore

log = logging.getLogger(__name__)


def _read(store: ImageStore, indices: np.ndarray, side: int, interpolation: str) -> torch.Tensor:
    """uint8 (B, side, side, 3): the images, shorter side resized to ``side`` and centre-cropped."""
    images = store.get_batch(indices) if store.shape is not None else [store[int(i)] for i in indices]
    return torch.from_numpy(preprocess_batch(images, side, 1.0, interpolation))


def _scores(layer: nn.Linear, features: np.ndarray, device: torch.device) -> torch.Tensor:
    with torch.no_grad():
        return layer(torch.from_numpy(features).to(device)).float().cpu()


def augmented_probe(
    config: dict[str, Any], encoder_path: str | os.PathLike[str], data_dir: str | os.PathLike[str], features: FeatureSet
) -> dict[str, Any]:
    """Train the linear layer (module docstring); return top1 and top5 on the test split, val top-1, the losses."""
    settings, seed = config["probe"]["augmented"], config["seed"]
    dataset = features.meta["dataset"]["name"]
    epochs = settings["epochs_by_dataset"].get(dataset, settings["epochs"])
    store = ImageStore(data_dir)
    train, val, test = features.split("train"), features.split("val"), features.split("test")
    classes = len(features.meta["dataset"]["classes"])
    device = devices.select_device(config["features"]["device"], "features.device")
    dtype = devices.autocast_dtype(config["features"]["precision"], device)
    backbone, _, dim = load_encoder(encoder_path)
    backbone.to(device).eval().requires_grad_(False)

    torch.manual_seed(derive_seed(seed, "probe", "init"))
    layer = nn.Linear(dim, classes).to(device)
    nn.init.normal_(layer.weight, std=0.01)
    nn.init.zeros_(layer.bias)
    batch = min(settings["batch_size"], len(train.indices))
    optimizer = build_optimizer(
        layer.named_parameters(),
        settings["optimizer"],
        lr=scaled_lr(settings["lr"], batch),
        weight_decay=settings["weight_decay"],
        momentum=settings["momentum"],
        eta=settings["eta"],
        exclude_bias_n_norm=settings["exclude_bias_n_norm"],
        clip_lr=settings["clip_lr"],
    )
    steps_per_epoch = -(-len(train.indices) // batch)
    total = steps_per_epoch * epochs
    schedule = WarmupCosine(total, min(total, round(settings["warmup_epochs"] * steps_per_epoch)))
    size = encoder_input_size(config, dataset)
    side = round(size / encoder_crop_fraction(config, dataset))
    view = ViewSpec(
        crop_scale=tuple(settings["crop_scale"]),
        flip_p=settings["flip_p"],
        jitter_p=0.0,
        grayscale_p=0.0,
        blur_p=0.0,
        solarize_p=0.0,
    )
    augment = BatchAugment([view], out_size=size)
    labels = torch.from_numpy(train.labels).long()
    losses = []
    for epoch in progress(range(epochs), desc="augmented probe", unit="epoch"):
        order = torch.randperm(
            len(train.indices), generator=torch.Generator().manual_seed(derive_seed(seed, "probe", "order", epoch))
        )
        total_loss = 0.0
        for step in range(steps_per_epoch):
            positions = order[step * batch : (step + 1) * batch]
            images = _read(store, train.indices[positions.numpy()], side, config["features"]["interpolation"])
            generator = torch.Generator().manual_seed(derive_seed(seed, "probe", "views", epoch, step))
            (pixels,) = augment(images.to(device), generator)
            with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                feats = backbone(pixels)
            schedule.set_step(optimizer, epoch * steps_per_epoch + step)
            loss = F.cross_entropy(layer(feats.float()), labels[positions].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += float(loss.detach()) * len(positions)
        losses.append(total_loss / len(train.indices))
        log.info("augmented probe epoch %d/%d: loss %.4f", epoch + 1, epochs, losses[-1])
    test_accuracy = topk_accuracy(_scores(layer, test.features, device), torch.from_numpy(test.labels).long())
    val_accuracy = topk_accuracy(_scores(layer, val.features, device), torch.from_numpy(val.labels).long())
    return {
        "top1": test_accuracy[1],
        "top5": test_accuracy[5],
        "val_top1": val_accuracy[1],
        "training": {**settings, "epochs": epochs, "losses": losses},
    }
