"""Training of an ``icdiffusion`` generator (rule train_generator), IC-GAN style.

Data: the N images x_1..x_N of the store's train split, scaled to [-1, 1], and their conditions
h_i = f(x_i) / ||f(x_i)|| from the frozen conditioning encoder f. Each step draws B images i uniformly (with
replacement), for each a target j uniformly among i's k nearest neighbours by cosine similarity of h
(:func:`~genssl.generate.neighbours.nearest_neighbours`, i itself included; k = 1 trains on i only),
a timestep t uniform in {0, ..., T - 1}, noise eps ~ N(0, I) and a drop flag with probability
``condition_dropout``, and minimises the mean squared error of the velocity (v-prediction)

    || v - v_theta(x_t, t, c_i) ||^2,  x_t = sqrt(abar_t) x_j + sqrt(1 - abar_t) eps,
    v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_j,  c_i = null if dropped else W (sqrt(D) h_i) + b

with the cosine noise schedule (``squaredcos_cap_v2``) of T = ``train_timesteps`` steps, AdamW (no weight
decay) at ``lr`` warmed up linearly over the first 5 % of the steps and decayed to 0 by a half cosine, and
gradients clipped to norm 1. Every random draw comes from generators seeded with
``derive_seed(seed, "icdiffusion", name, ...)``, so a run is a pure function of (config, seed, data, encoder)
on one device (byte for byte on the CPU).

Why v and not epsilon prediction: within the CPU budget of the default study (hundreds of steps), an
epsilon-predicting UNet learns the low-noise steps but not the high-noise ones, where x_0 = (x_t - sqrt(1 - abar_t)
eps) / sqrt(abar_t) multiplies its error by up to 1 / sqrt(abar_t) (2e4 at t = T - 1 here). Measured on digits:
after 600 steps (32 px) its samples were coloured noise with 1 % black background pixels (real images: 48 %), also
with 250 DDIM steps; after 800 steps (16 px) 8 % with the linear schedule; a v-predicting UNet after 800 steps
(16 px) gave clean strokes on 43 % background (real: 47 %). v is linear in eps given x_t, so classifier-free
guidance on v equals guidance on eps.
"""

import csv
import json
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any

import diffusers
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from genssl.atomic import atomic_directory
from genssl.generate.base import generation_device, to_float_images
from genssl.generate.conditioning import train_conditions
from genssl.generate.icdiffusion.model import ConditionedUNet, build_unet
from genssl.generate.neighbours import draw_pairs, nearest_neighbours
from genssl.generate.trained import (
    ENCODER_FILE,
    LOSSES_FILE,
    RECORD_FILE,
    input_identities,
    square_image_size,
    training_inputs,
)
from genssl.models.encoder_file import load_encoder
from genssl.progress import progress
from genssl.seeding import derive_seed

log = logging.getLogger(__name__)

SCHEDULER_DIR = "scheduler"
#: Fraction of the steps of linear learning-rate warm-up.
WARMUP_FRACTION = 0.05


def noise_scheduler(train_timesteps: int) -> DDPMScheduler:
    """The training noise schedule: cosine betas over ``train_timesteps`` steps, v-prediction."""
    return DDPMScheduler(
        num_train_timesteps=train_timesteps,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="v_prediction",
        clip_sample=True,
    )


def learning_rate(step: int, steps: int, lr: float) -> float:
    """lr x (step + 1) / w during the w = ceil(5 % of steps) warm-up steps, then lr x (1 + cos(pi p)) / 2 with p
    the fraction of the remaining steps done."""
    warmup = math.ceil(WARMUP_FRACTION * steps)
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(steps - warmup, 1)))


