"""Recurrent frame decoders of "Pixel Recurrent Neural Networks" (van den Oord, Kalchbrenner, Kavukcuoglu, ICML
2016, https://arxiv.org/abs/1601.06759): Row LSTM (Sec. 3.1) and Diagonal BiLSTM (Sec. 3.2).

Both start with a `first_kernel` mask-A convolution to 2h features, stack `layers` LSTM layers of h units with
residual connections (a 1x1 mask-B convolution h -> 2h added to the layer input, Sec. 3.3) and end with the output
head. The LSTM gates are ordered (o, f, i, g) and each gate's units are split into colours like every feature map,
so the input-to-state convolution is masked (mask B) and the state-to-state one, which only sees earlier pixels,
is not. Sampling carries the recurrent states per position: `step` computes one position of every layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.models.layers.masked_conv import MaskedConv2d, channel_groups
from zoo.models.pixel.common import FrameDecoder, OutputHead, gate_groups, lstm_update, shift_down


class RowLSTMLayer(nn.Module):
    """Row LSTM (Sec. 3.1): a 1x3 input-to-state convolution along the row, masked so that it sees the pixel to the
    left and (mask B) the current one, and a kernel-3 state-to-state convolution over the previous row's hidden state;
    the whole row is updated at once, so each layer's receptive field above a pixel is a triangle."""

    def __init__(self, features: int, units: int, colours: int, cond_channels: int):
        super().__init__()
        self.input_to_state = MaskedConv2d(features, 4 * units, (1, 3), "B", centre=(0, 1),
                                           in_groups=channel_groups(features, colours),
                                           out_groups=gate_groups(units, colours, 4))
        self.state_to_state = nn.Conv1d(units, 4 * units, 3, padding=1)
        self.cond = nn.Conv2d(cond_channels, 4 * units, 1)
        self.residual = MaskedConv2d(units, features, 1, "B", groups=colours)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        pre = self.input_to_state(x) + self.cond(cond)  # (N, 4h, H, W)
        n, _, height, width = pre.shape
        h = c = pre.new_zeros(n, self.state_to_state.in_channels, width)  # (N, h, W): state of the row above
        rows = []
        for y in range(height):
            h, c = lstm_update(pre[:, :, y] + self.state_to_state(h), c)
            rows.append(h)
        return x + self.residual(torch.stack(rows, dim=2))  # (N, h, H, W) -> (N, 2h, H, W)


