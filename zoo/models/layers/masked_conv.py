"""Masked convolutions for pixel-autoregressive models (PixelRNN / PixelCNN, van den Oord et al. 2016, Sec. 3.4).

Raster order over pixels and, inside a pixel, R -> G -> B: the channels of every feature map are split into `groups`
contiguous blocks (3 for RGB), block g belonging to colour g. A masked convolution lets output block g see

* every input channel at the taps strictly before the centre in raster order (rows above, left part of the row);
* at the centre tap, input blocks < g (mask "A", the first layer: the current sub-pixel is hidden) or <= g (mask "B",
  every later layer: the layer's own colour was already hidden by mask A below it);
* nothing at the taps after the centre.

`channel_groups(n, groups)` gives the colour of each channel; the gated units of Gated PixelCNN and the LSTM gates
apply it to each half / quarter of their pre-activations so that every gate of colour g stays colour g.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def channel_groups(channels: int, groups: int, blocks: int = 1) -> torch.Tensor:
    """The colour of each of `blocks * channels` channels: `blocks` repeats of `channels` split into `groups`
    contiguous runs (as equal as possible: the papers' 256 or 1024 features do not divide by 3)."""
    if channels < groups:
        raise ValueError(f"{channels} channels cannot hold {groups} colour groups")
    one = torch.arange(channels) * groups // channels  # (channels,) values 0..groups-1
    return one.repeat(blocks)


def centre_mask(in_groups: torch.Tensor, out_groups: torch.Tensor, mask_type: str) -> torch.Tensor:
    """`(out, in)` 0/1 mask of the centre tap: output colour g sees input colours < g (A) or <= g (B)."""
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask type must be 'A' or 'B', got {mask_type!r}")
    o, i = out_groups[:, None], in_groups[None, :]
    return (i < o if mask_type == "A" else i <= o).float()


def spatial_mask(in_groups: torch.Tensor, out_groups: torch.Tensor, kernel: tuple[int, int], centre: tuple[int, int],
                 mask_type: str) -> torch.Tensor:
    """`(out, in, kh, kw)` mask of a 2-D kernel whose tap `centre` is the current pixel: taps before it in raster
    order pass everything, the centre passes by colour, later taps nothing."""
    kh, kw = kernel
    cy, cx = centre
    mask = torch.zeros(len(out_groups), len(in_groups), kh, kw)
    mask[:, :, :cy] = 1.0  # rows above
    mask[:, :, cy, :cx] = 1.0  # left part of the current row
    mask[:, :, cy, cx] = centre_mask(in_groups, out_groups, mask_type)
    return mask


class MaskedConv2d(nn.Conv2d):
    """A `kernel` convolution whose current-pixel tap is `centre` (default: the middle), masked as described above.

    The output at (y, x) is computed from the input window whose tap `centre` lies on (y, x) (zero padding), so the
    output keeps the input's height and width.

    Args:
        in_channels, out_channels: feature counts, each split into `groups` contiguous colour blocks (or pass explicit
            groups).
        kernel: (kh, kw) or an int for square kernels.
        mask_type: "A" (hide the current sub-pixel) or "B" (show the current colour's features).
        groups: colours (3 for RGB, 1 for grey).
        centre: the current pixel's tap; default (kh // 2, kw // 2).
        in_groups, out_groups: explicit colour of each channel (gated and LSTM layers split theirs per gate).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int | tuple[int, int], mask_type: str,
                 groups: int = 3, centre: tuple[int, int] | None = None, in_groups: torch.Tensor | None = None,
                 out_groups: torch.Tensor | None = None, bias: bool = True):
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        super().__init__(in_channels, out_channels, (kh, kw), padding=0, bias=bias)
        self.centre = centre if centre is not None else (kh // 2, kw // 2)
        self.mask_type = mask_type
        in_groups = channel_groups(in_channels, groups) if in_groups is None else in_groups
        out_groups = channel_groups(out_channels, groups) if out_groups is None else out_groups
        self.register_buffer("mask", spatial_mask(in_groups, out_groups, (kh, kw), self.centre, mask_type),
                             persistent=False)
        cy, cx = self.centre
        self.pads = (cx, kw - 1 - cx, cy, kh - 1 - cy)  # F.pad order: left, right, top, bottom

    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, self.pads), self.masked_weight(), self.bias)  # (N, in, H, W) -> (N, out, H, W)

    def at(self, x: torch.Tensor, y: int, col: int) -> torch.Tensor:
        """The output at one position (y, col) only: `(N, out)`, from the same window `forward` uses there.

        Cached sampling calls this with cached input maps whose later positions may hold stale values: the mask
        zeroes them, so the result equals `forward(x)[:, :, y, col]`.
        """
        kh, kw = self.kernel_size
        window = F.pad(x, self.pads)[:, :, y : y + kh, col : col + kw]  # (N, in, kh, kw) around (y, col)
        return F.conv2d(window, self.masked_weight(), self.bias)[:, :, 0, 0]

    def point(self, v: torch.Tensor) -> torch.Tensor:
        """A 1x1 masked convolution applied to one position's features `(N, in) -> (N, out)`."""
        return F.conv2d(v[:, :, None, None], self.masked_weight(), self.bias)[:, :, 0, 0]
