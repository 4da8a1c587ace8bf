"""The shared pretraining loop: every method (:mod:`genssl.methods`) trains through :func:`pretrain`.

Per forward pass: read a batch of the store's train split and draw the random parameters of its views (in the loader,
in a worker process when there are workers) -> move both to the device -> the method's standard views, computed as
batched tensor ops on the device (:mod:`genssl.augment`) -> ``loss = method(views, indices)`` under
autocast (CUDA) -> backward of ``loss / k``. After ``k`` passes (``methods.X.accumulate_steps``; DDP synchronises
the gradients in the last one only): optional gradient clipping, optimiser step (SGD / LARS / AdamW at the
:class:`~genssl.train.plan.StepPlan`'s lr on a warm-up + cosine schedule) -> the method's momentum updates.

Determinism: model initialisation, data order and every view's random parameters derive from
``(seed, stage, ...)`` (:func:`genssl.seeding.derive_seed`) and the epoch and step, never from wall-clock state.
A checkpoint is saved every ``checkpoint_every`` epochs; :func:`pretrain` resumes from the last one in its output
directory when it holds an unfinished run of the same identity (:func:`run_identity`: configuration slice, content
of the inputs, code version), so on the CPU a run that is killed and restarted ends with the same bytes in
``encoder.safetensors`` as one that never stopped. Any other checkpoint is set aside (renamed to
``checkpoint.set-aside``, the reason logged and written beside it) and the run starts afresh: a checkpoint of other
data, settings or code, or of a finished run (a rerun of a finished run, e.g. ``snakemake --forcerun pretrain``,
trains again); ``pretrain.resume: never`` never resumes.
"""

import contextlib
import csv
import io
import json
import logging
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genssl import __version__, devices
from genssl.atomic import atomic_file
from genssl.augment import BatchAugment, view_specs
from genssl.distributed import convert_sync_batchnorm, is_distributed
from genssl.errors import ConfigError, GensslError
from genssl.generate.variant_store import VariantStore, fingerprint
from genssl.methods import Method, RunContext, build_method
from genssl.models.encoder_file import save_encoder
from genssl.models.initialisation import initial_backbone
from genssl.optim import WarmupCosine, build_optimizer, decay_groups
from genssl.progress import progress
from genssl.provenance import differences, record, store_identity
from genssl.seeding import derive_seed
from genssl.stages import CHECKPOINT, ENCODER, METRICS, RUN_RECORD, config_slice, pretrain_keys
from genssl.store import ImageStore
from genssl.train.backend import Backend, setup_backend
from genssl.train.checkpoint import load_checkpoint, read_trainer_state, save_checkpoint
from genssl.train.data import BatchViews, StoreBatches, training_loader
from genssl.train.finite import NonFiniteWatch
from genssl.train.generative import GenerativeBatches, VariantChoice, mode_views, uses_variants
from genssl.train.plan import StepPlan
from genssl.train.prefetch import DevicePrefetcher

log = logging.getLogger(__name__)

#: Columns of metrics.csv, one row per epoch.
METRIC_FIELDS = ("epoch", "loss", "lr", "seconds", "images_per_second")


class NonFiniteLossError(GensslError):
    """The loss became NaN or infinite; the message names the epoch and step."""


def run_identity(
    config: dict[str, Any], method: str, augmentation: str, seed: int, store: ImageStore, variants: VariantStore | None
) -> dict[str, Any]:
    """What determines one pretraining run (what its checkpoint must match, recorded in run.json): the run, the
    pretraining stage's slice of the configuration (:func:`genssl.stages.pretrain_keys`), the content identity of
    its inputs (the data store and the variant store it reads) and the code version. ``seed`` seeds the run's own
    draws (initialisation, data order, views, variant choices); the slice's ``seed`` is the one the data splits
    and variants were made with."""
    slice_ = config_slice(config, pretrain_keys(config, method, augmentation))
    inputs = {
        "data": store_identity(store.path),
        "variants": None if variants is None else store_identity(variants.path),
    }
    return {"method": method, "augmentation": augmentation, "seed": seed, **record(slice_, inputs)}


