"""The shared GAN parts: recurrent cells against their equations, and the base's optimizer discipline."""

from __future__ import annotations

import torch

from zoo.models.layers.conv_rnn import ConvGRUCell, ConvLSTMCell, unroll


def test_conv_lstm_matches_its_equations_computed_by_hand():
    torch.manual_seed(0)
    cell = ConvLSTMCell(2, 3, kernel_size=1).double()
    x, h, c = torch.randn(4, 2, 5, 5).double(), torch.randn(4, 3, 5, 5).double(), torch.randn(4, 3, 5, 5).double()
    w = cell.gates.weight[:, :, 0, 0]  # (4*hidden, in + hidden)
    pre = torch.einsum("oi,bihw->bohw", w, torch.cat([x, h], 1)) + cell.gates.bias[None, :, None, None]
    i, f, o, g = pre.split(3, dim=1)
    c_expected = f.sigmoid() * c + i.sigmoid() * g.tanh()
    h_out, c_out = cell(x, (h, c))
    torch.testing.assert_close(c_out, c_expected)
    torch.testing.assert_close(h_out, o.sigmoid() * c_expected.tanh())


def test_conv_gru_matches_its_equations_and_uses_the_given_candidate_activation():
    torch.manual_seed(0)
    cell = ConvGRUCell(2, 3, kernel_size=1, candidate_activation=torch.relu).double()
    x, h = torch.randn(4, 2, 5, 5).double(), torch.randn(4, 3, 5, 5).double()

    def conv(layer, inp):
        return torch.einsum("oi,bihw->bohw", layer.weight[:, :, 0, 0], inp) + layer.bias[None, :, None, None]

    r, z = conv(cell.gates, torch.cat([x, h], 1)).sigmoid().split(3, dim=1)
    candidate = conv(cell.candidate, torch.cat([x, r * h], 1)).relu()
    torch.testing.assert_close(cell(x, h), z * h + (1 - z) * candidate)


def test_unroll_carries_state_through_time():
    torch.manual_seed(0)
    cell = ConvLSTMCell(1, 2)
    inputs = torch.zeros(1, 1, 4, 3, 3)
    inputs[:, :, 0] = 1.0  # input only at t = 0: later outputs differ only through the carried state
    out = unroll(cell, inputs)
    assert out.shape == (1, 2, 4, 3, 3)
    stateless = torch.stack([cell(inputs[:, :, t])[0] for t in range(4)], dim=2)
    assert not torch.allclose(out[:, :, 1:], stateless[:, :, 1:])
    torch.testing.assert_close(out[:, :, 0], stateless[:, :, 0])
