"""The interface every frame decoder of the pixel family implements, and the parts they share.

A frame decoder models p(x_t | x_<t) for one frame: given the frame `x` `(N, C, H, W)` in [-1, 1] and a
conditioning map `cond` `(N, D, H, W)` (temporal context + class embedding, the same at every step of the frame), it
returns 256-way logits `(N, C * 256, H, W)` whose entries at (y, x, c) depend only on the sub-pixels before (y, x, c)
in raster / R -> G -> B order. For sampling it also runs incrementally:

    cache = decoder.begin(cond)                 # once per frame
    for y: for x: for c:
        logits = decoder.step(cache, canvas, y, x)   # (N, C * 256) at (y, x); only colour c's are used
        canvas[:, c, y, x] = draw(logits)
    decoder.end_row(cache, canvas, y)           # after each row (the vertical stack, the right-to-left LSTM)

`step` overwrites (never accumulates into) the caches at (y, x), so calling it again after each colour is drawn is
correct; it returns what `forward` would return at (y, x) for the current canvas.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.models.layers.masked_conv import MaskedConv2d, channel_groups

LEVELS = 256  # 8-bit sub-pixel values, one softmax class each


class FrameDecoder(nn.Module):
    """Base class: see the module docstring for the contract."""

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def begin(self, cond: torch.Tensor) -> dict:
        raise NotImplementedError

    def step(self, cache: dict, canvas: torch.Tensor, y: int, x: int) -> torch.Tensor:
        raise NotImplementedError

    def end_row(self, cache: dict, canvas: torch.Tensor, y: int) -> None:
        """Called once row `y` of `canvas` is complete (default: nothing to do)."""


class OutputHead(nn.Module):
    """ReLU -> 1x1 mask B (`out_hidden`) -> ReLU -> 1x1 mask B to `channels * 256` logits (PixelRNN Sec. 5.1)."""

    def __init__(self, hidden: int, out_hidden: int, channels: int):
        super().__init__()
        self.hidden = MaskedConv2d(hidden, out_hidden, 1, "B", groups=channels)
        self.logits = MaskedConv2d(out_hidden, channels * LEVELS, 1, "B", groups=channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.logits(F.relu(self.hidden(F.relu(h))))  # (N, hidden, H, W) -> (N, C * 256, H, W)

    def point(self, h: torch.Tensor) -> torch.Tensor:
        return self.logits.point(F.relu(self.hidden.point(F.relu(h))))  # (N, hidden) -> (N, C * 256)


def gate_groups(units: int, colours: int, gates: int) -> torch.Tensor:
    """Colours of `gates` stacked pre-activation blocks of `units` each (LSTM: 4, gated tanh/sigmoid: 2)."""
    return channel_groups(units, colours, blocks=gates)


def lstm_update(gates: torch.Tensor, c_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM update from stacked pre-activations `(N, 4h, ...)` ordered (o, f, i, g) as in PixelRNN eq. 3."""
    o, f, i, g = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def shift_down(x: torch.Tensor) -> torch.Tensor:
    """Rows move down by one, row 0 becomes zeros: output row y holds input row y - 1 (`(N, C, H, W)`)."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]