def method_optimizer(method: Method, cfg: dict[str, Any], lr: float) -> torch.optim.Optimizer:
    """The method's optimiser at its config ``cfg``: its first param group at the method's settings, further groups
    (e.g. SimSiam's predictor) split the same way and carrying their options (``fixed_lr``)."""
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
        clip_lr=cfg["clip_lr"],
    )


def _training_store(config: dict[str, Any], data_dir: str | os.PathLike[str]) -> ImageStore:
    store = ImageStore(data_dir)
    if store.shape is None:
        dataset = config["pretrain"]["dataset"]
        raise ConfigError(
            f"datasets.{dataset}: pretraining needs a store of one image shape (resize center_crop or stretch); "
            f"{data_dir} holds images of varying size"
        )
    return store


def _training_data(
    config: dict[str, Any],
    method: str,
    augmentation: str,
    seed: int,
    store: ImageStore,
    variants_dir: str | os.PathLike[str] | None,
) -> tuple[StoreBatches, VariantStore | None]:
    """The training split, and the variant store it reads (a generator and p > 0; else None). The variant store's
    fingerprint must match the data store, generator settings and seed; the generator's weights hash is taken
    from the store (pretraining does not read the weights; Snakemake reruns generation when they change)."""
    aug = config["augmentations"][augmentation]
    train_indices = store.split("train")
    if not uses_variants(aug):
        return StoreBatches(store, train_indices), None
    generator = aug["generator"]
    if variants_dir is None:
        raise GensslError(f"augmentations.{augmentation} uses generator {generator}: give its variant store")
    variants = VariantStore(variants_dir)
    expected = fingerprint(store.path, generator, config["generators"][generator], config["seed"], None)
    variants.check({**expected, "weights_sha256": variants.fingerprint.get("weights_sha256")})
    if variants.images.shape != store.shape:
        raise GensslError(
            f"{variants_dir}: variants of shape {variants.images.shape}, the training images are {store.shape}"
        )
    n_views = len(view_specs(config["methods"][method]["views"]))
    choice = VariantChoice(variants.k, aug["p"], aug["views"], n_views, seed, aug["assignment"])
    return GenerativeBatches(store, train_indices, variants, choice), variants


@dataclass
class Training:
    """One run being trained: its name (``method/augmentation``) and seed, the method (and its DDP wrapper
    ``model``), optimiser, loss scaler, lr schedule and view pipeline, on ``backend`` following ``plan``; its
    checkpoint directory, epochs and gradient clipping."""

    name: str
    seed: int
    method: Method
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    schedule: WarmupCosine
    augment: BatchAugment
    plan: StepPlan
    backend: Backend
    checkpoint_dir: Path
    epochs: int
    grad_clip: float
    finite_check_every: int


