"""The shared pretraining loop: every method (:mod:`genssl.methods`) trains through :func:`pretrain`.

Per step: read a batch of the store's train split -> move it to the device -> the method's standard views,
computed as batched tensor ops on the device (:mod:`genssl.augment`) -> ``loss = method(views, indices)`` under
autocast (CUDA) -> backward, optional gradient clipping, optimiser step (SGD / LARS / AdamW, lr = base lr x
batch / 256 on a warm-up + cosine schedule) -> the method's momentum updates.

Determinism: model initialisation, data order and every view's random parameters derive from
``(seed, stage, ...)`` (:func:`genssl.seeding.derive_seed`) and the epoch and step, never from wall-clock state.
A checkpoint is saved every ``checkpoint_every`` epochs; :func:`pretrain` resumes from the last one in its output
directory (if it was made with the same configuration), so on the CPU a run that is killed and restarted ends
with the same bytes in ``encoder.safetensors`` as one that never stopped.
"""

import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genssl import __version__, devices
from genssl.atomic import atomic_file
from genssl.augment import BatchAugment, view_specs
from genssl.config import dataset_config
from genssl.distributed import convert_sync_batchnorm, init_from_env, is_distributed
from genssl.errors import ConfigError, GensslError
from genssl.generate.variant_store import VariantStore, fingerprint
from genssl.methods import METHODS, Method, RunContext, build_method
from genssl.models import build_backbone
from genssl.models.encoder_file import save_encoder
from genssl.optim import WarmupCosine, build_optimizer, decay_groups, scaled_lr
from genssl.progress import progress
from genssl.seeding import derive_seed
from genssl.store import ImageStore
from genssl.train.checkpoint import load_checkpoint, read_trainer_state, save_checkpoint
from genssl.train.data import StoreBatches, training_loader
from genssl.train.generative import GenerativeBatches, VariantChoice, mode_views

log = logging.getLogger(__name__)

ENCODER = "encoder.safetensors"
CHECKPOINT = "checkpoint"
METRICS = "metrics.csv"
RUN = "run.json"
#: Columns of metrics.csv, one row per epoch.
METRIC_FIELDS = ("epoch", "loss", "lr", "seconds", "images_per_second")


class NonFiniteLossError(GensslError):
    """The loss became NaN or infinite; the message names the epoch and step."""


def run_config(config: dict[str, Any], method: str, augmentation: str, seed: int | None = None) -> dict[str, Any]:
    """The part of the study configuration that determines one pretraining run (what its checkpoint must match).

    ``seed`` (default: the config's ``seed``) seeds the run's own draws: initialisation, data order, views and
    variant choices; ``data_seed``, the config's ``seed``, is the seed the data splits and variants were made with.
    """
    if method not in config["methods"]:
        known = ", ".join(sorted(config["methods"])) or "(none)"
        raise ConfigError(
            f"methods.{method}: not configured; configured methods: {known} (implemented: {', '.join(sorted(METHODS))})"
        )
    if augmentation not in config["augmentations"]:
        known = ", ".join(sorted(config["augmentations"]))
        raise ConfigError(f"augmentations.{augmentation}: not configured; configured: {known}")
    dataset = config["pretrain"]["dataset"]
    generator = config["augmentations"][augmentation].get("generator")
    aug = {k: v for k, v in config["augmentations"][augmentation].items() if k != "methods"}
    return {
        "seed": config["seed"] if seed is None else seed,
        "data_seed": config["seed"],
        "dataset": dataset,
        "data": dataset_config(config, dataset),
        "pretrain": config["pretrain"],
        "method": method,
        "method_config": config["methods"][method],
        "augmentation": augmentation,
        "augmentation_config": aug,
        "generator_config": None if generator is None else config["generators"][generator],
    }


