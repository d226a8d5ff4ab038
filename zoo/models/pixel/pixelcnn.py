"""Convolutional frame decoders: PixelCNN (van den Oord et al., ICML 2016, Sec. 3.5) and Gated PixelCNN
(van den Oord et al., NeurIPS 2016, Sec. 2.1-2.3, Fig. 2).

Both cache, during sampling, each layer's output map: a new sub-pixel at (y, x) only changes the outputs at (y, x)
(every mask hides later positions), so `step` computes each layer at that one position from the cached maps of the
layer below, O(layers) instead of O(layers * H * W) per sub-pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.models.layers.masked_conv import MaskedConv2d, channel_groups
from zoo.models.pixel.common import FrameDecoder, OutputHead, gate_groups, shift_down


class ResidualBlock(nn.Module):
    """PixelCNN residual block (PixelRNN Fig. 5): 2h -> ReLU -> 1x1 (h) -> ReLU -> kxk mask B (h) -> ReLU -> 1x1 (2h),
    added to the input; the conditioning bias enters the kxk convolution."""

    def __init__(self, features: int, kernel: int, colours: int, cond_channels: int):
        super().__init__()
        half = features // 2
        self.reduce = MaskedConv2d(features, half, 1, "B", groups=colours)
        self.conv = MaskedConv2d(half, half, kernel, "B", groups=colours)
        self.expand = MaskedConv2d(half, features, 1, "B", groups=colours)
        self.cond = nn.Conv2d(cond_channels, half, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        inner = F.relu(self.reduce(F.relu(x)))
        return x + self.expand(F.relu(self.conv(inner) + self.cond(cond)))


class PixelCNNDecoder(FrameDecoder):
    """PixelCNN: a `first_kernel` mask-A convolution, `layers` residual blocks of `kernel` mask-B convolutions, the
    output head. Its stacked masked kernels never see the pixels up and to the right beyond the first kernel's
    reach: the "blind spot" (Gated PixelCNN paper, Fig. 1), measured in the tests."""

    def __init__(self, channels: int, hidden: int, layers: int, first_kernel: int, kernel: int, out_hidden: int,
                 cond_channels: int):
        super().__init__()
        self.first = MaskedConv2d(channels, hidden, first_kernel, "A", groups=channels)
        self.first_cond = nn.Conv2d(cond_channels, hidden, 1)
        self.blocks = nn.ModuleList(ResidualBlock(hidden, kernel, channels, cond_channels) for _ in range(layers))
        self.head = OutputHead(hidden, out_hidden, channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.first(x) + self.first_cond(cond)
        for block in self.blocks:
            h = block(h, cond)
        return self.head(h)  # (N, C * 256, H, W)

    def begin(self, cond: torch.Tensor) -> dict:
        n, _, height, width = cond.shape
        return {
            "first_cond": self.first_cond(cond),
            "cond": [block.cond(cond) for block in self.blocks],
            "inner": [cond.new_zeros(n, block.conv.in_channels, height, width) for block in self.blocks],
        }

    def step(self, cache: dict, canvas: torch.Tensor, y: int, x: int) -> torch.Tensor:
        h = self.first.at(canvas, y, x) + cache["first_cond"][:, :, y, x]  # (N, hidden)
        for block, inner, cond in zip(self.blocks, cache["inner"], cache["cond"]):
            inner[:, :, y, x] = F.relu(block.reduce.point(F.relu(h)))
            h = h + block.expand.point(F.relu(block.conv.at(inner, y, x) + cond[:, :, y, x]))
        return self.head.point(h)


class GatedLayer(nn.Module):
    """One Gated PixelCNN layer (Fig. 2): a vertical stack convolution over the rows above (and the current row,
    only ever used shifted down by one), a horizontal stack mask convolution over the pixels to the left, the
    vertical -> horizontal 1x1 link, gated units tanh(W_f * x + V_f s) * sigmoid(W_g * x + V_g s), and a 1x1 plus
    residual in the horizontal stack only (not in the first layer, whose input is the image)."""

    def __init__(self, in_channels: int, units: int, kernel: int, mask_type: str, colours: int, cond_channels: int):
        super().__init__()
        r = kernel // 2
        self.r = r
        self.vertical = nn.Conv2d(in_channels, 2 * units, (r + 1, kernel))  # rows y - r .. y, columns x - r .. x + r
        self.horizontal = MaskedConv2d(in_channels, 2 * units, (1, r + 1), mask_type, centre=(0, r),
                                       in_groups=channel_groups(in_channels, colours),
                                       out_groups=gate_groups(units, colours, 2))
        self.link = nn.Conv2d(2 * units, 2 * units, 1)  # sees only rows above: no colour mask needed
        self.out = MaskedConv2d(units, units, 1, "B", groups=colours)
        self.cond_v = nn.Conv2d(cond_channels, 2 * units, 1)
        self.cond_h = nn.Conv2d(cond_channels, 2 * units, 1)
        self.residual = mask_type == "B"

    def vertical_pre(self, v: torch.Tensor) -> torch.Tensor:
        return self.vertical(F.pad(v, (self.r, self.r, self.r, 0)))  # (N, in, H, W) -> (N, 2 units, H, W)

    def forward(self, v: torch.Tensor, h: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v_pre = self.vertical_pre(v)
        h_pre = self.horizontal(h) + self.link(shift_down(v_pre)) + self.cond_h(cond)
        h_new = self.out(gate(h_pre))
        return gate(v_pre + self.cond_v(cond)), h + h_new if self.residual else h_new


def gate(pre: torch.Tensor) -> torch.Tensor:
    a, b = pre.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedPixelCNNDecoder(FrameDecoder):
    """Gated PixelCNN: a `first_kernel` gated layer with mask A, `layers` gated layers of `kernel`, the output head
    on the horizontal stack. The vertical stack has no blind spot, so every earlier pixel is in the receptive field
    once the stacks are deep enough."""

    def __init__(self, channels: int, hidden: int, layers: int, first_kernel: int, kernel: int, out_hidden: int,
                 cond_channels: int):
        super().__init__()
        self.layers = nn.ModuleList([GatedLayer(channels, hidden, first_kernel, "A", channels, cond_channels)])
        self.layers.extend(GatedLayer(hidden, hidden, kernel, "B", channels, cond_channels) for _ in range(layers))
        self.head = OutputHead(hidden, out_hidden, channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        v, h = x, x
        for layer in self.layers:
            v, h = layer(v, h, cond)
        return self.head(h)

    def begin(self, cond: torch.Tensor) -> dict:
        n, _, height, width = cond.shape
        units = [layer.out.in_channels for layer in self.layers]
        return {
            "cond_v": [layer.cond_v(cond) for layer in self.layers],
            "cond_h": [layer.cond_h(cond) for layer in self.layers],
            # v_pre[l]: layer l's vertical pre-activation; v_in[l + 1] / h_in[l + 1]: its stack outputs
            "v_pre": [cond.new_zeros(n, 2 * u, height, width) for u in units],
            "v_in": [None] + [cond.new_zeros(n, u, height, width) for u in units],
            "h_in": [None] + [cond.new_zeros(n, u, height, width) for u in units],
        }

    def step(self, cache: dict, canvas: torch.Tensor, y: int, x: int) -> torch.Tensor:
        h_in = cache["h_in"]
        h_in[0] = canvas
        h = None
        for i, layer in enumerate(self.layers):
            above = cache["v_pre"][i][:, :, y - 1, x] if y > 0 else torch.zeros_like(cache["v_pre"][i][:, :, 0, 0])
            pre = layer.horizontal.at(h_in[i], y, x) + layer.link(above[:, :, None, None])[:, :, 0, 0]
            h = layer.out.point(gate(pre + cache["cond_h"][i][:, :, y, x]))
            if layer.residual:
                h = h_in[i][:, :, y, x] + h
            h_in[i + 1][:, :, y, x] = h
        return self.head.point(h)

    def end_row(self, cache: dict, canvas: torch.Tensor, y: int) -> None:
        """Row y is complete: compute every layer's vertical stack on it (its rows y - r .. y are final)."""
        v_in = cache["v_in"]
        v_in[0] = canvas
        for i, layer in enumerate(self.layers):
            slab = F.pad(v_in[i], (layer.r, layer.r, layer.r, 0))[:, :, y : y + layer.r + 1]  # rows y - r .. y
            pre = layer.vertical(slab)[:, :, 0]  # (N, 2 units, W)
            cache["v_pre"][i][:, :, y] = pre
            v_in[i + 1][:, :, y] = gate(pre + cache["cond_v"][i][:, :, y])