def train_icdiffusion(
    name: str, config: dict[str, Any], seed: int, data_dir: Path, encoder_path: Path, out_dir: Path
) -> dict[str, Any]:
    """Train generator ``name`` (its resolved config entry ``config``) on the train split of the store at
    ``data_dir``, conditioned on the encoder file ``encoder_path``; write ``out_dir`` atomically and return the
    record written to its ``generator.json``.

    ``out_dir`` holds ``unet/`` and ``condition.safetensors`` (:class:`ConditionedUNet`), ``scheduler/`` (the
    DDPM config), ``encoder.safetensors`` (a copy of the conditioning encoder), ``generator.json`` (config, seed,
    image size, k, the encoder's sha256, final loss = mean of the last 10 % of the step losses) and
    ``losses.csv`` (step, loss).
    """
    data_dir, encoder_path, out_dir = Path(data_dir), Path(encoder_path), Path(out_dir)
    train_config, k = config["train"], config["neighbours"]
    store, indices = training_inputs(name, data_dir, encoder_path, k)
    levels = len(config["unet"]["block_out_channels"])
    key = f"generators.{name}.unet.block_out_channels"
    image_size = square_image_size(store, "icdiffusion", key, levels - 1)
    device = generation_device(config["device"])
    started = time.perf_counter()

    encoder, _, _ = load_encoder(encoder_path)
    encoder.to(device)
    conditions = train_conditions(encoder, store, indices, device)
    neighbours = nearest_neighbours(conditions, k)
    log.info("%s: %d train images, %d-dim conditions, %d neighbours each", name, len(indices), conditions.shape[1], k)

    torch.manual_seed(derive_seed(seed, "icdiffusion", name, "init"))
    model = ConditionedUNet(build_unet(config["unet"], image_size), conditions.shape[1]).to(device).train()
    log.info("%s: UNet of %d parameters, %d px", name, sum(p.numel() for p in model.parameters()), image_size)
    scheduler = noise_scheduler(train_config["train_timesteps"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_config["lr"], weight_decay=0.0)
    draws = torch.Generator().manual_seed(derive_seed(seed, "icdiffusion", name, "train"))
    steps, batch, dropout = train_config["steps"], train_config["batch_size"], train_config["condition_dropout"]

    losses = []
    for step in progress(range(steps), desc=f"train {name}", unit="step"):
        sources, targets = draw_pairs(neighbours, batch, draws)
        timesteps = torch.randint(scheduler.config.num_train_timesteps, (batch,), generator=draws)
        noise = torch.randn((batch, 3, image_size, image_size), generator=draws)
        drop = torch.rand(batch, generator=draws) < dropout
        images = to_float_images(store.get_batch(indices[targets.numpy()])).mul(2).sub(1)
        images, noise, timesteps = images.to(device), noise.to(device), timesteps.to(device)
        noisy = scheduler.add_noise(images, noise, timesteps)
        embeddings = model.embed(conditions[sources].to(device), drop.to(device))
        loss = F.mse_loss(model(noisy, timesteps, embeddings), scheduler.get_velocity(images, noise, timesteps))
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, train_config["lr"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    tail = losses[-max(1, steps // 10) :]
    log.info("%s: loss %.4f -> %.4f in %.0f s", name, losses[0], sum(tail) / len(tail), time.perf_counter() - started)

    record = {
        "name": name,
        "backend": "icdiffusion",
        "config": config,
        "seed": seed,
        "image_size": image_size,
        "neighbours": k,
        "condition_dim": conditions.shape[1],
        "train_images": len(indices),
        **input_identities(data_dir, encoder_path),
        "final_loss": sum(tail) / len(tail),
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__},
    }
    with atomic_directory(out_dir) as tmp:
        model.cpu().save(tmp)
        scheduler.save_pretrained(tmp / SCHEDULER_DIR)
        shutil.copyfile(encoder_path, tmp / ENCODER_FILE)
        (tmp / RECORD_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        with open(tmp / LOSSES_FILE, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["step", "loss"])
            writer.writerows([step + 1, f"{loss:.6f}"] for step, loss in enumerate(losses))
    return record
