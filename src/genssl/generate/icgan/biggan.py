"""The instance-conditioned BigGAN of IC-GAN (Casanova et al. 2021): generator G(z, h) and projection
discriminator D(x, h), h the L2-normalised features of the conditioning instance.

Generator (the IC-GAN release's ``Generator`` with ``instance_cond``, ``hier`` and ``G_shared_feat``, not class
conditional): with L residual blocks, z is split into L + 1 chunks z_0..z_L of ``dim_z // (L + 1)`` entries (the
hierarchical latent; the remainder of ``dim_z`` is dropped, as in the release, so ``Generator.dim_z`` is the multiple
actually used); e = ``shared_feat``(h) is a spectrally normalised linear embedding of h, and

    x_0 = ``linear``(z_0) reshaped to (C_0, 4, 4),  x_l = GBlock_l(x_{l-1}, [e, z_l]) (then self-attention where
    the block's output resolution is in ``attention``),  G(z, h) = tanh(conv(relu(BN(x_L)))),

every GBlock doubling the resolution with batch norms whose gain and bias are linear in the condition [e, z_l]
(:class:`~genssl.generate.icgan.layers.ConditionalBatchNorm`). The widths are ``ch`` times the release's
multipliers for the resolution (:data:`G_WIDTHS`). ``class_embeddings`` > 0 adds the release's class embedding
``shared`` (n_classes x ``class_embedding_dim``): the release builds it whenever ``G_shared`` is set, also for the
instance-only IC-GAN, which never uses it; it exists here only so that the release's checkpoints load with strict
keys.

Discriminator (BigGAN's, with IC-GAN's instance projection): wide residual blocks (:data:`D_WIDTHS`), global sum
pooling phi(x) of the last ReLU features, and

    D(x, h) = w^T phi(x) + b + (W_h h + b_h)^T phi(x),

``linear`` = (w, b) and ``linear_feat`` = (W_h, b_h) spectrally normalised (the projection discriminator of Miyato
and Koyama 2018 with the class embedding replaced by a linear map of h).

Training starts from BigGAN's "ortho" initialisation (:func:`orthogonal_init`); the constructors leave PyTorch's
default initialisation, which a checkpoint overwrites anyway (orthogonalising the 256 px generator's 90 M weights
takes 18 s on a CPU).
"""

import itertools
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genssl.generate.icgan.layers import Attention, BatchNorm, DBlock, GBlock, SNConv2d, SNLinear

#: Generator widths per resolution, as multiples of ``ch``: the input of the first block, then every block's output
#: (BigGAN-PyTorch's ``G_arch``; 16 px is this study's addition for fast tests).
G_WIDTHS = {
    16: (4, 4, 4),
    32: (4, 4, 4, 4),
    64: (16, 16, 8, 4, 2),
    128: (16, 16, 8, 4, 2, 1),
    256: (16, 16, 8, 8, 4, 2, 1),
    512: (16, 16, 8, 8, 4, 2, 1, 1),
}
#: Discriminator blocks per resolution: (output width as a multiple of ``ch``, whether the block halves the
#: resolution) (BigGAN-PyTorch's ``D_arch``; 16 px added).
D_WIDTHS = {
    16: ((4, True), (4, False), (4, False)),
    32: ((4, True), (4, True), (4, False), (4, False)),
    64: ((1, True), (2, True), (4, True), (8, True), (16, False)),
    128: ((1, True), (2, True), (4, True), (8, True), (16, True), (16, False)),
    256: ((1, True), (2, True), (4, True), (8, True), (8, True), (16, True), (16, False)),
}
#: Side of G's first feature map (BigGAN's ``bottom_width``).
BOTTOM = 4


