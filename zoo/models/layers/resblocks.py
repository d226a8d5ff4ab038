"""Residual blocks of the SNGAN ResNet family (Miyato et al., ICLR 2018), as TGANv2 uses them.

* `UpResBlock2d`: the generator block (BN - ReLU - 2x nearest up-sampling - 3x3 conv - BN - ReLU - 3x3 conv, plus an
  up-sampled 1x1 shortcut), with plain or class-conditional BatchNorm.
* `OptimizedDisBlock3d` / `DisBlock3d`: the discriminator's first block and the following down-sampling blocks, in
  3-D (3x3x3 kernels) for video discriminators.

Initialization follows the SNGAN / TGANv2 Chainer code: residual convolutions Glorot-uniform with gain sqrt(2),
shortcut convolutions gain 1, zero biases. Convolutions come from a `conv` factory so that a model can pass a
spectrally normalized one (`torch.nn.utils.parametrizations.spectral_norm`); TGANv2's discriminator has none, it is
regularized by a gradient penalty instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from zoo.models.layers.conditional_bn import CategoricalConditionalBatchNorm


def glorot_(module: nn.Module, gain: float = 1.0) -> nn.Module:
    """Glorot-uniform weights with `gain` and zero bias (Chainer's GlorotUniform(scale) is the same law)."""
    weight = getattr(module, "weight_orig", None)
    if weight is None:  # spectral norm keeps the raw weight in a parametrization
        weight = module.parametrizations.weight.original if hasattr(module, "parametrizations") else module.weight
    nn.init.xavier_uniform_(weight, gain=gain)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    return module


def batch_norm_2d(channels: int, num_classes: int = 0, eps: float = 2e-5, momentum: float = 0.1) -> nn.Module:
    """BatchNorm2d with affine parameters, or class-conditional BatchNorm when `num_classes > 0`."""
    if num_classes > 0:
        return CategoricalConditionalBatchNorm(channels, num_classes, dims=2, eps=eps, momentum=momentum)
    return nn.BatchNorm2d(channels, eps=eps, momentum=momentum)


def apply_norm(norm: nn.Module, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    return norm(x, labels) if isinstance(norm, CategoricalConditionalBatchNorm) else norm(x)


class UpResBlock2d(nn.Module):
    """SNGAN generator block with 2x nearest-neighbour up-sampling (TGANv2 `GenBlock(upsample=True)`).

    Args:
        in_channels: input channels.
        out_channels: output channels (also the hidden width, as in the official code).
        num_classes: > 0 for class-conditional BatchNorm (`forward` then needs labels).
        conv: factory `(in, out, kernel, padding=) -> module`.
    """

    def __init__(self, in_channels: int, out_channels: int, num_classes: int = 0,
                 conv: Callable[..., nn.Module] = nn.Conv2d):
        super().__init__()
        self.b1 = batch_norm_2d(in_channels, num_classes)
        self.c1 = glorot_(conv(in_channels, out_channels, 3, padding=1), math.sqrt(2))
        self.b2 = batch_norm_2d(out_channels, num_classes)
        self.c2 = glorot_(conv(out_channels, out_channels, 3, padding=1), math.sqrt(2))
        self.c_sc = glorot_(conv(in_channels, out_channels, 1, padding=0))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """`(N, in, H, W)` (labels `(N,)` if conditional) -> `(N, out, 2H, 2W)`."""
        h = F.relu(apply_norm(self.b1, x, labels))
        h = self.c1(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.c2(F.relu(apply_norm(self.b2, h, labels)))
        return h + self.c_sc(F.interpolate(x, scale_factor=2, mode="nearest"))


def chainer_downsample(x: torch.Tensor) -> torch.Tensor:
    """2x average pooling of every axis of `(B, C, *axes)`, exactly as TGANv2's `_downsample` in Chainer.

    An axis longer than 1 is pooled with kernel 2; an axis of odd length is first zero-padded by 1 on both sides and
    the zeros count in the average (Chainer's `pad_value=0`); the output length is `(n + 2 pad - k) // k + 1`. This
    includes the official code's quirk that an axis of length 1 (kernel 1, pad 1) grows to 3, the outer two zero.
    """
    kernel = [2 if n > 1 else 1 for n in x.shape[2:]]
    pad = [0 if n % 2 == 0 else 1 for n in x.shape[2:]]
    # F.pad takes (last axis left, right, second to last left, right, ...)
    padding = [p for q in reversed(pad) for p in (q, q)]
    return F.avg_pool3d(F.pad(x, padding), kernel_size=kernel, stride=kernel)


class OptimizedDisBlock3d(nn.Module):
    """First SNGAN discriminator block, 3-D: conv - ReLU - conv - spatial 2x average pool, shortcut pool - 1x1 conv.

    As in TGANv2, the first block pools space only (kernel (1, 2, 2)); time is kept.
    """

    def __init__(self, in_channels: int, out_channels: int, conv: Callable[..., nn.Module] = nn.Conv3d):
        super().__init__()
        self.c1 = glorot_(conv(in_channels, out_channels, 3, padding=1), math.sqrt(2))
        self.c2 = glorot_(conv(out_channels, out_channels, 3, padding=1), math.sqrt(2))
        self.c_sc = glorot_(conv(in_channels, out_channels, 1, padding=0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, in, T, H, W)` -> `(B, out, T, H // 2, W // 2)`."""
        h = F.avg_pool3d(self.c2(F.relu(self.c1(x))), (1, 2, 2))
        return h + self.c_sc(F.avg_pool3d(x, (1, 2, 2)))


class DisBlock3d(nn.Module):
    """SNGAN discriminator block, 3-D: ReLU - conv - ReLU - conv (- down-sample), learnable 1x1 shortcut when the
    width changes or it down-samples. Down-sampling is `chainer_downsample` (every axis, the official way)."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool = True,
                 conv: Callable[..., nn.Module] = nn.Conv3d):
        super().__init__()
        self.downsample = downsample
        self.c1 = glorot_(conv(in_channels, in_channels, 3, padding=1), math.sqrt(2))  # hidden = in (official)
        self.c2 = glorot_(conv(in_channels, out_channels, 3, padding=1), math.sqrt(2))
        learnable = in_channels != out_channels or downsample
        self.c_sc = glorot_(conv(in_channels, out_channels, 1, padding=0)) if learnable else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c2(F.relu(self.c1(F.relu(x))))
        shortcut = x if self.c_sc is None else self.c_sc(x)
        if self.downsample:
            h, shortcut = chainer_downsample(h), chainer_downsample(shortcut)
        return h + shortcut