class RecurrentDecoder(FrameDecoder):
    """The PixelRNN decoders' stack (Sec. 3.3-3.4): a mask-A `first_kernel` convolution to 2h features, `layers`
    residual LSTM layers of `layer_class` with h units, the output head."""

    layer_class: type[nn.Module]

    def __init__(self, channels: int, hidden: int, layers: int, first_kernel: int, out_hidden: int,
                 cond_channels: int):
        super().__init__()
        self.first = MaskedConv2d(channels, 2 * hidden, first_kernel, "A", groups=channels)
        self.first_cond = nn.Conv2d(cond_channels, 2 * hidden, 1)
        self.layers = nn.ModuleList(
            self.layer_class(2 * hidden, hidden, channels, cond_channels) for _ in range(layers)
        )
        self.head = OutputHead(2 * hidden, out_hidden, channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.first(x) + self.first_cond(cond)
        for layer in self.layers:
            h = layer(h, cond)
        return self.head(h)


class RowLSTMDecoder(RecurrentDecoder):
    """Row LSTM decoder: mask-A `first_kernel` convolution, `layers` Row LSTM layers, output head."""

    layer_class = RowLSTMLayer

    def begin(self, cond: torch.Tensor) -> dict:
        n, _, height, width = cond.shape
        units = [layer.state_to_state.in_channels for layer in self.layers]
        return {
            "first_cond": self.first_cond(cond),
            "cond": [layer.cond(cond) for layer in self.layers],
            "inputs": [cond.new_zeros(n, layer.residual.out_channels, height, width) for layer in self.layers],
            "h": [cond.new_zeros(n, u, height, width) for u in units],
            "c": [cond.new_zeros(n, u, height, width) for u in units],
        }

    def step(self, cache: dict, canvas: torch.Tensor, y: int, x: int) -> torch.Tensor:
        out = self.first.at(canvas, y, x) + cache["first_cond"][:, :, y, x]
        for i, layer in enumerate(self.layers):
            inputs, h_map, c_map = cache["inputs"][i], cache["h"][i], cache["c"][i]
            inputs[:, :, y, x] = out
            above = h_map[:, :, y - 1] if y > 0 else torch.zeros_like(h_map[:, :, 0])  # (N, h, W)
            window = F.pad(above, (1, 1))[:, :, x : x + 3]  # columns x - 1 .. x + 1 of the row above
            recurrent = F.conv1d(window, layer.state_to_state.weight, layer.state_to_state.bias)[:, :, 0]
            c_prev = c_map[:, :, y - 1, x] if y > 0 else torch.zeros_like(c_map[:, :, 0, 0])
            pre = layer.input_to_state.at(inputs, y, x) + cache["cond"][i][:, :, y, x] + recurrent
            h, c = lstm_update(pre, c_prev)
            h_map[:, :, y, x], c_map[:, :, y, x] = h, c
            out = out + layer.residual.point(h)
        return self.head.point(out)


def skew(x: torch.Tensor) -> torch.Tensor:
    """Shift row y right by y (Sec. 3.2): `(N, C, H, W) -> (N, C, H, W + H - 1)`; column j holds the diagonal
    x + y = j, so a column-wise recurrence visits diagonals in order."""
    n, c, height, width = x.shape
    out = x.new_zeros(n, c, height, width + height - 1)
    for y in range(height):
        out[:, :, y, y : y + width] = x[:, :, y]
    return out


def unskew(x: torch.Tensor, width: int) -> torch.Tensor:
    """Inverse of `skew`: `(N, C, H, W + H - 1) -> (N, C, H, W)`."""
    return torch.stack([x[:, :, y, y : y + width] for y in range(x.shape[2])], dim=2)


class DiagonalLSTM(nn.Module):
    """One direction of the Diagonal BiLSTM (Sec. 3.2): 1x1 mask-B input-to-state, then a column-by-column LSTM over
    the skewed map whose state-to-state convolution is 2x1: position (y, x) reads the states at (y - 1, x) (above)
    and (y, x - 1) (left). States outside the image stay zero, as at the image border."""

    def __init__(self, features: int, units: int, colours: int, cond_channels: int):
        super().__init__()
        self.input_to_state = MaskedConv2d(features, 4 * units, 1, "B", in_groups=channel_groups(features, colours),
                                           out_groups=gate_groups(units, colours, 4))
        self.state_to_state = nn.Conv1d(units, 4 * units, 2)  # taps: (row above, same row) of the previous diagonal
        self.cond = nn.Conv2d(cond_channels, 4 * units, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        pre = skew(self.input_to_state(x) + self.cond(cond))  # (N, 4h, H, W + H - 1)
        units = self.state_to_state.in_channels
        h = c = pre.new_zeros(n, units, height)  # (N, h, H): states of the previous diagonal
        rows = torch.arange(height, device=x.device)
        columns = []
        for j in range(pre.shape[3]):
            inside = ((j - rows >= 0) & (j - rows < width)).to(pre.dtype)  # (H,) rows where diagonal j is in the image
            h, c = lstm_update(pre[:, :, :, j] + self.state_to_state(F.pad(h, (1, 0))), c)
            h, c = h * inside, c * inside
            columns.append(h)
        return unskew(torch.stack(columns, dim=3), width)  # (N, h, H, W)

    def at(self, inputs: torch.Tensor, cond: torch.Tensor, h_map: torch.Tensor, c_map: torch.Tensor, y: int,
           x: int) -> None:
        """Compute and store the state at (y, x) from its input there and the states above and to the left."""
        zero = torch.zeros_like(h_map[:, :, 0, 0])
        above = h_map[:, :, y - 1, x] if y > 0 else zero
        left = h_map[:, :, y, x - 1] if x > 0 else zero
        recurrent = self.state_to_state(torch.stack([above, left], dim=2))[:, :, 0]  # (N, 4h)
        pre = self.input_to_state.at(inputs, y, x) + cond[:, :, y, x] + recurrent
        h_map[:, :, y, x], c_map[:, :, y, x] = lstm_update(pre, c_map[:, :, y, x - 1] if x > 0 else zero)


class DiagonalBiLSTMLayer(nn.Module):
    """Two diagonal LSTMs, left-to-right on the map and right-to-left on its mirror image; the right-to-left output
    is shifted down one row (it has seen the current row's future pixels) before the two are added (Sec. 3.2)."""

    def __init__(self, features: int, units: int, colours: int, cond_channels: int):
        super().__init__()
        self.forward_lstm = DiagonalLSTM(features, units, colours, cond_channels)
        self.backward_lstm = DiagonalLSTM(features, units, colours, cond_channels)
        self.residual = MaskedConv2d(units, features, 1, "B", groups=colours)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        left_to_right = self.forward_lstm(x, cond)
        right_to_left = self.backward_lstm(x.flip(3), cond.flip(3)).flip(3)
        return x + self.residual(left_to_right + shift_down(right_to_left))


class DiagonalBiLSTMDecoder(RecurrentDecoder):
    """Diagonal BiLSTM decoder: mask-A `first_kernel` convolution, `layers` bidirectional layers, output head."""

    layer_class = DiagonalBiLSTMLayer

    def begin(self, cond: torch.Tensor) -> dict:
        n, _, height, width = cond.shape
        units = self.layers[0].residual.in_channels if len(self.layers) else 0

        def maps(count: int) -> list[torch.Tensor]:
            return [cond.new_zeros(n, count, height, width) for _ in self.layers]

        mirrored = cond.flip(3)  # the right-to-left LSTM runs on the mirror image (column x' = W - 1 - x)
        return {
            "first_cond": self.first_cond(cond),
            "cond_f": [layer.forward_lstm.cond(cond) for layer in self.layers],
            "cond_b": [layer.backward_lstm.cond(mirrored) for layer in self.layers],
            "inputs": maps(self.first.out_channels),
            "h_f": maps(units), "c_f": maps(units), "h_b": maps(units), "c_b": maps(units),
        }

    def step(self, cache: dict, canvas: torch.Tensor, y: int, x: int) -> torch.Tensor:
        out = self.first.at(canvas, y, x) + cache["first_cond"][:, :, y, x]
        width = canvas.shape[3]
        for i, layer in enumerate(self.layers):
            cache["inputs"][i][:, :, y, x] = out
            layer.forward_lstm.at(cache["inputs"][i], cache["cond_f"][i], cache["h_f"][i], cache["c_f"][i], y, x)
            h = cache["h_f"][i][:, :, y, x]
            if y > 0:  # the right-to-left state one row up, computed when that row was completed
                h = h + cache["h_b"][i][:, :, y - 1, width - 1 - x]
            out = out + layer.residual.point(h)
        return self.head.point(out)

    def end_row(self, cache: dict, canvas: torch.Tensor, y: int) -> None:
        """Row y is complete: run every layer's right-to-left LSTM along it (on the mirror image, left to right)."""
        width = canvas.shape[3]
        for i, layer in enumerate(self.layers):
            mirrored = cache["inputs"][i].flip(3)
            for x in range(width):
                layer.backward_lstm.at(mirrored, cache["cond_b"][i], cache["h_b"][i], cache["c_b"][i], y, x)