def orthogonal_init(module: nn.Module) -> None:
    """BigGAN's "ortho" initialisation: an orthogonal weight for every convolution, linear and embedding layer."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear, nn.Embedding)):
            nn.init.orthogonal_(layer.weight)


class Generator(nn.Module):
    """G(z, h): images (B, 3, R, R) in [-1, 1] from noise z (B, ``dim_z``) and unit-norm features h (B, F)."""

    def __init__(
        self,
        resolution: int,
        feature_dim: int,
        ch: int,
        dim_z: int,
        feature_embedding: int,
        attention: Sequence[int] = (),
        class_embeddings: int = 0,
        class_embedding_dim: int = 128,
    ) -> None:
        super().__init__()
        if resolution not in G_WIDTHS:
            raise ValueError(f"no generator architecture for {resolution} px; one of {sorted(G_WIDTHS)}")
        widths = [ch * m for m in G_WIDTHS[resolution]]
        slots = len(widths)  # the blocks and the first linear layer
        self.chunk = dim_z // slots
        if self.chunk < 1:
            raise ValueError(f"dim_z = {dim_z} is less than the {slots} chunks of the hierarchical latent")
        self.dim_z, self.resolution = self.chunk * slots, resolution
        if class_embeddings:
            self.shared = nn.Embedding(class_embeddings, class_embedding_dim)
        self.shared_feat = SNLinear(feature_dim, feature_embedding)
        self.linear = SNLinear(self.chunk, widths[0] * BOTTOM**2)
        condition_dim = feature_embedding + self.chunk
        blocks = []
        for index, (width_in, width_out) in enumerate(itertools.pairwise(widths)):
            block: list[nn.Module] = [GBlock(width_in, width_out, condition_dim)]
            if BOTTOM * 2 ** (index + 1) in attention:
                block.append(Attention(width_out))
            blocks.append(nn.ModuleList(block))
        self.blocks = nn.ModuleList(blocks)
        self.output_layer = nn.Sequential(BatchNorm(widths[-1]), nn.ReLU(), SNConv2d(widths[-1], 3))

    @classmethod
    def from_config(cls, architecture: dict[str, Any], resolution: int, feature_dim: int) -> "Generator":
        """The generator of a config's ``architecture`` block at ``resolution`` for F = ``feature_dim``."""
        return cls(
            resolution,
            feature_dim,
            ch=architecture["ch"],
            dim_z=architecture["dim_z"],
            feature_embedding=architecture["feature_embedding"],
            attention=tuple(architecture["attention"]),
            class_embeddings=architecture["class_embeddings"],
            class_embedding_dim=architecture["class_embedding_dim"],
        )

    def forward(self, z: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        if z.shape[1] != self.dim_z:
            raise ValueError(f"z has {z.shape[1]} entries; this generator takes {self.dim_z}")
        chunks = z.split(self.chunk, dim=1)
        embedding = self.shared_feat(features)
        x = self.linear(chunks[0]).view(len(z), -1, BOTTOM, BOTTOM)
        for block, z_l in zip(self.blocks, chunks[1:], strict=True):
            x = block[0](x, torch.cat([embedding, z_l], dim=1))
            if len(block) > 1:
                x = block[1](x)
        return torch.tanh(self.output_layer(x))


class Discriminator(nn.Module):
    """D(x, h): one score per image (B,) for images (B, 3, R, R) in [-1, 1] and unit-norm features h (B, F)."""

    def __init__(self, resolution: int, feature_dim: int, ch: int, attention: Sequence[int] = ()) -> None:
        super().__init__()
        if resolution not in D_WIDTHS:
            raise ValueError(f"no discriminator architecture for {resolution} px; one of {sorted(D_WIDTHS)}")
        blocks, width, side = [], 3, resolution
        for index, (multiple, downsample) in enumerate(D_WIDTHS[resolution]):
            side //= 2 if downsample else 1
            block: list[nn.Module] = [DBlock(width, ch * multiple, downsample, preactivation=index > 0)]
            width = ch * multiple
            if side in attention:
                block.append(Attention(width))
            blocks.append(nn.Sequential(*block))
        self.blocks = nn.Sequential(*blocks)
        self.linear = SNLinear(width, 1)
        self.linear_feat = SNLinear(feature_dim, width)

    def forward(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        pooled = F.relu(self.blocks(x)).sum(dim=(2, 3))
        return self.linear(pooled).squeeze(1) + (self.linear_feat(features) * pooled).sum(dim=1)