def _build_training(
    config: dict[str, Any], name: str, seed: int, plan: StepPlan, backend: Backend, out: Path, image_size: int
) -> Training:
    """The method initialised from ``(seed, "init", method)``, on the backend's device and layout, with its
    optimiser, scaler, schedule and views (under the augmentation's ``mode`` for a generative one)."""
    method_name, augmentation = name.split("/")
    pcfg, mcfg = config["pretrain"], config["methods"][method_name]
    schedule = WarmupCosine(plan.total_steps, plan.warmup_steps, pcfg["warmup_start"], pcfg["min_lr_factor"])
    context = RunContext(
        num_samples=plan.num_train,
        total_steps=plan.total_steps,
        lr=lambda t: plan.lr * schedule.factor(t - 1),
        out_dir=out,
        seed=seed,
    )
    backbone, feature_dim = initial_backbone(pcfg["backbone"], method_name, seed)
    method = build_method(method_name, backbone, feature_dim, mcfg, context)
    if pcfg["sync_bn"] and backend.world_size > 1:
        method = convert_sync_batchnorm(method, backend.device.type)
    method.to(backend.device)
    if backend.channels_last:
        method.to(memory_format=torch.channels_last)
    model: nn.Module = method
    if backend.world_size > 1:
        device_ids = [backend.device.index] if backend.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(method, device_ids=device_ids, broadcast_buffers=False)
    if pcfg["compile"]:
        model = torch.compile(model)
    views = view_specs(mcfg["views"])
    if config["augmentations"][augmentation].get("generator") is not None:
        views = mode_views(views, config["augmentations"][augmentation]["mode"])
    return Training(
        name=name,
        seed=seed,
        method=method,
        model=model,
        optimizer=method_optimizer(method, mcfg, plan.lr),
        scaler=torch.amp.GradScaler("cuda", enabled=backend.autocast_dtype == torch.float16),
        schedule=schedule,
        augment=BatchAugment(
            views, out_size=image_size, compile=pcfg["compile_views"], cuda_graph=pcfg["cuda_graph_views"]
        ),
        plan=plan,
        backend=backend,
        checkpoint_dir=out / CHECKPOINT,
        epochs=pcfg["epochs"],
        grad_clip=pcfg["grad_clip"],
        finite_check_every=pcfg["finite_check_every"],
    )


