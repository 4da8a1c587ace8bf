"""Sampling from a trained ``icdiffusion`` generator (the directory written by
:func:`~genssl.generate.icdiffusion.train.train_icdiffusion`).

A variant of source image x is drawn by encoding x with the stored conditioning encoder, h = f(x) / ||f(x)||,
then integrating the reverse process from x_T ~ N(0, I) in ``inference_steps`` steps of the configured sampler
(``ddim``: DDIM with eta 0; ``dpm_solver``: DPM-Solver++ (2M); both on "trailing" timesteps starting at T - 1 and
both clipping their estimate of x_0 to [-1, 1]), with the prediction

    v = v_theta(x_t, t, null) + w (v_theta(x_t, t, c) - v_theta(x_t, t, null)),  c = W (sqrt(D) h) + b

for guidance scale w != 1 (the same as eps = eps_null + w (eps_cond - eps_null), since eps is linear in v given
x_t), and the conditional prediction alone (one pass) for w = 1.

Batch independence: both samplers are deterministic given x_T, and x_T of sample j is drawn from
``generators[j]`` alone. The networks (encoder, projection, UNet) always run on chunks of exactly
:data:`~genssl.generate.micro_batches.MICRO_BATCH` samples (:func:`~genssl.generate.micro_batches.in_micro_batches`),
so the bits of a sample do not depend on ``batch_size`` or on which samples share its batch.
"""

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from genssl.generate.base import VariantGenerator, to_float_images
from genssl.generate.conditioning import condition_features
from genssl.generate.icdiffusion.model import CONDITION_FILE, UNET_DIR, ConditionedUNet
from genssl.generate.icdiffusion.train import SCHEDULER_DIR
from genssl.generate.micro_batches import in_micro_batches
from genssl.generate.trained import ENCODER_FILE, RECORD_FILE, check_trained_directory
from genssl.models.encoder_file import encode, load_encoder

SAMPLERS: dict[str, type[SchedulerMixin]] = {"ddim": DDIMScheduler, "dpm_solver": DPMSolverMultistepScheduler}
#: The files of a trained generator's directory that sampling reads.
REQUIRED_FILES = (
    f"{UNET_DIR}/config.json",
    f"{UNET_DIR}/diffusion_pytorch_model.safetensors",
    CONDITION_FILE,
    f"{SCHEDULER_DIR}/scheduler_config.json",
    ENCODER_FILE,
    RECORD_FILE,
)
#: The config keys that define the trained model (the others only affect sampling).
TRAINED_KEYS = ("conditioning", "neighbours", "unet", "train")


def sampling_scheduler(sampler: str, training_config: dict[str, Any]) -> SchedulerMixin:
    """A fresh ``sampler`` scheduler on the training noise schedule, with "trailing" timestep spacing and x_0
    clipped to [-1, 1] (DDIM: ``clip_sample`` of the training config; DPM-Solver: thresholding at 1)."""
    options = {"thresholding": True, "sample_max_value": 1.0} if sampler == "dpm_solver" else {}
    return SAMPLERS[sampler].from_config(training_config, timestep_spacing="trailing", **options)


class ICDiffusionGenerator(VariantGenerator):
    """A trained :class:`ConditionedUNet` with its conditioning encoder and noise schedule."""

    def __init__(
        self,
        name: str,
        config: dict[str, Any],
        device: torch.device,
        dtype: torch.dtype,
        model: ConditionedUNet,
        encoder: torch.nn.Module,
        training_schedule: dict[str, Any],
        image_size: int,
    ) -> None:
        super().__init__(name, config, device, dtype)
        self.model = model.to(device=device, dtype=dtype).eval()
        self.encoder = encoder.to(device).eval()
        self.training_schedule = training_schedule
        self.image_size = image_size

    def _embed(self, sources: torch.Tensor) -> torch.Tensor:
        """Condition embeddings (B, E) of float source images (B, 3, H, W) in [0, 1], encoded at their own size as
        the training images were."""
        return in_micro_batches(lambda x: self.model.embed(condition_features(self.encoder, x)), sources)

    @torch.inference_mode()
    def conditioning_features(self, images: np.ndarray) -> np.ndarray:
        """f(x): the frozen conditioning encoder's pooled features (before the normalisation h = f(x) / ||f(x)||),
        in micro-batches as :meth:`sample` runs it."""
        pixels = to_float_images(images).to(self.device)
        return in_micro_batches(lambda x: encode(self.encoder, x).float(), pixels).cpu().numpy()

    def _predict(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, guided: bool) -> torch.Tensor:
        """The (guided) velocity prediction (float32) at ``x``, ``t``."""

        def predict(x: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
            return self.model(x.to(self.dtype), t, embeddings).float()

        conditional = in_micro_batches(predict, x, cond)
        if not guided:
            return conditional
        unconditional = in_micro_batches(predict, x, self.model.null_embeddings(len(x)))
        return unconditional + self.config["guidance_scale"] * (conditional - unconditional)

    @torch.inference_mode()
    def encode(self, images: np.ndarray) -> torch.Tensor:
        """The condition embedding c (B, E) of each source image."""
        return self._embed(to_float_images(images).to(self.device))

    @torch.inference_mode()
    def sample(self, conditions: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        """One variant per condition row: float (B, 3, S, S) in [0, 1] at the training size S."""
        if len(conditions) != len(generators):
            raise ValueError(f"{len(conditions)} conditions but {len(generators)} generators")
        size = self.image_size
        guided = self.config["guidance_scale"] != 1
        scheduler = sampling_scheduler(self.config["sampler"], self.training_schedule)
        scheduler.set_timesteps(self.config["inference_steps"], device=self.device)
        noise = torch.stack([torch.randn((3, size, size), generator=g) for g in generators])
        x = noise.to(self.device) * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            velocity = self._predict(scheduler.scale_model_input(x, t), t, conditions, guided)
            x = scheduler.step(velocity, t, x).prev_sample
        return x.add(1).div(2).clamp(0, 1)


def load_icdiffusion(
    name: str, config: dict[str, Any], device: torch.device, dtype: torch.dtype, weights_dir: Path | None
) -> VariantGenerator:
    """The trained generator ``name`` in ``weights_dir`` on ``device`` with weights in ``dtype``, sampling as
    ``config`` (its resolved entry) says: ``sampler``, ``inference_steps``, ``guidance_scale``."""
    record = check_trained_directory(name, "icdiffusion", config, weights_dir, REQUIRED_FILES, TRAINED_KEYS)
    weights_dir = Path(weights_dir)
    model = ConditionedUNet.load(weights_dir)
    encoder, _, _ = load_encoder(weights_dir / ENCODER_FILE)
    schedule = json.loads((weights_dir / SCHEDULER_DIR / "scheduler_config.json").read_text())
    return ICDiffusionGenerator(name, config, device, dtype, model, encoder, schedule, record["image_size"])