def _digest(cfg: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()


def _optimizer(method: Method, cfg: dict[str, Any], lr: float) -> torch.optim.Optimizer:
    """The method's optimiser: its first param group at the method's settings, further groups (e.g. SimSiam's
    predictor) split the same way and carrying their options (``fixed_lr``)."""
    (main, _), *others = method.param_groups()
    extra = [
        group
        for named, options in others
        for group in decay_groups(named, cfg["optimizer"], cfg["weight_decay"], cfg["exclude_bias_n_norm"], **options)
    ]
    return build_optimizer(
        main,
        cfg["optimizer"],
        lr=lr,
        weight_decay=cfg["weight_decay"],
        momentum=cfg["momentum"],
        eta=cfg["eta"],
        betas=tuple(cfg["betas"]),
        exclude_bias_n_norm=cfg["exclude_bias_n_norm"],
        extra_groups=extra,
        eps=cfg["eps"],
    )


def _training_data(
    cfg: dict[str, Any],
    store: ImageStore,
    data_dir: str | os.PathLike[str],
    variants_dir: str | os.PathLike[str] | None,
    train_indices: np.ndarray,
    n_views: int,
) -> tuple[StoreBatches, bool]:
    """The training dataset, and whether it uses generated variants (a generator and p > 0). The variant store's
    fingerprint must match the data store, generator settings and seed; the generator's weights hash is taken
    from the store (pretraining does not read the weights; Snakemake reruns generation when they change)."""
    aug = cfg["augmentation_config"]
    generator = aug.get("generator")
    if generator is None or aug["p"] == 0:
        return StoreBatches(store, train_indices), False
    path = Path(variants_dir or f"results/augment/{cfg['dataset']}/{generator}")
    variants = VariantStore(path)
    expected = fingerprint(data_dir, generator, cfg["generator_config"], cfg["data_seed"], None)
    variants.check({**expected, "weights_sha256": variants.fingerprint.get("weights_sha256")})
    if variants.images.shape != store.shape:
        raise GensslError(f"{path}: variants of shape {variants.images.shape}, the training images are {store.shape}")
    choice = VariantChoice(variants.k, aug["p"], aug["views"], n_views, cfg["seed"])
    return GenerativeBatches(store, train_indices, variants, choice), True


def train_step(
    model: nn.Module,
    method: Method,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    augment: BatchAugment,
    images: torch.Tensor,
    indices: torch.Tensor,
    generator: torch.Generator,
    step: int,
    total_steps: int,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    grad_clip: float = 0.0,
) -> torch.Tensor:
    """One optimiser step on a uint8 batch already on the device: views, loss, backward, [clip,] step, momentum.

    ``model`` is ``method`` or its DDP wrapper; ``step`` counts from 0. Returns the detached loss; raises
    ``FloatingPointError`` if it is not finite (before any parameter changes).
    """
    views = augment(images, generator)
    if channels_last:
        views = [v.contiguous(memory_format=torch.channels_last) for v in views]
    with torch.autocast(images.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        loss = model(views, indices)
    loss = loss.float()
    if not torch.isfinite(loss.detach()).item():
        raise FloatingPointError(f"the loss is {loss.item()}")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(method.parameters(), grad_clip)
    scale = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    method.update_external(step + 1, scale, skipped=scaler.get_scale() < scale)  # the scaler lowers it on a skip
    method.after_step(step + 1, total_steps)
    return loss.detach()


def pretrain(
    config: dict[str, Any],
    method_name: str,
    augmentation: str,
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    variants_dir: str | os.PathLike[str] | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Pretrain ``method_name`` with ``augmentation`` on the store ``data_dir``; write ``out_dir``; return run.json.
    ``seed`` is the run's seed (default: the config's ``seed``; :func:`run_config`).

    An augmentation with a ``generator`` reads its variant store ``variants_dir`` (default
    ``results/augment/{dataset}/{generator}``), which must have been made from ``data_dir`` with the configured
    generator settings and seed."""
    cfg = run_config(config, method_name, augmentation, seed)
    pcfg, mcfg = cfg["pretrain"], cfg["method_config"]
    seed = cfg["seed"]
    out = Path(out_dir)
    digest = _digest(cfg)

    device = devices.select_device(pcfg["device"], "pretrain.device", int(os.environ.get("LOCAL_RANK", "0")))
    rank, world, _ = init_from_env(device.type)
    main_process = rank == 0
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    else:
        torch.backends.cudnn.benchmark = not pcfg["cudnn_deterministic"]
        torch.backends.cudnn.deterministic = pcfg["cudnn_deterministic"]
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    store = ImageStore(data_dir)
    if store.shape is None:
        raise ConfigError(
            f"datasets.{cfg['dataset']}: pretraining needs a store of one image shape (resize "
            f"center_crop or stretch); {data_dir} holds images of varying size"
        )
    train_indices = store.split("train")
    batch = mcfg.get("batch_size", pcfg["batch_size"])
    key = "methods." + method_name + ".batch_size" if "batch_size" in mcfg else "pretrain.batch_size"
    if batch > len(train_indices):
        raise ConfigError(
            f"{key}: batch of {batch} is larger than the {len(train_indices)} training images of {cfg['dataset']}"
        )
    if batch % world:
        raise ConfigError(f"{key}: batch of {batch} is not divisible by the {world} processes")
    local_batch = batch // world
    steps_per_epoch = len(train_indices) // batch
    total_steps = steps_per_epoch * pcfg["epochs"]
    warmup_steps = min(total_steps, round(pcfg["warmup_epochs"] * steps_per_epoch))

    lr = scaled_lr(mcfg["lr"], batch)
    schedule = WarmupCosine(total_steps, warmup_steps, pcfg["warmup_start"], pcfg["min_lr_factor"])
    context = RunContext(
        num_samples=len(train_indices),
        total_steps=total_steps,
        lr=lambda t: lr * schedule.factor(t - 1),
        out_dir=out,
        seed=seed,
    )
    torch.manual_seed(derive_seed(seed, "init", method_name))
    backbone, feature_dim = build_backbone(pcfg["backbone"])
    method = build_method(method_name, backbone, feature_dim, mcfg, context)
    if pcfg["sync_bn"] and world > 1:
        method = convert_sync_batchnorm(method, device.type)
    method.to(device)
    channels_last = device.type == "cuda" and pcfg["channels_last"]
    if channels_last:
        method.to(memory_format=torch.channels_last)
    optimizer = _optimizer(method, mcfg, lr)
    autocast_dtype = devices.autocast_dtype(pcfg["precision"], device)
    scaler = torch.amp.GradScaler("cuda", enabled=autocast_dtype == torch.float16)
    model: nn.Module = method
    if world > 1:
        model = nn.parallel.DistributedDataParallel(
            method, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
        )

    checkpoint_dir = out / CHECKPOINT
    start_epoch, metrics = 0, []
    previous = read_trainer_state(checkpoint_dir)
    if previous is not None and previous.get("config_digest") == digest:
        state = load_checkpoint(checkpoint_dir, method, optimizer)
        start_epoch, metrics = state["epoch"], state["metrics"]
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        method.open_external(checkpoint_dir, state["step"])
        log.info("resuming %s/%s from the checkpoint after epoch %d", method_name, augmentation, start_epoch)
    else:
        if previous is not None:
            log.warning("ignoring checkpoint %s: it was made with another configuration", checkpoint_dir)
        method.open_external(None, 0)

    views = view_specs(mcfg["views"])
    dataset, generative = _training_data(cfg, store, data_dir, variants_dir, train_indices, len(views))
    if cfg["generator_config"] is not None:
        views = mode_views(views, cfg["augmentation_config"]["mode"])
    augment = BatchAugment(views, out_size=store.shape[0])
    loader, sampler = training_loader(
        dataset,
        local_batch,
        derive_seed(seed, "order", method_name) % 2**31,
        rank,
        world,
        pcfg["num_workers"],
        pin_memory=device.type == "cuda",
        with_epoch=generative,
    )
    log.info(
        "pretraining %s (%s) on %s: %d images, batch %d (x%d processes), %d epochs of %d steps, %s on %s",
        method_name,
        augmentation,
        cfg["dataset"],
        len(train_indices),
        batch,
        world,
        pcfg["epochs"],
        steps_per_epoch,
        autocast_dtype or torch.float32,
        device,
    )

    completed = False
    try:
        method.train()
        for epoch in range(start_epoch, pcfg["epochs"]):
            sampler.set_epoch(epoch)
            started = time.perf_counter()
            loss_sum = torch.zeros((), device=device)
            lr = 0.0
            bar = progress(loader, total=steps_per_epoch, desc=f"{method_name} epoch {epoch + 1}", unit="batch")
            with contextlib.closing(bar) as batches:  # the bar closes also when a step raises
                for step_in_epoch, (images, indices) in enumerate(batches):
                    step = epoch * steps_per_epoch + step_in_epoch
                    schedule.set_step(optimizer, step)
                    lr = optimizer.param_groups[0]["lr"]
                    generator = torch.Generator().manual_seed(
                        derive_seed(seed, "views", method_name, epoch, step_in_epoch, rank)
                    )
                    try:
                        loss = train_step(
                            model,
                            method,
                            optimizer,
                            scaler,
                            augment,
                            images.to(device, non_blocking=True),
                            indices.to(device, non_blocking=True),
                            generator,
                            step,
                            total_steps,
                            autocast_dtype,
                            channels_last,
                            pcfg["grad_clip"],
                        )
                    except FloatingPointError as err:
                        kept = checkpoint_dir if checkpoint_dir.exists() else "(none saved yet)"
                        raise NonFiniteLossError(
                            f"{method_name}/{augmentation}: {err} at epoch {epoch + 1}, step {step_in_epoch + 1} of "
                            f"{steps_per_epoch} (global step {step + 1}); the last good checkpoint is kept in {kept}"
                        ) from None
                    loss_sum += loss
            if is_distributed():
                torch.distributed.all_reduce(loss_sum)
                loss_sum /= world
            seconds = time.perf_counter() - started
            row = {
                "epoch": epoch + 1,
                "loss": float(loss_sum) / steps_per_epoch,
                "lr": lr,
                "seconds": seconds,
                "images_per_second": steps_per_epoch * batch / seconds,
            }
            metrics.append(row)
            log.info(
                "epoch %d/%d: loss %.4f, lr %.4g, %.1f s, %.0f images/s",
                epoch + 1,
                pcfg["epochs"],
                row["loss"],
                lr,
                seconds,
                row["images_per_second"],
            )
            last = epoch + 1 == pcfg["epochs"]
            if (epoch + 1) % pcfg["checkpoint_every"] == 0 or last:
                if main_process:
                    trainer_state = {
                        "epoch": epoch + 1,
                        "step": step + 1,
                        "metrics": metrics,
                        "config_digest": digest,
                        "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                    }
                    save_checkpoint(checkpoint_dir, method, optimizer, trainer_state, extra=method.save_external)
                else:
                    method.save_external(None)
                if is_distributed():
                    torch.distributed.barrier()
        completed = True
    finally:
        method.close_external(completed)

    if not metrics:
        raise GensslError(f"{method_name}/{augmentation}: no epoch was trained")
    run = {
        "dataset": cfg["dataset"],
        "method": method_name,
        "augmentation": augmentation,
        "seed": seed,
        "config": cfg,
        "versions": {
            "genssl": __version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "device": str(device),
        "world_size": world,
        "precision": str(autocast_dtype or torch.float32).removeprefix("torch."),
        "batch_size": batch,
        "steps": total_steps,
        "feature_dim": feature_dim,
        "final": {
            "loss": metrics[-1]["loss"],
            "epochs": len(metrics),
            "seconds": sum(m["seconds"] for m in metrics),
            "images_per_second": float(np.mean([m["images_per_second"] for m in metrics])),
            **devices.peak_memory(device),
        },
    }
    if main_process:
        save_encoder(out / ENCODER, method.backbone, pcfg["backbone"], feature_dim)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=METRIC_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(metrics)
        with atomic_file(out / METRICS) as tmp:
            tmp.write_text(buffer.getvalue())
        with atomic_file(out / RUN) as tmp:
            tmp.write_text(json.dumps(run, indent=2, sort_keys=True) + "\n")
    return run
