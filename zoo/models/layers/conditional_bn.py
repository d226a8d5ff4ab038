"""Class-conditional BatchNorm (de Vries et al. 2017; Miyato & Koyama 2018): batch statistics shared by all
classes, a per-class scale and shift.

Used by TGANv2's class-conditional generator (the official `CategoricalConditionalBatchNormalization`: gammas
initialised to 1, betas to 0, one row per class).
"""

from __future__ import annotations

import torch
from torch import nn


class CategoricalConditionalBatchNorm(nn.Module):
    """`gamma[y] * BN(x) + beta[y]` with BN's own affine switched off.

    The normalization is an `nn.BatchNorm{1,2,3}d(affine=False)`, so Lightning's `sync_batchnorm` converts it like any
    other BatchNorm and `eval()` switches it to running statistics.

    Args:
        num_features: channels C of the input `(B, C, ...)`.
        num_classes: number of classes (rows of the gamma / beta tables).
        dims: spatial dimensionality of the input (1, 2 or 3).
        eps: added to the variance (Chainer's default 2e-5 in TGANv2).
        momentum: running-statistics update rate (Chainer decay 0.9 = momentum 0.1).
    """

    def __init__(self, num_features: int, num_classes: int, dims: int = 2, eps: float = 2e-5, momentum: float = 0.1):
        super().__init__()
        norm = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims]
        self.norm = norm(num_features, eps=eps, momentum=momentum, affine=False)
        self.gammas = nn.Embedding(num_classes, num_features)
        self.betas = nn.Embedding(num_classes, num_features)
        nn.init.ones_(self.gammas.weight)
        nn.init.zeros_(self.betas.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """x `(B, C, ...)`, labels long `(B,)` -> `(B, C, ...)`."""
        shape = (x.shape[0], -1) + (1,) * (x.dim() - 2)
        return self.gammas(labels).view(shape) * self.norm(x) + self.betas(labels).view(shape)
