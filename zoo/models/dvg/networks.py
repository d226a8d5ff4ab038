"""DVG's frame auto-encoder and LSTM temporal dynamics encoder (Shrivastava & Shrivastava, ICLR 2021, Sec. 3.1).

The SVG-style DCGAN encoder / decoder with skip connections and the deterministic LSTM predictor, with the layers of
the official `models/dcgan_64.py` and `models/lstm.py` (checked): 4x4 stride-2 convolutions, batch norm, LeakyReLU
0.2; a 4x4 valid convolution to `g_dim` with batch norm and tanh; the decoder mirrors it, concatenating the
encoder's feature map of the same size (the skip) before each up-convolution; the LSTM embeds with a linear layer,
runs `layers` LSTM cells of `hidden` units and maps back to `g_dim` through linear + tanh. At 64x64 the layers are
exactly the official ones; other power-of-two resolutions add or remove stride-2 stages (the zoo's CPU configs).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _widths(resolution: int, nf: int) -> list[int]:
    """Feature widths of the stride-2 stages: nf, 2 nf, 4 nf, 8 nf at 64x64 (capped at 8 nf)."""
    stages = int(math.log2(resolution)) - 2  # resolution -> 4x4
    return [nf * min(8, 2 ** i) for i in range(stages)]


class DCGANEncoder(nn.Module):
    """Frame -> latent `(B, g_dim)` in (-1, 1) and the skips (one feature map per stage, finest first)."""

    def __init__(self, channels: int, g_dim: int, resolution: int, nf: int = 64):
        super().__init__()
        widths = _widths(resolution, nf)
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(w_in, w_out, 4, 2, 1), nn.BatchNorm2d(w_out), nn.LeakyReLU(0.2, inplace=True))
            for w_in, w_out in zip([channels] + widths[:-1], widths)
        )
        self.head = nn.Sequential(nn.Conv2d(widths[-1], g_dim, 4, 1, 0), nn.BatchNorm2d(g_dim), nn.Tanh())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for stage in self.stages:
            x = stage(x)  # (B, w, H/2^k, W/2^k)
            skips.append(x)
        return self.head(x).flatten(1), skips  # (B, g_dim, 1, 1) -> (B, g_dim)


class DCGANDecoder(nn.Module):
    """Latent `(B, g_dim)` and the encoder's skips -> frame `(B, C, H, W)` in (-1, 1)."""

    def __init__(self, channels: int, g_dim: int, resolution: int, nf: int = 64):
        super().__init__()
        widths = _widths(resolution, nf)
        self.head = nn.Sequential(nn.ConvTranspose2d(g_dim, widths[-1], 4, 1, 0), nn.BatchNorm2d(widths[-1]),
                                  nn.LeakyReLU(0.2, inplace=True))
        rev = widths[::-1]  # 8 nf, 4 nf, 2 nf, nf at 64x64
        self.stages = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose2d(2 * w_in, w_out, 4, 2, 1), nn.BatchNorm2d(w_out),
                          nn.LeakyReLU(0.2, inplace=True))
            for w_in, w_out in zip(rev[:-1], rev[1:])
        )
        self.out = nn.Sequential(nn.ConvTranspose2d(2 * widths[0], channels, 4, 2, 1), nn.Tanh())

    def forward(self, h: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        x = self.head(h[:, :, None, None])  # (B, 8 nf, 4, 4)
        for stage, skip in zip(self.stages, skips[:0:-1]):
            x = stage(torch.cat([x, skip], dim=1))  # doubles H, W
        return self.out(torch.cat([x, skips[0]], dim=1))  # (B, C, H, W)


class FramePredictor(nn.Module):
    """The deterministic LSTM: h_t `(B, g_dim)` and the state -> predicted h_{t+1} `(B, g_dim)` and the new state."""

    def __init__(self, g_dim: int, hidden: int = 256, layers: int = 2):
        super().__init__()
        self.hidden, self.layers = hidden, layers
        self.embed = nn.Linear(g_dim, hidden)
        self.cells = nn.ModuleList(nn.LSTMCell(hidden, hidden) for _ in range(layers))
        self.output = nn.Sequential(nn.Linear(hidden, g_dim), nn.Tanh())

    def initial_state(self, batch: int, like: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        zeros = like.new_zeros(batch, self.hidden)
        return [(zeros, zeros) for _ in range(self.layers)]

    def forward(self, h: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        x = self.embed(h)  # (B, hidden)
        new_state = []
        for cell, s in zip(self.cells, state):
            s = cell(x, s)
            new_state.append(s)
            x = s[0]
        return self.output(x), new_state


def official_init(module: nn.Module) -> None:
    """The official `utils.init_weights`: conv / linear N(0, 0.02), batch norm weight N(1, 0.02), biases 0."""
    name = type(module).__name__
    if "Conv" in name or "Linear" in name:
        nn.init.normal_(module.weight, 0.0, 0.02)
        nn.init.zeros_(module.bias)
    elif "BatchNorm" in name:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
