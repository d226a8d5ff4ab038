"""Separable self-attention (DVD-GAN) and the full joint self-attention it replaces, over `(B, C, T, H, W)` maps.

Clark, Donahue, Simonyan 2019, "Adversarial Video Generation on Complex Datasets" (arXiv 1907.06571), Sec. 3.1:
"Separable Attention" applies three self-attention layers *in sequence*, over height, then width, then time, each
attending along its own axis only. The attention matrices then hold H^2 WT, HW^2 T and HWT^2 entries instead of the
(HWT)^2 of one joint attention over every position; after the three layers every output position has seen every input
position. (VideoGPT's axial attention, `axial_attention.py`, *sums* per-axis attentions instead of chaining them.)

Each layer is the BigGAN / SAGAN self-attention block (Zhang et al. 2019; Brock et al. 2019): 1x1 projections to
queries and keys of C/8 channels and values of C/2, softmax attention, a 1x1 output projection back to C, and a learned
residual gain gamma initialised to 0 (the block starts as the identity). BigGAN's 2x2 max-pooling of keys and values
is left out: along a single axis it would mix the other axes, which separable attention must not do.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from einops import rearrange
from torch import nn

# How a (B, C, T, H, W) map becomes a batch of sequences along one axis ("thw": all positions jointly), and back.
_TO_SEQUENCES = {
    "h": "b c t h w -> (b t w) h c",
    "w": "b c t h w -> (b t h) w c",
    "t": "b c t h w -> (b h w) t c",
    "thw": "b c t h w -> b (t h w) c",
}
_FROM_SEQUENCES = {
    "h": "(b t w) h c -> b c t h w",
    "w": "(b t h) w c -> b c t h w",
    "t": "(b h w) t c -> b c t h w",
    "thw": "b (t h w) c -> b c t h w",
}


def _conv1x1(channels_in: int, channels_out: int) -> nn.Module:
    return nn.Conv3d(channels_in, channels_out, 1, bias=False)


class AxisSelfAttention(nn.Module):
    """SAGAN-style single-head self-attention along `axis` of a `(B, C, T, H, W)` map, with a zero-initialised gain.

    Args:
        channels: C, input and output width (>= 8: queries and keys have C // 8 channels).
        axis: "h", "w", "t", or "thw" for one joint attention over all T*H*W positions.
        conv: factory `(in, out) -> module` for the 1x1x1 projections, e.g. spectrally normalized.
    """

    def __init__(self, channels: int, axis: str, conv: Callable[[int, int], nn.Module] = _conv1x1):
        super().__init__()
        if axis not in _TO_SEQUENCES:
            raise ValueError(f"attention axis must be one of {sorted(_TO_SEQUENCES)}, got {axis!r}")
        if channels < 8:
            raise ValueError(f"self-attention needs >= 8 channels (queries and keys have C // 8), got {channels}")
        self.axis = axis
        self.query = conv(channels, channels // 8)
        self.key = conv(channels, channels // 8)
        self.value = conv(channels, channels // 2)
        self.out = conv(channels // 2, channels)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        dims = dict(zip("thw", x.shape[2:]))

        def sequences(y: torch.Tensor) -> torch.Tensor:
            return rearrange(y, _TO_SEQUENCES[self.axis])  # (B * other axes, L, C')

        q, k, v = sequences(self.query(x)), sequences(self.key(x)), sequences(self.value(x))
        # SAGAN's unscaled softmax(q k^T), written out rather than a fused kernel: the (L, L) matrix is what
        # separable attention shrinks, and the benchmark measures it
        weights = torch.softmax(q @ k.transpose(1, 2), dim=-1)  # (B * other axes, L, L)
        attended = rearrange(weights @ v, _FROM_SEQUENCES[self.axis], b=b, **dims)  # (B, C / 2, T, H, W)
        return x + self.gamma * self.out(attended)


class SeparableAttention(nn.Module):
    """DVD-GAN's separable self-attention: attention over H, then over W, then over T (Clark et al. 2019, Sec. 3.1).

    Args:
        channels: C of the `(B, C, T, H, W)` map.
        conv: factory `(in, out) -> module` for the 1x1x1 projections.
    """

    def __init__(self, channels: int, conv: Callable[[int, int], nn.Module] = _conv1x1):
        super().__init__()
        self.layers = nn.ModuleList([AxisSelfAttention(channels, axis, conv) for axis in ("h", "w", "t")])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class JointSelfAttention(AxisSelfAttention):
    """One self-attention over all T*H*W positions: DVD-GAN v1's attention on the 4x4 RNN output, and the baseline
    separable attention is measured against (`benchmarks/models_dvdgan.py`)."""

    def __init__(self, channels: int, conv: Callable[[int, int], nn.Module] = _conv1x1):
        super().__init__(channels, "thw", conv)
