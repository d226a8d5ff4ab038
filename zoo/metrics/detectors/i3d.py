"""I3D (Inception-v1 inflated to 3-D, Kinetics-400), the network behind FVD and KVD.

"Quo Vadis, Action Recognition? A New Model and the Kinetics Dataset", Carreira & Zisserman, CVPR 2017,
https://arxiv.org/abs/1705.07750; FVD: Unterthiner et al. 2018, https://arxiv.org/abs/1812.01717.

The module mirrors DeepMind's TF-Hub `i3d-kinetics-400/1` as the TF FVD code runs it, with the module and parameter
names of piergiaj/pytorch-i3d (the naming of VideoGPT's converted `i3d_pretrained_400.pt`, 344 state-dict entries):

* TF "SAME" padding on every conv and pool (`before = total // 2`, the extra pixel at the end); PyTorch's symmetric
  `k // 2` differs on the stride-2 7x7x7 stem. Max-pools pad with zeros, which equals TF's "ignore padding" because
  every pooled tensor is a ReLU output.
* BatchNorm eps 1e-3 (Sonnet v1). VideoGPT's copy uses 1e-5, which moves logits by up to 0.23; we do not.
* Output: the 400 logits (before softmax) averaged over the remaining time steps, float `[B, 400]`.

Input contract: float `[B, 3, T, 224, 224]` RGB in [-1, 1], T >= 9 (16 is conventional).

Two paths compute the same function. The reference path (`exact=True`, and always in training mode) runs the layers
as written above: explicit `F.pad`, BatchNorm after each convolution. The default fast path, for inference in eval
mode, folds each BatchNorm into its convolution's weights and bias, lets the convolutions and pools pad natively
where TF's SAME padding is symmetric (every stride-1 layer), takes the one extra pixel TF pads at the end of a
strided max-pool through `ceil_mode` (a pooling window may then hang over the end, where PyTorch ignores it, as TF
does), and runs in place and channels-last (`channels_last_3d`) in float32. Only the stride-2 stem convolution,
whose SAME padding is asymmetric, still pads its 3-channel input explicitly. Results differ from the reference path
by float rounding only (within 3e-5 on the seeded weights' logits in float32); the folded weights are constants, so
the fast path gives gradients with respect to the input, not the parameters.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3  # Sonnet v1 BatchNorm default, what the TF-Hub module was trained and exported with

# Inception block widths: (b0, b1a, b1b, b2a, b2b, b3b) = 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 | pool -> 1x1
INCEPTION_WIDTHS = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def same_padding(size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]) -> list[int]:
    """`F.pad` amounts (last axis first) reproducing TF "SAME" for a `[T, H, W]` input of `size`."""
    pads: list[int] = []
    for s, k, st in reversed(list(zip(size, kernel, stride))):
        out = math.ceil(s / st)
        total = max((out - 1) * st + k - s, 0)
        pads += [total // 2, total - total // 2]
    return pads


def split_padding(
    size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]
) -> tuple[list[int], list[int]]:
    """TF "SAME" padding of a `[T, H, W]` input as `(symmetric, extra)`: `symmetric[i]` pixels on both sides of
    axis i (native `padding=`), plus `extra` in `F.pad` order (last axis first) for what is left at the end."""
    pads = same_padding(size, kernel, stride)  # (before, after) pairs, last axis first
    before, after = pads[0::2][::-1], pads[1::2][::-1]  # per axis, first axis first
    extra: list[int] = []
    for b, a in zip(reversed(before), reversed(after)):
        extra += [0, a - b]
    return before, extra


class MaxPool3dSame(nn.Module):
    """3-D max-pool with TF "SAME" padding (zero padding; inputs are post-ReLU, so zeros never win)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, same_padding(tuple(x.shape[2:]), self.kernel, self.stride))
        return F.max_pool3d(x, self.kernel, self.stride)

    def fast(self, x: torch.Tensor) -> torch.Tensor:
        """The same pool without copying the input into a padded one: native padding where SAME is symmetric, and
        `ceil_mode` for SAME's one extra pixel at the end (the padding is ignored either way, as post-ReLU inputs
        make zero padding equivalent to TF's)."""
        size = tuple(x.shape[2:])
        symmetric, extra = split_padding(size, self.kernel, self.stride)
        wanted = [math.ceil(s / st) for s, st in zip(size, self.stride)]
        # PyTorch's limits on native padding, and on windows larger than the padded axis (ceil_mode cannot stand in
        # for SAME's end pixel there)
        if all(2 * p <= k <= s + 2 * p for s, p, k in zip(size, symmetric, self.kernel)):
            ceil = any(extra)
            y = F.max_pool3d(x, self.kernel, self.stride, padding=symmetric, ceil_mode=ceil)
            if list(y.shape[2:]) == wanted:
                return y
        return self(x)


