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
from einops import rearrange
from torch import nn

# For each axis: how a (B, C, T, H, W) map becomes a batch of sequences along that axis, and back.
_TO_SEQUENCES = {
    "t": "b c t h w -> (b h w) t c",
    "h": "b c t h w -> (b t w) h c",
    "w": "b c t h w -> (b t h) w c",
}
_FROM_SEQUENCES = {
    "t": "(b h w) t c -> b c t h w",
    "h": "(b t w) h c -> b c t h w",
    "w": "(b t h) w c -> b c t h w",
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
        if axis not in _TO_SEQUENCES:
            raise ValueError(f"axis must be one of t, h, w; got {axis!r}")
        self.heads, self.axis = heads, axis
        self.qkv = nn.Linear(channels, 3 * channels, bias=False)
        self.out = nn.Linear(channels, channels)
        nn.init.normal_(self.qkv.weight, std=1.0 / math.sqrt(channels))  # unit-variance projections
        nn.init.normal_(self.out.weight, std=1.0 / math.sqrt(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = x.shape
        seq = rearrange(x, _TO_SEQUENCES[self.axis])  # (N, L, C): one sequence per line along the axis
        q, k, v = rearrange(self.qkv(seq), "n l (three nh d) -> three n nh l d", three=3, nh=self.heads)
        attended = F.scaled_dot_product_attention(q, k, v)  # (N, nh, L, d)
        seq = self.out(rearrange(attended, "n nh l d -> n l (nh d)"))  # (N, L, C)
        return rearrange(seq, _FROM_SEQUENCES[self.axis], b=b, t=t, h=h, w=w)


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
        return sum(attention(x) for attention in self.attentions)
