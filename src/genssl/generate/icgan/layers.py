"""BigGAN's layers, with the parameter and buffer names of the public BigGAN-PyTorch / IC-GAN release (so its
checkpoints load with strict key matching).

Spectral normalisation (Miyato et al. 2018) as BigGAN implements it: a layer with weight W (its rows the output
units, W viewed as a matrix (out, in x kh x kw)) keeps a left singular vector estimate u (buffer ``u0``, (1, out))
and uses W / sigma with one power-iteration step per call,

    v = normalise(u W),  u' = normalise(v W^T),  sigma = v W^T u'^T,

u and v held constant for the gradient. In training mode u' replaces ``u0`` and sigma is logged in ``sv0`` (1,);
in eval mode neither buffer changes, so eval calls are pure functions of the weights and their input.

The normalisations keep BigGAN's statistics buffers ``stored_mean`` and ``stored_var``: batch statistics (updated
into the buffers with momentum 0.1) in training mode, the stored ones in eval mode, so that in eval mode a sample
does not depend on the other samples of its batch.
"""

import torch
import torch.nn.functional as F
from torch import nn

#: BigGAN-PyTorch's default epsilons (``--SN_eps``, ``--BN_eps``).
SN_EPS = 1e-6
BN_EPS = 1e-5
#: Running-statistics momentum of BigGAN's batch norms.
BN_MOMENTUM = 0.1


def register_spectral_norm(layer: nn.Module, outputs: int, eps: float) -> None:
    """Give ``layer`` the buffers ``u0`` ~ N(0, I) (1, outputs) and ``sv0`` = 1 (1,) and its epsilon."""
    layer.sn_eps = eps
    layer.register_buffer("u0", torch.randn(1, outputs))
    layer.register_buffer("sv0", torch.ones(1))


def normalised_weight(layer: nn.Module) -> torch.Tensor:
    """W / sigma of ``layer``, after one power-iteration step from its ``u0`` (updated in training mode only)."""
    matrix = layer.weight.view(layer.weight.shape[0], -1)
    with torch.no_grad():
        v = F.normalize(layer.u0 @ matrix, eps=layer.sn_eps)
        u = F.normalize(v @ matrix.T, eps=layer.sn_eps)
        if layer.training:
            layer.u0.copy_(u)
    sigma = (v @ matrix.T @ u.T).squeeze()
    if layer.training:
        layer.sv0.copy_(sigma.detach())
    return layer.weight / sigma


class SNConv2d(nn.Conv2d):
    """``Conv2d`` with spectral normalisation (keys ``weight``, ``bias``, ``u0``, ``sv0``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        padding: int = 1,
        bias: bool = True,
        eps: float = SN_EPS,
    ) -> None:
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        register_spectral_norm(self, out_channels, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, normalised_weight(self), self.bias, padding=self.padding)


class SNLinear(nn.Linear):
    """``Linear`` with spectral normalisation (keys ``weight``, ``bias``, ``u0``, ``sv0``)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, eps: float = SN_EPS) -> None:
        nn.Linear.__init__(self, in_features, out_features, bias=bias)
        register_spectral_norm(self, out_features, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, normalised_weight(self), self.bias)