class Unit3D(nn.Module):
    """Conv3d (TF "SAME") -> BatchNorm (eps 1e-3) -> ReLU; the logits layer has a bias and neither BN nor ReLU."""

    def __init__(
        self,
        in_channels: int,  # input feature maps
        out_channels: int,  # output feature maps
        kernel: tuple[int, int, int] = (1, 1, 1),  # (kT, kH, kW)
        stride: tuple[int, int, int] = (1, 1, 1),
        batch_norm: bool = True,  # False only for the logits layer
        relu: bool = True,
        bias: bool = False,  # True only for the logits layer
    ):
        super().__init__()
        self.kernel, self.stride, self.relu = kernel, stride, relu
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride=stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=BN_EPS, momentum=0.01) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(F.pad(x, same_padding(tuple(x.shape[2:]), self.kernel, self.stride)))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x

    def folded(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Convolution weight and bias with the (eval-mode) BatchNorm folded in, computed in float64."""
        weight = self.conv3d.weight.detach().double()
        bias = self.conv3d.bias.detach().double() if self.conv3d.bias is not None else None
        if self.bn is None:
            return weight, bias
        scale = self.bn.weight.detach().double() / torch.sqrt(self.bn.running_var.double() + self.bn.eps)
        shift = self.bn.bias.detach().double() - self.bn.running_mean.double() * scale
        if bias is not None:
            shift = shift + bias * scale
        return weight * scale[:, None, None, None, None], shift

    def fast(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """Convolution with folded weights, native symmetric padding, in-place ReLU."""
        if self.kernel == (1, 1, 1) and self.stride == (1, 1, 1) and x.is_contiguous(
                memory_format=torch.channels_last_3d):
            # A pointwise convolution of a channels-last map is one matrix product over (B, T, H, W, C) rows; PyTorch
            # would run it as a channels-first im2col convolution and return a channels-first map.
            rows = F.linear(x.permute(0, 2, 3, 4, 1), weight.flatten(1), bias)  # (B, T, H, W, C_out), no copy
            x = rows.permute(0, 4, 1, 2, 3)  # (B, C_out, T, H, W) channels-last
        else:
            symmetric, extra = split_padding(tuple(x.shape[2:]), self.kernel, self.stride)
            if any(extra):
                x = F.pad(x, extra)  # asymmetric SAME (the stride-2 stem): the extra pixel at the end
            x = F.conv3d(x, weight, bias, self.stride, padding=symmetric)
        return F.relu_(x) if self.relu else x


class InceptionBlock(nn.Module):
    """Four parallel branches concatenated on channels: 1x1 | 1x1->3x3 | 1x1->3x3 | 3x3 max-pool->1x1."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int, int]):
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit3D(in_channels, w0)
        self.b1a = Unit3D(in_channels, w1a)
        self.b1b = Unit3D(w1a, w1b, kernel=(3, 3, 3))
        self.b2a = Unit3D(in_channels, w2a)
        self.b2b = Unit3D(w2a, w2b, kernel=(3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, w3b)
        self.out_channels = w0 + w1b + w2b + w3b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)

    def fast(self, x: torch.Tensor, folded: dict[nn.Module, tuple]) -> torch.Tensor:
        def unit(module: Unit3D, y: torch.Tensor) -> torch.Tensor:
            return module.fast(y, *folded[module])

        branches = [unit(self.b0, x), unit(self.b1b, unit(self.b1a, x)), unit(self.b2b, unit(self.b2a, x)),
                    unit(self.b3b, self.b3a.fast(x))]
        return torch.cat(branches, dim=1)


class InceptionI3d(nn.Module):
    """The RGB I3D of the TF FVD, with pytorch-i3d module names (so its state dicts load unchanged).

    `forward(x)`: float `[B, 3, T, 224, 224]` in [-1, 1] -> logits `[B, num_classes]` averaged over time.
    `features(x)`: the 1024-d average-pooled features before the logits layer, `[B, 1024]` (averaged over time).

    Args:
        num_classes: logits (Kinetics-400: 400).
        in_channels: input channels (RGB: 3).
        exact: run the reference path (explicit padding, BatchNorm as its own layer) instead of the fast one in eval
            mode; see the module docstring. Also settable later as the attribute `exact`.
    """

    def __init__(self, num_classes: int = 400, in_channels: int = 3, exact: bool = False):
        super().__init__()
        self.exact = exact
        self._folded: tuple[tuple, dict] | None = None  # (parameter identity, {Unit3D: (weight, bias)})
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, kernel=(7, 7, 7), stride=(2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, kernel=(3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        channels = 192
        self.stages: list[str] = ["Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3",
                                  "MaxPool3d_3a_3x3"]
        pools = {"Mixed_4b": ("MaxPool3d_4a_3x3", (3, 3, 3)), "Mixed_5b": ("MaxPool3d_5a_2x2", (2, 2, 2))}
        for name, widths in INCEPTION_WIDTHS.items():
            if name in pools:
                pool_name, k = pools[name]
                setattr(self, pool_name, MaxPool3dSame(k, (2, 2, 2)))
                self.stages.append(pool_name)
            block = InceptionBlock(channels, widths)
            setattr(self, name, block)
            self.stages.append(name)
            channels = block.out_channels
        self.avg_pool = nn.AvgPool3d((2, 7, 7), stride=1)  # VALID
        self.dropout = nn.Dropout(0.5)  # identity at inference
        self.logits = Unit3D(channels, num_classes, batch_norm=False, relu=False, bias=True)

    def _use_fast(self) -> bool:
        return not (self.exact or self.training)

    def _folded_weights(self, channels_last: bool) -> dict[nn.Module, tuple]:
        """Folded weights of every Unit3D, in the parameters' dtype, cached until a parameter or buffer changes
        (in place, or by a move to another device or dtype)."""
        tensors = list(self.parameters()) + list(self.buffers())
        key = (channels_last, tuple((t.data_ptr(), t._version, t.dtype) for t in tensors))
        if self._folded is None or self._folded[0] != key:
            # Plain tensors even when called under inference_mode, so a later autograd-enabled call can use them.
            with torch.inference_mode(False), torch.no_grad():
                folded = {}
                for module in self.modules():
                    if isinstance(module, Unit3D):
                        weight, bias = module.folded()
                        dtype = module.conv3d.weight.dtype
                        weight = weight.to(dtype)
                        if channels_last:
                            weight = weight.contiguous(memory_format=torch.channels_last_3d)
                        folded[module] = (weight, bias.to(dtype) if bias is not None else None)
            self._folded = (key, folded)
        return self._folded[1]

    def _fast_pooled(self, x: torch.Tensor) -> torch.Tensor:
        # channels-last 3-D convolutions and pools have oneDNN kernels for float32 (and half types) only
        channels_last = x.dtype != torch.float64
        folded = self._folded_weights(channels_last)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        for name in self.stages:
            stage = getattr(self, name)
            if isinstance(stage, Unit3D):
                x = stage.fast(x, *folded[stage])
            elif isinstance(stage, InceptionBlock):
                x = stage.fast(x, folded)
            else:
                x = stage.fast(x)
        return self.avg_pool(x)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, 3, T, 224, 224]` -> average-pooled Mixed_5c maps `[B, 1024, T', 1, 1]`."""
        if self._use_fast():
            return self._fast_pooled(x)
        for name in self.stages:
            x = getattr(self, name)(x)
        return self.avg_pool(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """1024-d pooled features `[B, 1024]`, averaged over the remaining time steps."""
        return self.pooled(x).mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pooled(x)
        if self._use_fast():
            logits = self.logits.fast(pooled, *self._folded_weights(pooled.dtype != torch.float64)[self.logits])
        else:
            logits = self.logits(self.dropout(pooled))  # (B, 400, T', 1, 1)
        return logits.squeeze(4).squeeze(3).mean(dim=2)
