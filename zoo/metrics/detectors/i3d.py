"""I3D (Inception-v1 inflated to 3-D, Kinetics-400), the network behind FVD and KVD.

"Quo Vadis, Action Recognition? A New Model and the Kinetics Dataset", Carreira & Zisserman, CVPR 2017,
https://arxiv.org/abs/1705.07750; FVD: Unterthiner et al. 2018, https://arxiv.org/abs/1812.01717.

The module mirrors DeepMind's TF-Hub `i3d-kinetics-400/1` as the TF FVD code runs it, with the module and parameter
names of piergiaj/pytorch-i3d (the naming of VideoGPT's converted `i3d_pretrained_400.pt`, 344 state-dict entries):

* TF "SAME" padding on every conv and pool (`before = total // 2`, the extra pixel at the end); PyTorch's symmetric
  `k // 2` differs on the stride-2 7x7x7 stem. Max-pools pad with zeros, which equals TF's "ignore padding" because
  every pooled tensor is a ReLU output.
* BatchNorm eps 1e-3 (Sonnet v1). VideoGPT's copy uses 1e-5, which moves logits by up to 0.23; we do not.
* Output: the 400 logits (before softmax) averaged over the remaining time steps, float `[B, 400]`.

Input contract: float `[B, 3, T, 224, 224]` RGB in [-1, 1], T >= 9 (16 is conventional).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3  # Sonnet v1 BatchNorm default, what the TF-Hub module was trained and exported with

# Inception block widths: (b0, b1a, b1b, b2a, b2b, b3b) = 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 | pool -> 1x1
INCEPTION_WIDTHS = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def same_padding(size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]) -> list[int]:
    """`F.pad` amounts (last axis first) reproducing TF "SAME" for a `[T, H, W]` input of `size`."""
    pads: list[int] = []
    for s, k, st in reversed(list(zip(size, kernel, stride))):
        out = math.ceil(s / st)
        total = max((out - 1) * st + k - s, 0)
        pads += [total // 2, total - total // 2]
    return pads


class MaxPool3dSame(nn.Module):
    """3-D max-pool with TF "SAME" padding (zero padding; inputs are post-ReLU, so zeros never win)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, same_padding(tuple(x.shape[2:]), self.kernel, self.stride))
        return F.max_pool3d(x, self.kernel, self.stride)


class Unit3D(nn.Module):
    """Conv3d (TF "SAME") -> BatchNorm (eps 1e-3) -> ReLU; the logits layer has a bias and neither BN nor ReLU."""

    def __init__(
        self,
        in_channels: int,  # input feature maps
        out_channels: int,  # output feature maps
        kernel: tuple[int, int, int] = (1, 1, 1),  # (kT, kH, kW)
        stride: tuple[int, int, int] = (1, 1, 1),
        batch_norm: bool = True,  # False only for the logits layer
        relu: bool = True,
        bias: bool = False,  # True only for the logits layer
    ):
        super().__init__()
        self.kernel, self.stride, self.relu = kernel, stride, relu
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride=stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=BN_EPS, momentum=0.01) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(F.pad(x, same_padding(tuple(x.shape[2:]), self.kernel, self.stride)))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class InceptionBlock(nn.Module):
    """Four parallel branches concatenated on channels: 1x1 | 1x1->3x3 | 1x1->3x3 | 3x3 max-pool->1x1."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int, int]):
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit3D(in_channels, w0)
        self.b1a = Unit3D(in_channels, w1a)
        self.b1b = Unit3D(w1a, w1b, kernel=(3, 3, 3))
        self.b2a = Unit3D(in_channels, w2a)
        self.b2b = Unit3D(w2a, w2b, kernel=(3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, w3b)
        self.out_channels = w0 + w1b + w2b + w3b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class InceptionI3d(nn.Module):
    """The RGB I3D of the TF FVD, with pytorch-i3d module names (so its state dicts load unchanged).

    `forward(x)`: float `[B, 3, T, 224, 224]` in [-1, 1] -> logits `[B, num_classes]` averaged over time.
    `features(x)`: the 1024-d average-pooled features before the logits layer, `[B, 1024]` (averaged over time).
    """

    def __init__(self, num_classes: int = 400, in_channels: int = 3):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, kernel=(7, 7, 7), stride=(2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, kernel=(3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        channels = 192
        self.stages: list[str] = ["Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3",
                                  "MaxPool3d_3a_3x3"]
        pools = {"Mixed_4b": ("MaxPool3d_4a_3x3", (3, 3, 3)), "Mixed_5b": ("MaxPool3d_5a_2x2", (2, 2, 2))}
        for name, widths in INCEPTION_WIDTHS.items():
            if name in pools:
                pool_name, k = pools[name]
                setattr(self, pool_name, MaxPool3dSame(k, (2, 2, 2)))
                self.stages.append(pool_name)
            block = InceptionBlock(channels, widths)
            setattr(self, name, block)
            self.stages.append(name)
            channels = block.out_channels
        self.avg_pool = nn.AvgPool3d((2, 7, 7), stride=1)  # VALID
        self.dropout = nn.Dropout(0.5)  # identity at inference
        self.logits = Unit3D(channels, num_classes, batch_norm=False, relu=False, bias=True)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, 3, T, 224, 224]` -> average-pooled Mixed_5c maps `[B, 1024, T', 1, 1]`."""
        for name in self.stages:
            x = getattr(self, name)(x)
        return self.avg_pool(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """1024-d pooled features `[B, 1024]`, averaged over the remaining time steps."""
        return self.pooled(x).mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.logits(self.dropout(self.pooled(x)))  # (B, 400, T', 1, 1)
        return logits.squeeze(4).squeeze(3).mean(dim=2)