def forward_backward(
    model: nn.Module,
    scaler: torch.amp.GradScaler,
    augment: BatchAugment,
    images: torch.Tensor,
    indices: torch.Tensor,
    view_params: torch.Tensor,
    accumulate_steps: int = 1,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """One forward pass of a uint8 batch already on the device (its views made with ``view_params``, from
    :meth:`~genssl.augment.BatchAugment.draw`) and its backward, adding ``grad(loss / k)`` (k = ``accumulate_steps``,
    scaled by ``scaler``) to the parameters' gradients: over the k forward passes of an optimiser step the gradient
    is the mean of theirs, which for a loss that is a mean over its batch's images is the gradient of one pass over
    all ``k B`` images. Returns the detached loss of this pass, without waiting for it."""
    views = augment.apply(images, view_params)
    if channels_last:
        views = [v.contiguous(memory_format=torch.channels_last) for v in views]
    with torch.autocast(images.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        loss = model(views, indices)
    loss = loss.float()
    scaler.scale(loss / accumulate_steps if accumulate_steps > 1 else loss).backward()
    return loss.detach()


def optimizer_step(
    method: Method,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    step: int,
    total_steps: int,
    grad_clip: float = 0.0,
) -> None:
    """The optimiser step on the gradients accumulated since ``optimizer.zero_grad``: [clip,] step, the method's
    external update and momentum updates (``step`` counts from 0). The loss scale is read to the host only for a
    method with an external update (:attr:`~genssl.methods.base.Method.updates_external`)."""
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(method.parameters(), grad_clip)
    scale = scaler.get_scale() if method.updates_external else None
    scaler.step(optimizer)
    scaler.update()
    if scale is not None:
        method.update_external(step + 1, scale, skipped=scaler.get_scale() < scale)  # the scaler lowers it on a skip
    method.after_step(step + 1, total_steps)


def train_step(
    model: nn.Module,
    method: Method,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    augment: BatchAugment,
    images: torch.Tensor,
    indices: torch.Tensor,
    view_params: torch.Tensor,
    step: int,
    total_steps: int,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    grad_clip: float = 0.0,
) -> torch.Tensor:
    """One optimiser step of one forward pass (no accumulation) on a uint8 batch already on the device: views
    (made with ``view_params``, from :meth:`~genssl.augment.BatchAugment.draw`), loss, backward, [clip,] step, momentum.

    ``model`` is ``method`` or its DDP wrapper; ``step`` counts from 0. Returns the detached loss, without waiting
    for it: nothing here synchronises the host with the device (a non-finite loss is watched on the device by the
    caller, :class:`genssl.train.finite.NonFiniteWatch`).
    """
    optimizer.zero_grad(set_to_none=True)
    loss = forward_backward(model, scaler, augment, images, indices, view_params, 1, autocast_dtype, channels_last)
    optimizer_step(method, optimizer, scaler, step, total_steps, grad_clip)
    return loss


def _no_sync(model: nn.Module) -> contextlib.AbstractContextManager[Any]:
    """DDP's ``no_sync`` (gradients kept local until the step's last forward pass); nothing for a plain model."""
    no_sync = getattr(model, "no_sync", None)
    return no_sync() if no_sync is not None else contextlib.nullcontext()


def stale_reason(previous: dict[str, Any], identity: dict[str, Any], epochs: int, policy: str) -> str | None:
    """Why the checkpoint whose trainer state is ``previous`` must not be resumed by the run ``identity`` of
    ``epochs`` epochs under ``pretrain.resume`` = ``policy``; None when it may."""
    if policy == "never":
        return "pretrain.resume is 'never'"
    if "identity" not in previous:
        return "it records no identity of its inputs (made by an older genssl)"
    changed = differences(previous["identity"], identity)
    if changed:
        return f"it was made with other {', '.join(changed)}"
    if previous["epoch"] >= epochs:
        return f"it holds the finished run ({previous['epoch']} of {epochs} epochs); a rerun trains afresh"
    return None


def _set_aside(checkpoint_dir: Path, reason: str, backend: Backend) -> None:
    """Rename the checkpoint to ``checkpoint.set-aside`` (replacing an older one) with the reason in
    ``reason.txt`` (main process; the others wait)."""
    if backend.main_process:
        aside = checkpoint_dir.with_name(f"{checkpoint_dir.name}.set-aside")
        if aside.exists():
            shutil.rmtree(aside)
        os.rename(checkpoint_dir, aside)
        (aside / "reason.txt").write_text(reason + "\n")
        log.warning("set aside checkpoint %s as %s: %s; the run starts afresh", checkpoint_dir, aside, reason)
    if is_distributed():
        torch.distributed.barrier()


def _resume(training: Training, identity: dict[str, Any], policy: str) -> list[dict[str, Any]]:
    """The metrics of the epochs done: from the run's checkpoint when it may be resumed (:func:`stale_reason`),
    else none (a fresh start, any checkpoint set aside)."""
    previous = read_trainer_state(training.checkpoint_dir)
    if is_distributed():
        torch.distributed.barrier()  # every process read the state before the main one may set it aside
    reason = None if previous is None else stale_reason(previous, identity, training.epochs, policy)
    if previous is None or reason is not None:
        if reason is not None:
            _set_aside(training.checkpoint_dir, reason, training.backend)
        training.method.open_external(None, 0)
        return []
    state = load_checkpoint(training.checkpoint_dir, training.method, training.optimizer)
    if state.get("scaler"):
        training.scaler.load_state_dict(state["scaler"])
    training.method.open_external(training.checkpoint_dir, state["step"])
    log.info("resuming %s from the checkpoint after epoch %d", training.name, state["epoch"])
    return state["metrics"]


def _check_finite(training: Training, watch: NonFiniteWatch) -> None:
    """Stop the run at the first non-finite loss, naming its epoch and step and the checkpoint kept."""
    bad = watch.first()
    if bad is None:
        return
    step, loss = bad
    steps, kept = training.plan.steps_per_epoch, training.checkpoint_dir
    raise NonFiniteLossError(
        f"{training.name}: the loss is {loss} at epoch {step // steps + 1}, step {step % steps + 1} of {steps} "
        f"(global step {step + 1}); the last good checkpoint is kept in {kept if kept.exists() else '(none yet)'}"
    )


def _train_epoch(training: Training, loader: torch.utils.data.DataLoader, epoch: int) -> dict[str, Any]:
    """One epoch of optimiser steps, each of ``k`` forward passes (:class:`~genssl.train.plan.StepPlan`); returns its
    row of metrics.csv (the loss of a step is the mean of its passes'). The next batch is copied to the device while
    a pass computes, and the method may prepare it (:meth:`genssl.methods.base.Method.prefetch_external`). A
    non-finite loss stops the run (checked every ``finite_check_every`` steps and at the end) naming the step.
    The random parameters of a pass's views come with its batch (drawn by the loader:
    :class:`~genssl.train.data.BatchViews`)."""
    plan, backend, method_name = training.plan, training.backend, training.name.split("/")[0]
    k = plan.accumulate_steps
    started = time.perf_counter()
    loss_sum = torch.zeros((), device=backend.device)
    watch = NonFiniteWatch(backend.device)
    lr = 0.0
    step_losses: list[torch.Tensor] = []
    batches = DevicePrefetcher(loader, backend.device)
    bar = progress(batches, total=plan.forwards_per_epoch, desc=f"{method_name} epoch {epoch + 1}", unit="batch")
    with contextlib.closing(bar):  # the bar closes also when a step raises
        for forward, batch in enumerate(bar):
            if forward == plan.forwards_per_epoch:
                break  # the passes that would not fill an optimiser step are dropped, like the permutation's tail
            step_in_epoch, part = divmod(forward, k)
            step = epoch * plan.steps_per_epoch + step_in_epoch
            if batches.next_indices is not None:
                training.method.prefetch_external(batches.next_indices)
            if part == 0:
                training.schedule.set_step(training.optimizer, step)
                lr = training.optimizer.param_groups[0]["lr"]
                training.optimizer.zero_grad(set_to_none=True)
                step_losses.clear()
            with _no_sync(training.model) if part < k - 1 else contextlib.nullcontext():
                micro_loss = forward_backward(
                    training.model,
                    training.scaler,
                    training.augment,
                    batch.images,
                    batch.host_indices if training.method.host_indices else batch.indices,
                    batch.view_params,
                    k,
                    backend.autocast_dtype,
                    backend.channels_last,
                )
            step_losses.append(micro_loss)
            if part < k - 1:
                continue
            optimizer_step(
                training.method, training.optimizer, training.scaler, step, plan.total_steps, training.grad_clip
            )
            step_loss = step_losses[0] if k == 1 else torch.stack(step_losses).mean()
            loss_sum += step_loss
            watch.observe(step_loss, step)
            if (step_in_epoch + 1) % training.finite_check_every == 0:
                _check_finite(training, watch)
    _check_finite(training, watch)
    if is_distributed():
        torch.distributed.all_reduce(loss_sum)
        loss_sum /= backend.world_size
    seconds = time.perf_counter() - started
    row = {
        "epoch": epoch + 1,
        "loss": float(loss_sum) / plan.steps_per_epoch,
        "lr": lr,
        "seconds": seconds,
        "images_per_second": plan.steps_per_epoch * plan.images_per_step / seconds,
    }
    log.info(
        "epoch %d/%d: loss %.4f, lr %.4g, %.1f s, %.0f images/s",
        *(row["epoch"], training.epochs, row["loss"], lr, seconds, row["images_per_second"]),
    )
    return row


def _save_checkpoint(training: Training, metrics: list[dict[str, Any]], identity: dict[str, Any]) -> None:
    """The checkpoint after the last epoch of ``metrics`` (written by the main process; every process saves its
    external state)."""
    epoch = metrics[-1]["epoch"]
    if training.backend.main_process:
        state = {
            "epoch": epoch,
            "step": epoch * training.plan.steps_per_epoch,
            "metrics": metrics,
            "identity": identity,
            "scaler": training.scaler.state_dict() if training.scaler.is_enabled() else None,
        }
        save_checkpoint(
            training.checkpoint_dir, training.method, training.optimizer, state, extra=training.method.save_external
        )
    else:
        training.method.save_external(None)
    if is_distributed():
        torch.distributed.barrier()


def _run_record(identity: dict[str, Any], training: Training, metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """``run.json``: the run, its configuration slice, versions, backend, plan and final figures."""
    backend = training.backend
    return {
        "dataset": identity["config"]["pretrain"]["dataset"],
        "method": identity["method"],
        "augmentation": identity["augmentation"],
        "seed": identity["seed"],
        "config": identity["config"],
        "provenance": {"code": identity["code"], "inputs": identity["inputs"]},
        "versions": {
            "genssl": __version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "device": str(backend.device),
        "world_size": backend.world_size,
        "precision": backend.precision,
        "batch_size": training.plan.batch_size,
        "accumulate_steps": training.plan.accumulate_steps,
        "steps": training.plan.total_steps,
        "feature_dim": training.method.feature_dim,
        "final": {
            "loss": metrics[-1]["loss"],
            "epochs": len(metrics),
            "seconds": sum(m["seconds"] for m in metrics),
            "images_per_second": float(np.mean([m["images_per_second"] for m in metrics])),
            **devices.peak_memory(backend.device),
        },
    }


def _write_outputs(
    out: Path, training: Training, backbone: dict[str, Any], metrics: list[dict[str, Any]], record: dict[str, Any]
) -> None:
    """``encoder.safetensors``, ``metrics.csv`` and ``run.json``, each written atomically."""
    save_encoder(out / ENCODER, training.method.backbone, backbone, training.method.feature_dim)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(metrics)
    with atomic_file(out / METRICS) as tmp:
        tmp.write_text(buffer.getvalue())
    with atomic_file(out / RUN_RECORD) as tmp:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def pretrain(
    config: dict[str, Any],
    method_name: str,
    augmentation: str,
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    variants_dir: str | os.PathLike[str] | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Pretrain ``method_name`` with ``augmentation`` (a run of the validated ``config``) on the store ``data_dir``;
    write ``out_dir``; return run.json. ``seed`` is the run's seed (default: the config's ``seed``). A generative
    augmentation reads the variant store ``variants_dir``, which must have been made from ``data_dir`` with the
    configured generator settings and seed."""
    seed = config["seed"] if seed is None else seed
    name, out, pcfg = f"{method_name}/{augmentation}", Path(out_dir), config["pretrain"]
    backend = setup_backend(pcfg)
    store = _training_store(config, data_dir)
    dataset, variants = _training_data(config, method_name, augmentation, seed, store, variants_dir)
    for checked in (store, variants.images if variants is not None else None):
        if checked is not None:
            checked.verify()  # every file, once, before loader workers start (they inherit the check)
    identity = run_identity(config, method_name, augmentation, seed, store, variants)
    plan = StepPlan.resolve(config, method_name, len(store.split("train")), backend.world_size)
    training = _build_training(config, name, seed, plan, backend, out, store.shape[0])
    metrics = _resume(training, identity, pcfg["resume"])
    loader, sampler = training_loader(
        dataset,
        plan.local_batch,
        derive_seed(seed, "order", method_name) % 2**31,
        backend.rank,
        backend.world_size,
        pcfg["num_workers"],
        pin_memory=backend.device.type == "cuda",
        views=BatchViews(training.augment.draws, seed, method_name, backend.rank),
    )
    log.info(
        "pretraining %s on %s: %d images, batch %d (x%d processes) x %d accumulated, %d epochs of %d steps, %s on %s",
        *(name, pcfg["dataset"], plan.num_train, plan.batch_size, backend.world_size, plan.accumulate_steps),
        *(pcfg["epochs"], plan.steps_per_epoch, backend.precision, backend.device),
    )
    completed = False
    try:
        training.method.train()
        for epoch in range(len(metrics), pcfg["epochs"]):
            sampler.set_epoch(epoch)
            metrics.append(_train_epoch(training, loader, epoch))
            if (epoch + 1) % pcfg["checkpoint_every"] == 0 or epoch + 1 == pcfg["epochs"]:
                _save_checkpoint(training, metrics, identity)
        completed = True
    finally:
        training.method.close_external(completed)
    run = _run_record(identity, training, metrics)
    if backend.main_process:
        _write_outputs(out, training, pcfg["backbone"], metrics, run)
    return run
