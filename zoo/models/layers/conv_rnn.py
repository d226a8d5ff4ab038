"""Convolutional recurrent cells: ConvLSTM (Shi et al., NeurIPS 2015) and ConvGRU (Ballas et al., ICLR 2016).

Each cell maps one time step `(B, C_in, H, W)` and its state to the next state; `unroll` runs a cell over a sequence.
TGANv2 drives a ConvLSTM with its latent at t = 0 and zeros after; DVD-GAN drives a ConvGRU once per frame.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class ConvLSTMCell(nn.Module):
    """ConvLSTM (Shi et al. 2015, Eq. 3) without peephole connections: the four gates from one convolution of
    [x_t, h_{t-1}].

    Args:
        in_channels: channels of the input x_t.
        hidden_channels: channels of h and c.
        kernel_size: odd spatial kernel of the gate convolution ('same' padding).
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"ConvLSTM kernel_size must be odd, got {kernel_size}")
        self.hidden_channels = hidden_channels
        padding = kernel_size // 2
        self.gates = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels, kernel_size, padding=padding)

    def initial_state(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = x.new_zeros(x.shape[0], self.hidden_channels, *x.shape[2:])
        return zeros, zeros

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C_in, H, W), (h, c) -> (h, c), each (B, hidden, H, W)."""
        h, c = self.initial_state(x) if state is None else state
        i, f, o, g = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class ConvGRUCell(nn.Module):
    """ConvGRU (Ballas et al. 2016): reset and update gates from [x_t, h_{t-1}], candidate from [x_t, r * h_{t-1}].

    Args:
        in_channels: channels of the input x_t.
        hidden_channels: channels of h.
        kernel_size: odd spatial kernel ('same' padding).
        candidate_activation: nonlinearity of the candidate state (tanh in Ballas et al.; DVD-GAN uses ReLU).
        conv: factory `(in, out, kernel, padding) -> module`, e.g. a spectrally normalized convolution.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int = 3,
        candidate_activation: Callable[[torch.Tensor], torch.Tensor] = torch.tanh,
        conv: Callable[..., nn.Module] = nn.Conv2d,
    ):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"ConvGRU kernel_size must be odd, got {kernel_size}")
        self.hidden_channels = hidden_channels
        self.activation = candidate_activation
        self.gates = conv(in_channels + hidden_channels, 2 * hidden_channels, kernel_size, padding=kernel_size // 2)
        self.candidate = conv(in_channels + hidden_channels, hidden_channels, kernel_size, padding=kernel_size // 2)

    def initial_state(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], self.hidden_channels, *x.shape[2:])

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C_in, H, W), h (B, hidden, H, W) -> next h."""
        h = self.initial_state(x) if h is None else h
        reset, update = torch.sigmoid(self.gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)
        candidate = self.activation(self.candidate(torch.cat([x, reset * h], dim=1)))
        return update * h + (1 - update) * candidate


def unroll(cell: nn.Module, inputs: torch.Tensor, state=None) -> torch.Tensor:
    """Run `cell` over `inputs` `(B, C, T, H, W)`; returns the hidden states `(B, hidden, T, H, W)`."""
    outputs = []
    for t in range(inputs.shape[2]):
        state = cell(inputs[:, :, t], state)
        outputs.append(state[0] if isinstance(state, tuple) else state)
    return torch.stack(outputs, dim=2)