class ConditionalBatchNorm(nn.Module):
    """BigGAN's ``ccbn``: BN(x) (1 + W_g c) + W_b c, with W_g = ``gain`` and W_b = ``bias`` spectrally normalised
    linear maps without bias from the condition c (B, condition_dim) to the C channels."""

    def __init__(self, channels: int, condition_dim: int, eps: float = BN_EPS, sn_eps: float = SN_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.gain = SNLinear(condition_dim, channels, bias=False, eps=sn_eps)
        self.bias = SNLinear(condition_dim, channels, bias=False, eps=sn_eps)
        self.register_buffer("stored_mean", torch.zeros(channels))
        self.register_buffer("stored_var", torch.ones(channels))

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        gain = 1 + self.gain(condition)[:, :, None, None]
        bias = self.bias(condition)[:, :, None, None]
        normalised = F.batch_norm(
            x, self.stored_mean, self.stored_var, None, None, self.training, BN_MOMENTUM, self.eps
        )
        return normalised * gain + bias


class BatchNorm(nn.Module):
    """BigGAN's unconditional ``bn``: BN(x) with learned ``gain`` and ``bias`` (C,)."""

    def __init__(self, channels: int, eps: float = BN_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("stored_mean", torch.zeros(channels))
        self.register_buffer("stored_var", torch.ones(channels))
        self.gain = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x, self.stored_mean, self.stored_var, self.gain, self.bias, self.training, BN_MOMENTUM, self.eps
        )


class Attention(nn.Module):
    """SA-GAN self-attention as BigGAN implements it: with theta, phi (C/8), g (C/2) and o (C/2 -> C) 1x1 SN
    convolutions without bias, phi and g max-pooled 2x2,

        beta = softmax_j(theta(x)_i . phi(x)_j),  out = x + gamma o(sum_j beta_ij g(x)_j),

    gamma a learned scalar starting at 0."""

    def __init__(self, channels: int, sn_eps: float = SN_EPS) -> None:
        super().__init__()
        self.channels = channels
        self.theta = SNConv2d(channels, channels // 8, 1, padding=0, bias=False, eps=sn_eps)
        self.phi = SNConv2d(channels, channels // 8, 1, padding=0, bias=False, eps=sn_eps)
        self.g = SNConv2d(channels, channels // 2, 1, padding=0, bias=False, eps=sn_eps)
        self.o = SNConv2d(channels // 2, channels, 1, padding=0, bias=False, eps=sn_eps)
        self.gamma = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        theta = self.theta(x).flatten(2)
        phi = F.max_pool2d(self.phi(x), 2).flatten(2)
        g = F.max_pool2d(self.g(x), 2).flatten(2)
        beta = F.softmax(theta.transpose(1, 2) @ phi, dim=-1)
        attended = (g @ beta.transpose(1, 2)).view(batch, self.channels // 2, height, width)
        return x + self.gamma * self.o(attended)


class GBlock(nn.Module):
    """BigGAN's generator residual block, with 2x nearest-neighbour upsampling:

    h = conv2(relu(bn2(conv1(up(relu(bn1(x, c)))), c))),  out = h + conv_sc(up(x)).
    """

    def __init__(self, in_channels: int, out_channels: int, condition_dim: int, sn_eps: float = SN_EPS) -> None:
        super().__init__()
        self.conv1 = SNConv2d(in_channels, out_channels, eps=sn_eps)
        self.conv2 = SNConv2d(out_channels, out_channels, eps=sn_eps)
        self.conv_sc = SNConv2d(in_channels, out_channels, 1, padding=0, eps=sn_eps)
        self.bn1 = ConditionalBatchNorm(in_channels, condition_dim, sn_eps=sn_eps)
        self.bn2 = ConditionalBatchNorm(out_channels, condition_dim, sn_eps=sn_eps)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, condition)), scale_factor=2)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), condition)))
        return h + self.conv_sc(F.interpolate(x, scale_factor=2))


class DBlock(nn.Module):
    """BigGAN's (wide) discriminator residual block with optional 2x2 average-pool downsampling d:

    h = d(conv2(relu(conv1(a(x))))),  a = relu if ``preactivation`` else identity,
    shortcut = d(conv_sc(x)) with preactivation, conv_sc(d(x)) without (conv_sc when the width changes or
    the block downsamples, else the identity).
    """

    def __init__(
        self, in_channels: int, out_channels: int, downsample: bool, preactivation: bool, sn_eps: float = SN_EPS
    ) -> None:
        super().__init__()
        self.downsample, self.preactivation = downsample, preactivation
        self.conv1 = SNConv2d(in_channels, out_channels, eps=sn_eps)
        self.conv2 = SNConv2d(out_channels, out_channels, eps=sn_eps)
        self.learnable_shortcut = in_channels != out_channels or downsample
        if self.learnable_shortcut:
            self.conv_sc = SNConv2d(in_channels, out_channels, 1, padding=0, eps=sn_eps)

    def _down(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.downsample else x

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if not self.learnable_shortcut:
            return x
        return self._down(self.conv_sc(x)) if self.preactivation else self.conv_sc(self._down(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preactivation else x
        h = self._down(self.conv2(F.relu(self.conv1(h))))
        return h + self.shortcut(x)
