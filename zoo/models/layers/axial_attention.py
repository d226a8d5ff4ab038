"""Axial self-attention over the T, H and W axes of a `(B, C, T, H, W)` feature map.

Axial attention (Ho et al. 2019, "Axial Attention in Multidimensional Transformers", https://arxiv.org/abs/1912.12180)
attends along one axis at a time, so a T x H x W map costs O(THW (T + H + W)) instead of O((THW)^2). VideoGPT's
attention residual blocks (Yan et al. 2021, Sec. 3.1) sum three such attentions, one per axis, each with its own
projections; `AxialAttention3d` is that sum.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# For each axis: how rows `(B, T, H, W, C)` (a channels-last map) view as the 4-D `(batch, heads, length, head dim)`
# operands of fused attention, without a copy: the heads of every line along the axis are folded into one batch-like
# axis, and the one reshape is of dimensions that are adjacent in memory. Inverse: transpose(1, 2), then reshape.
_AS_SEQUENCES = {
    "t": lambda r, nh, d: r.reshape(r.shape[0], r.shape[1], -1, d).transpose(1, 2),  # (B, H W nh, T, d)
    "h": lambda r, nh, d: r.reshape(-1, r.shape[2], r.shape[3] * nh, d).transpose(1, 2),  # (B T, W nh, H, d)
    "w": lambda r, nh, d: r.reshape(-1, r.shape[3], nh, d).transpose(1, 2),  # (B T H, nh, W, d)
}


class AxialSelfAttention(nn.Module):
    """Multi-head, non-causal self-attention along one axis of a `(B, C, T, H, W)` map.

    Args:
        channels: C, the feature width (input and output).
        heads: attention heads; `channels` must be divisible by it.
        axis: "t", "h" or "w".
    """

    def __init__(self, channels: int, heads: int, axis: str):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels {channels} must be divisible by heads {heads}")
        if axis not in _AS_SEQUENCES:
            raise ValueError(f"axis must be one of t, h, w; got {axis!r}")
        self.heads, self.axis = heads, axis
        self.qkv = nn.Linear(channels, 3 * channels, bias=False)
        self.out = nn.Linear(channels, channels)
        nn.init.normal_(self.qkv.weight, std=1.0 / math.sqrt(channels))  # unit-variance projections
        nn.init.normal_(self.out.weight, std=1.0 / math.sqrt(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: `(B, C, T, H, W)` -> same shape (channels-last 3-D in and out is copy-free)."""
        return self.rows(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)

    def rows(self, rows: torch.Tensor) -> torch.Tensor:
        """rows: `(B, T, H, W, C)` -> `(B, T, H, W, C)`: q, k and v come from three products with the slices of the
        one q/k/v weight, so that each is a `(..., heads * head dim)` tensor the fused kernel reads in place."""
        q, k, v = (F.linear(rows, weight) for weight in self.qkv.weight.chunk(3))  # each (B, T, H, W, C)
        nh, d, as_sequences = self.heads, rows.shape[-1] // self.heads, _AS_SEQUENCES[self.axis]
        attended = F.scaled_dot_product_attention(*(as_sequences(y, nh, d) for y in (q, k, v)))
        return self.out(attended.transpose(1, 2).reshape(rows.shape))  # (B, T, H, W, C)


class AxialAttention3d(nn.Module):
    """Sum of axial self-attentions over T, H and W (VideoGPT's `AxialBlock`): `(B, C, T, H, W)` -> same shape.

    Args:
        channels: C, the feature width.
        heads: attention heads per axis.
    """

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.attentions = nn.ModuleList(AxialSelfAttention(channels, heads, axis) for axis in "thw")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.permute(0, 2, 3, 4, 1)  # (B, T, H, W, C): a view of a channels-last map
        return sum(attention.rows(rows) for attention in self.attentions).permute(0, 4, 1, 2, 3)
