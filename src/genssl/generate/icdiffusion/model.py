"""The instance-conditioned UNet of ``icdiffusion``: a diffusers ``UNet2DModel`` whose class-embedding input
carries the condition.

The condition of a source image is h = f(x) / ||f(x)||, the L2-normalised features of a frozen conditioning encoder
(:func:`genssl.generate.conditioning.condition_features`). The UNet is built with ``class_embed_type="identity"``,
so its residual blocks see ``time_embedding(t) + c`` with ``c = W (sqrt(D) h) + b``
(:attr:`ConditionedUNet.project`, a Linear from the feature dimension D to the time-embedding width), or ``c = n``,
a learned null embedding (:attr:`ConditionedUNet.null`), when the condition is dropped (training) or for the
unconditional pass of classifier-free guidance (sampling). The factor sqrt(D) gives the condition unit mean square
per component, the scale a default-initialised Linear expects; with unit-norm h the condition is too weak for a
short training to pick up (measured on 16 px digits after 800 steps: the variants' class agrees with their source's
10 % of the time, chance, without the factor and 51 % with it). The UNet predicts the velocity
v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (:mod:`~genssl.generate.icdiffusion.train` says why).

On disk (:meth:`ConditionedUNet.save`): ``unet/`` (diffusers ``save_pretrained``) and ``condition.safetensors``
(``project.weight`` (E, D), ``project.bias`` (E,), ``null`` (E,)).
"""

import math
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DModel
from safetensors.torch import load_file, save_file
from torch import nn

#: The condition's tensors in ``condition.safetensors``.
CONDITION_FILE = "condition.safetensors"
UNET_DIR = "unet"


def build_unet(unet_config: dict[str, Any], image_size: int) -> UNet2DModel:
    """A ``UNet2DModel`` for ``image_size`` px RGB images from the config's ``unet`` block.

    One resolution level per entry of ``block_out_channels`` (each but the last halves the resolution) with
    ``layers_per_block`` residual blocks; with ``attention`` the lowest-resolution down and up blocks and the
    middle block add single-head self-attention. Group norm uses gcd(8, widths) groups, so any widths >= 8 work.
    """
    widths = tuple(unet_config["block_out_channels"])
    attention = unet_config["attention"]
    levels = len(widths)
    down = ["DownBlock2D"] * levels
    up = ["UpBlock2D"] * levels
    if attention:
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return UNet2DModel(
        sample_size=image_size,
        in_channels=3,
        out_channels=3,
        block_out_channels=widths,
        layers_per_block=unet_config["layers_per_block"],
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        add_attention=attention,
        attention_head_dim=None,
        norm_num_groups=math.gcd(8, *widths),
        class_embed_type="identity",
    )


class ConditionedUNet(nn.Module):
    """v_theta(x_t, t, c): the UNet with the condition projection and the null embedding."""

    def __init__(self, unet: UNet2DModel, condition_dim: int) -> None:
        super().__init__()
        width = unet.time_embedding.linear_2.out_features
        self.unet = unet
        self.project = nn.Linear(condition_dim, width)
        self.null = nn.Parameter(torch.zeros(width))

    def embed(self, conditions: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        """Embeddings (B, E) of normalised conditions h (B, D): ``W (sqrt(D) h) + b``, or the null embedding where
        ``drop`` (bool (B,)) is true."""
        scale = math.sqrt(self.project.in_features)
        embeddings = self.project(conditions.to(self.project.weight.dtype) * scale)
        if drop is None:
            return embeddings
        return torch.where(drop[:, None], self.null.expand_as(embeddings), embeddings)

    def null_embeddings(self, batch: int) -> torch.Tensor:
        """The null embedding repeated ``batch`` times: (batch, E)."""
        return self.null.expand(batch, -1)

    def forward(self, sample: torch.Tensor, timesteps: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """Predicted velocity (B, 3, H, W) of noisy images ``sample`` at ``timesteps`` (B,) or () with ``embeddings``
        (B, E) from :meth:`embed` or :meth:`null_embeddings`."""
        return self.unet(sample, timesteps, class_labels=embeddings).sample

    def save(self, directory: Path) -> None:
        """Write ``unet/`` and ``condition.safetensors`` into ``directory``."""
        self.unet.save_pretrained(directory / UNET_DIR)
        tensors = {
            "project.weight": self.project.weight,
            "project.bias": self.project.bias,
            "null": self.null,
        }
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(directory / CONDITION_FILE))

    @classmethod
    def load(cls, directory: Path) -> "ConditionedUNet":
        """The model written by :meth:`save` into ``directory`` (on the CPU, fp32, eval mode)."""
        unet = UNet2DModel.from_pretrained(directory / UNET_DIR, low_cpu_mem_usage=False)
        tensors = load_file(str(directory / CONDITION_FILE))
        model = cls(unet, tensors["project.weight"].shape[1])
        model.project.load_state_dict({"weight": tensors["project.weight"], "bias": tensors["project.bias"]})
        model.null.data.copy_(tensors["null"])
        return model.eval()
