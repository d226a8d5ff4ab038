"""Causal temporal context for the pixel decoders, in the style of Video Pixel Networks (Kalchbrenner et al.,
ICML 2017, Sec. 3-4): every past frame goes through a resolution-preserving encoder of dilated residual
multiplicative blocks, then a recurrent (ConvLSTM) or convolutional (causal 3-D) network over time turns the
encodings of frames < t into a feature map that conditions every position of frame t's decoder.

The encoder is VPN's: residual multiplicative blocks (Sec. 4.1), `blocks` of them with dilations 1, 2, 4, 8, ...
repeating (VPN: 8 blocks, dilations 1, 2, 4, 8 twice). Their gated, tanh-bounded units matter here: with plain ReLU
residual blocks in their place (this module's first version) the encoder's activations grew ~150-fold within 50
Adam steps at lr 1e-3 on `shapes`, the ConvLSTM saturated, and the context became the same map for every clip, so
frame t's likelihood ignored frames < t entirely (`tests/models/test_pixel.py` now checks that it does not).
The ConvLSTM is the zoo's shared cell (`zoo/models/layers/conv_rnn.py`, no peepholes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from zoo.models.layers.conv_rnn import ConvLSTMCell


class MultiplicativeUnit(nn.Module):
    """VPN's multiplicative unit (Kalchbrenner et al. 2017, Sec. 4.1, eq. 4): g1 * tanh(g2 * h + g3 * u) with gates
    g1, g2, g3 = sigmoid(W_i * h) and update u = tanh(W_4 * h), all four from 3x3 (dilated) convolutions of h."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.convs = nn.Conv2d(channels, 4 * channels, 3, padding=dilation, dilation=dilation)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        g1, g2, g3, u = self.convs(h).chunk(4, dim=1)
        return torch.sigmoid(g1) * torch.tanh(torch.sigmoid(g2) * h + torch.sigmoid(g3) * torch.tanh(u))


class ResidualMultiplicativeBlock(nn.Module):
    """VPN's residual multiplicative block (Sec. 4.1, Fig. 3): a 1x1 convolution from 2c to c channels, two
    multiplicative units, a 1x1 convolution back to 2c, and the residual connection."""

    def __init__(self, width: int, dilation: int):
        super().__init__()
        inner = max(1, width // 2)
        self.reduce = nn.Conv2d(width, inner, 1)
        self.units = nn.Sequential(MultiplicativeUnit(inner, dilation), MultiplicativeUnit(inner, dilation))
        self.expand = nn.Conv2d(inner, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.expand(self.units(self.reduce(x)))


class TemporalContext(nn.Module):
    """Context maps `(B, D, T, H, W)` whose frame t depends only on frames < t (frame 0's is all zeros) plus, with
    classes, a learned label embedding added at every position (Conditional PixelCNN, Sec. 2.3: each decoder layer
    projects it into its biases through its own 1x1 conditioning convolution).

    Args:
        channels: colour channels of the video.
        width: D, the context features.
        blocks: encoder residual blocks per frame.
        kind: "convlstm" (VPN) or "conv3d" (`layers` causal 3-D convolutions of temporal kernel `kernel_t`).
        layers, kernel_t: the conv3d variant's depth and temporal reach per layer, frames.
        num_classes: 0 for unconditional models.
    """

    def __init__(self, channels: int, width: int, blocks: int, kind: str, layers: int, kernel_t: int,
                 num_classes: int):
        super().__init__()
        if kind not in ("convlstm", "conv3d"):
            raise ValueError(f"temporal context must be 'convlstm' or 'conv3d', got {kind!r}")
        self.kind, self.kernel_t = kind, kernel_t
        dilations = [2 ** (i % 4) for i in range(blocks)]
        self.encoder = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1),
                                     *(ResidualMultiplicativeBlock(width, d) for d in dilations))
        if kind == "convlstm":
            self.cell = ConvLSTMCell(width, width)
        else:
            self.convs = nn.ModuleList(nn.Conv3d(width, width, (kernel_t, 3, 3), padding=(0, 1, 1))
                                       for _ in range(layers))
        self.embedding = nn.Embedding(num_classes, width) if num_classes else None

    def forward(self, video: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        b, _, t, height, width = video.shape
        if t == 1:
            context = video.new_zeros(b, self.encoder[0].out_channels, 1, height, width)
            return self._add_labels(context, labels)
        past = video[:, :, : t - 1]  # frame t's context is built from frames 0 .. t - 1
        codes = rearrange(self.encoder(rearrange(past, "b c t h w -> (b t) c h w")), "(b t) d h w -> b d t h w", b=b)
        if self.kind == "convlstm":
            h = c = codes.new_zeros(codes.shape[0], codes.shape[1], *codes.shape[3:])
            states = [h]  # frame 0: nothing seen yet
            for i in range(t - 1):
                h, c = self.cell(codes[:, :, i], (h, c))
                states.append(h)
            context = torch.stack(states, dim=2)  # (B, D, T, H, W)
        else:
            x = codes
            for i, conv in enumerate(self.convs):
                x = conv(F.pad(x, (0, 0, 0, 0, self.kernel_t - 1, 0)))  # left padding only: causal in time
                if i < len(self.convs) - 1:
                    x = F.relu(x)
            context = F.pad(x, (0, 0, 0, 0, 1, 0))  # shift by one frame: frame t sees encodings of frames < t
        return self._add_labels(context, labels)

    def _add_labels(self, context: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if self.embedding is not None and labels is not None:
            context = context + self.embedding(labels)[:, :, None, None, None]
        return context
