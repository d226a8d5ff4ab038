"""StyleGAN2 building blocks in plain PyTorch: no compiled `bias_act` / `upfirdn2d` extensions.

Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (CVPR 2020), and StyleGAN2-ADA (NeurIPS 2020).
Everything the official extensions compute is written with `torch.nn.functional` ops, so the layers run on any device
and in float64; semantics (equalized learning rate, activation gains, FIR filter padding, weight orientation of the
up-sampling convolution) follow the official reference implementations so that weights carry over.

* Equalized learning rate: weights are stored N(0, 1) / lr_multiplier and scaled by lr_multiplier / sqrt(fan_in) at
  run time (Karras et al. 2018, Sec. 4.1).
* Activations carry the StyleGAN gain: lrelu(0.2) * sqrt(2), linear * 1.
* Resampling uses the [1, 3, 3, 1] FIR low-pass filter (outer product, normalised to sum 1).
* Modulated convolution with demodulation (Sec. 2.2), as one grouped convolution.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LRELU_GAIN = math.sqrt(2)


def bias_act(x: torch.Tensor, bias: torch.Tensor | None, activation: str = "linear", gain: float = 1.0,
             dim: int = 1) -> torch.Tensor:
    """x + bias (broadcast along `dim`), then the activation scaled by its StyleGAN gain times `gain`."""
    if bias is not None:
        x = x + bias.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    if activation == "lrelu":
        return F.leaky_relu(x, 0.2) * (LRELU_GAIN * gain)
    if activation == "linear":
        return x * gain if gain != 1 else x
    raise ValueError(f"unknown activation {activation!r}")


def setup_filter(taps=(1, 3, 3, 1)) -> torch.Tensor:
    """The 2-D FIR filter of 1-D `taps` (outer product), normalised to sum 1: float `[k, k]`."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def upfirdn2d(x: torch.Tensor, f: torch.Tensor, up: int = 1, down: int = 1, padding=(0, 0, 0, 0),
              gain: float = 1.0) -> torch.Tensor:
    """Up-sample by zero insertion, pad (or crop, for negative padding), filter with `f`, down-sample.

    Args:
        x: `(N, C, H, W)`.
        f: `(k, k)` filter (applied as a convolution, i.e. flipped, like the reference).
        padding: (x0, x1, y0, y1) after up-sampling.
        gain: overall gain (up-sampling by 2 passes up ** 2 to keep the mean).
    """
    n, c, h, w = x.shape
    px0, px1, py0, py1 = padding
    if up > 1:
        x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    weight = (f * gain).flip([0, 1]).to(x.dtype)[None, None].expand(c, 1, *f.shape)
    x = F.conv2d(x, weight, groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x FIR up-sampling (the skip generator's image path)."""
    k = f.shape[0]
    p0, p1 = (k + 1) // 2, (k - 2) // 2
    return upfirdn2d(x, f, up=2, padding=(p0, p1, p0, p1), gain=4)


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None, up: int = 1, down: int = 1,
                    padding: int = 0, groups: int = 1) -> torch.Tensor:
    """Convolution with 2x FIR up- or down-sampling, arranged as the reference `conv2d_resample`.

    Up: a stride-2 transposed convolution, then the FIR filter. Down: the FIR filter, then a stride-2 convolution
    (or, for 1x1 kernels, filter + subsample, then the convolution).
    """
    out_channels, in_per_group, kh, kw = w.shape
    if up == 1 and down == 1:
        return F.conv2d(x, w, padding=padding, groups=groups)
    k = f.shape[0]
    if down > 1:
        p0, p1 = padding + (k - down + 1) // 2, padding + (k - down) // 2
        if kw == 1 and kh == 1:
            return F.conv2d(upfirdn2d(x, f, down=down, padding=(p0, p1, p0, p1)), w, groups=groups)
        return F.conv2d(upfirdn2d(x, f, padding=(p0, p1, p0, p1)), w, stride=down, groups=groups)
    # up-sampling: transposed convolution wants (in, out / groups, kh, kw)
    p0, p1 = padding + (k + up - 1) // 2 - (kw - 1), padding + (k - up) // 2 - (kw - up)
    wt = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
    wt = wt.reshape(groups * in_per_group, out_channels // groups, kh, kw)
    x = F.conv_transpose2d(x, wt, stride=up, groups=groups)
    return upfirdn2d(x, f, padding=(p0, p1, p0, p1), gain=up**2)


class EqualizedLinear(nn.Module):
    """Fully connected layer with equalized learning rate (the reference `FullyConnectedLayer`)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bias * self.bias_gain if self.bias is not None else None
        return bias_act(x.matmul((self.weight * self.weight_gain).t()), b, self.activation)


class EqualizedConv1d(nn.Module):
    """1-D convolution with equalized learning rate and no padding (StyleGAN-V's motion network, `EqLRConv1d`)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, activation: str = "linear",
                 lr_multiplier: float = 1.0):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size) / lr_multiplier)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = lr_multiplier / math.sqrt(in_channels * kernel_size)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, L) -> (B, C_out, L - kernel_size + 1); lrelu here has no gain (as in the reference layer)."""
        y = F.conv1d(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return F.leaky_relu(y, 0.2) if self.activation == "lrelu" else y


class EqualizedConv2d(nn.Module):
    """2-D convolution with equalized learning rate, optional 2x FIR up/down-sampling (the reference `Conv2dLayer`)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1):
        super().__init__()
        self.activation, self.up, self.down, self.padding = activation, up, down, kernel_size // 2
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.register_buffer("resample_filter", setup_filter(), persistent=False)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        x = conv2d_resample(x, self.weight * self.weight_gain, self.resample_filter, self.up, self.down, self.padding)
        return bias_act(x, self.bias, self.activation, gain)


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """z (and/or a condition c) -> w: `num_layers` equalized lrelu layers at lr x 0.01 (StyleGAN2 Sec. 2; the
    reference `MappingNetwork`), optionally tracking the running mean of w for truncation."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_layers: int = 8, lr_multiplier: float = 0.01,
                 w_avg_beta: float | None = 0.995):
        super().__init__()
        self.z_dim, self.c_dim, self.w_avg_beta = z_dim, c_dim, w_avg_beta
        embed = w_dim if c_dim else 0
        if c_dim:
            self.embed = EqualizedLinear(c_dim, embed)
        dims = [z_dim + embed] + [w_dim] * num_layers
        self.layers = nn.ModuleList(EqualizedLinear(a, b, activation="lrelu", lr_multiplier=lr_multiplier)
                                    for a, b in zip(dims[:-1], dims[1:]))
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                update_w_avg: bool = True) -> torch.Tensor:
        parts = []
        if self.z_dim:
            parts.append(normalize_2nd_moment(z))
        if self.c_dim:
            parts.append(normalize_2nd_moment(self.embed(c)))
        x = torch.cat(parts, dim=1)
        for layer in self.layers:
            x = layer(x)
        if self.w_avg_beta is not None and self.training and update_w_avg:
            self.w_avg.copy_(x.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
        if truncation_psi != 1:
            x = self.w_avg.lerp(x, truncation_psi)
        return x


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True,
                     up: int = 1, padding: int = 0, resample_filter: torch.Tensor | None = None,
                     fused: bool = False) -> torch.Tensor:
    """StyleGAN2's modulated convolution (Sec. 2.2).

    Two exact formulations (the reference has both): `fused` builds per-sample weights and runs one grouped
    convolution over the batch; otherwise the activations are scaled by the styles before a shared convolution and
    by the demodulation coefficients after it. `benchmarks/models_stylegan_v.py` times both; the unfused one is the
    default (faster on CPU for training batches, see docs/benchmarks.md).

    Args:
        x: `(N, I, H, W)`.
        weight: `(O, I, k, k)` (already scaled by its equalized-lr gain, or not: demodulation removes the scale).
        styles: `(N, I)` per-sample input-channel scales.
        demodulate: divide each output channel by the norm of its modulated weights.

    Returns:
        `(N, O, H * up, W * up)`.
    """
    n = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if not fused:
        x = x * styles.reshape(n, in_channels, 1, 1)
        x = conv2d_resample(x, weight, resample_filter, up=up, padding=padding)
        if demodulate:  # 1 / ||w * s|| per (sample, output channel), from the squared weights without building w * s
            squared = weight.square().sum(dim=[2, 3])  # (O, I)
            x = x * (styles.square() @ squared.t() + 1e-8).rsqrt().reshape(n, out_channels, 1, 1)
        return x
    w = weight[None] * styles.reshape(n, 1, in_channels, 1, 1)  # (N, O, I, k, k)
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8).rsqrt()
    x = x.reshape(1, n * in_channels, *x.shape[2:])
    x = conv2d_resample(x, w.reshape(n * out_channels, in_channels, kh, kw), resample_filter, up=up,
                        padding=padding, groups=n)
    return x.reshape(n, out_channels, *x.shape[2:])


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally 2x up-sampling) + bias + lrelu; per-pixel noise is off in StyleGAN-V."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, up: int = 1):
        super().__init__()
        self.up = up
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("resample_filter", setup_filter(), persistent=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        x = modulated_conv2d(x, self.weight, self.affine(w), up=self.up, padding=1,
                             resample_filter=self.resample_filter)
        return bias_act(x, self.bias, "lrelu", gain)


class ToRGB(nn.Module):
    """Modulated 1x1 convolution without demodulation to the image channels."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int):
        super().__init__()
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = modulated_conv2d(x, self.weight, self.affine(w) * self.weight_gain, demodulate=False)
        return bias_act(x, self.bias)


class MinibatchStd(nn.Module):
    """Minibatch standard deviation (Karras et al. 2018, Sec. 3) over groups of `group_size` samples."""

    def __init__(self, group_size: int, num_channels: int = 1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        if n % g:
            raise ValueError(f"minibatch-std group size {g} must divide the batch ({n})")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)  # (G, n/G, F, c, H, W)
        y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt()  # stddev over the group
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1).repeat(g, 1, h, w)  # (N, F, H, W)
        return torch.cat([x, y], dim=1)


def channels_per_resolution(resolution: int, channel_base: int, channel_max: int) -> dict[int, int]:
    """StyleGAN2's width rule: min(channel_base / res, channel_max) for res = 4 .. resolution."""
    return {2**i: min(channel_base // 2**i, channel_max) for i in range(2, int(np.log2(resolution)) + 1)}
