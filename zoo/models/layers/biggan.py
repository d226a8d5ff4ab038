"""BigGAN building blocks for video GANs: spectrally normalized layers with orthogonal init, frame-wise
class-conditional BatchNorm, residual up-blocks (G), residual down-blocks in 2-D and 3-D (D) and the projection head.

Brock, Donahue, Simonyan 2019, "Large Scale GAN Training for High Fidelity Natural Image Synthesis" (arXiv 1809.11096),
Appendix B (architectures); reused by DVD-GAN (Clark et al. 2019, arXiv 1907.06571, Sec. 3 and Appendix), whose
generator applies 2-D blocks to every frame and whose temporal discriminator starts with 3-D versions of the D block
(as DeepMind's DGMR discriminator, which reuses "the D blocks of the DVD-GAN", does: 3x3(x3) convolutions, 2x2(x2)
average pooling, a 1x1 convolution on the shortcut when the width changes).

Every network takes `(B, C, T, H, W)` videos; G blocks and the frame BatchNorm fold time into the batch for their
convolutions but keep one set of BatchNorm statistics per frame index (DVD-GAN: statistics are not pooled over time).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm


def sn(module: nn.Module) -> nn.Module:
    """Orthogonal init (BigGAN's `G_init='ortho'`), then spectral normalization of the weight (one power iteration)."""
    nn.init.orthogonal_(module.weight)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    return spectral_norm(module)


@torch.no_grad()
def refresh_spectral_norm_vectors(module: nn.Module, iterations: int = 10) -> None:
    """`iterations` power iterations from normalised vectors for every spectrally normalized weight of `module`.

    Needed for an EMA copy: averaging the power-iteration vectors u, v of G's weights gives vectors shorter than 1,
    and in eval mode torch's spectral norm divides by u^T W v without normalising them again, so the averaged
    network's weights were blown up (saturated samples). Weights are those of `sn` (dim 0: output channels). Ten
    iterations bring u^T W v within about 5% of the largest singular value even from unrelated vectors (three left
    some weights 10% too large, depending on the random draw)."""
    for m in module.modules():
        if not parametrize.is_parametrized(m, "weight"):
            continue
        for p in m.parametrizations.weight:
            if hasattr(p, "_u") and hasattr(p, "_v"):
                w = m.parametrizations.weight.original.flatten(1)  # (out, in * k...)
                v = F.normalize(p._v, dim=0, eps=p.eps)
                for _ in range(iterations):
                    u = F.normalize(w @ v, dim=0, eps=p.eps)
                    v = F.normalize(w.T @ u, dim=0, eps=p.eps)
                p._u.copy_(u)
                p._v.copy_(v)


def snconv2d(channels_in: int, channels_out: int, kernel_size: int = 3, padding: int | None = None, **kw) -> nn.Module:
    padding = kernel_size // 2 if padding is None else padding
    return sn(nn.Conv2d(channels_in, channels_out, kernel_size, padding=padding, **kw))


def snconv3d(channels_in: int, channels_out: int, kernel_size: int = 3, padding: int | None = None, **kw) -> nn.Module:
    padding = kernel_size // 2 if padding is None else padding
    return sn(nn.Conv3d(channels_in, channels_out, kernel_size, padding=padding, **kw))


def snlinear(features_in: int, features_out: int, bias: bool = True) -> nn.Module:
    return sn(nn.Linear(features_in, features_out, bias=bias))


def snembedding(num_classes: int, features: int) -> nn.Module:
    return sn(nn.Embedding(num_classes, features))


class FrameConditionalBatchNorm(nn.Module):
    """Class-conditional BatchNorm with one set of statistics per frame index (DVD-GAN; BigGAN's CBN per frame).

    Training normalises each channel of frame t with the mean and variance over the batch and space of frame t only;
    evaluation uses running statistics kept per (channel, frame). Under DDP the batch is every rank's clips (DVD-GAN
    and BigGAN normalise over the whole batch, synced across TPU cores): the per-(channel, frame) sums of x and x^2
    and the element count are all-reduced (differentiably), so each rank normalises with the global statistics.
    The gain `1 + W_g c` and bias `W_b c` come from spectrally normalized linear maps of the conditioning vector c
    (BigGAN-deep: [z; e(y)] for every block); with `cond_features=0` they are plain learned per-channel parameters
    (BigGAN's unconditional output BatchNorm).

    Args:
        channels: C.
        frames: T, the clip length the statistics are kept for.
        cond_features: length of the conditioning vector c.
        eps, momentum: as in `nn.BatchNorm2d`.
    """

    def __init__(self, channels: int, frames: int, cond_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        if cond_features:
            self.gain: nn.Module = snlinear(cond_features, channels, bias=False)
            self.bias: nn.Module = snlinear(cond_features, channels, bias=False)
        else:
            self.weight = nn.Parameter(torch.ones(channels))
            self.shift = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels, frames))
        self.register_buffer("running_var", torch.ones(channels, frames))

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """x `(B, C, T, H, W)`, cond `(B, cond_features)` (None when unconditional) -> `(B, C, T, H, W)`."""
        if x.shape[1:3] != self.running_mean.shape:
            raise ValueError(f"frame BatchNorm holds statistics for (C, T) = {tuple(self.running_mean.shape)}, "
                             f"got a map of (C, T) = {tuple(x.shape[1:3])}")
        if self.training and distributed_world() > 1:
            x = self.synced_normalize(x)
        else:
            c = x.shape[1]
            # frame t of channel c is its own BatchNorm channel: (B, C, T, H, W) -> (B, C*T, H, W) is a free view,
            # and the fused kernel then keeps one mean / variance (and running statistic) per (channel, frame)
            x = F.batch_norm(rearrange(x, "b c t h w -> b (c t) h w"), self.running_mean.view(-1),
                             self.running_var.view(-1), training=self.training, momentum=self.momentum, eps=self.eps)
            x = rearrange(x, "b (c t) h w -> b c t h w", c=c)
        if cond is None:
            return x * self.weight[:, None, None, None] + self.shift[:, None, None, None]
        gain = 1 + self.gain(cond)[:, :, None, None, None]  # (B, C, 1, 1, 1): the same for every frame
        return x * gain + self.bias(cond)[:, :, None, None, None]


    def synced_normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Training-mode normalisation with statistics over every rank's batch (sums all-reduced)."""
        local = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x  # sums in at least float32
        count = local.new_tensor([local.numel() / (x.shape[1] * x.shape[2])])  # elements per (channel, frame)
        sums = torch.cat([local.sum(dim=(0, 3, 4)).flatten(), local.square().sum(dim=(0, 3, 4)).flatten(), count])
        sums = AllReduceSum.apply(sums)
        n, size = sums[-1], self.running_mean.numel()
        mean = (sums[:size] / n).view_as(self.running_mean)
        var = (sums[size:2 * size] / n).view_as(self.running_mean) - mean.square()
        with torch.no_grad():
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
            unbiased = var * (n / (n - 1))  # as F.batch_norm keeps it
            self.running_var.lerp_(unbiased.to(self.running_var.dtype), self.momentum)
        scale = torch.rsqrt(var + self.eps)[None, :, :, None, None]
        return ((local - mean[None, :, :, None, None]) * scale).to(x.dtype)


class AllReduceSum(torch.autograd.Function):
    """Sum over the ranks of the default group; the gradient of every rank's input is the sum of all ranks' output
    gradients (each rank's output depends on every input)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        torch.distributed.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        torch.distributed.all_reduce(grad)
        return grad


def distributed_world() -> int:
    """Processes in the default process group (1 when none is initialised)."""
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class FrameGBlock(nn.Module):
    """BigGAN G residual block applied to every frame: CBN-ReLU-up-conv3x3-CBN-ReLU-conv3x3, shortcut up-conv1x1.

    Args:
        channels_in, channels_out: widths.
        frames: T (for the per-frame BatchNorm statistics).
        cond_features: conditioning vector length.
        upsample: double H and W (nearest neighbour, as BigGAN).
    """

    def __init__(self, channels_in: int, channels_out: int, frames: int, cond_features: int, upsample: bool = True):
        super().__init__()
        self.upsample = upsample
        self.bn1 = FrameConditionalBatchNorm(channels_in, frames, cond_features)
        self.conv1 = snconv2d(channels_in, channels_out)
        self.bn2 = FrameConditionalBatchNorm(channels_out, frames, cond_features)
        self.conv2 = snconv2d(channels_out, channels_out)
        needs_shortcut = channels_in != channels_out or upsample
        self.shortcut = snconv2d(channels_in, channels_out, 1) if needs_shortcut else None

    def _frames(self, x: torch.Tensor, layer: nn.Module, upsample: bool) -> torch.Tensor:
        b = x.shape[0]
        x = rearrange(x, "b c t h w -> (b t) c h w")
        if upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return rearrange(layer(x), "(b t) c h w -> b c t h w", b=b)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(B, C_in, T, H, W) -> (B, C_out, T, 2H, 2W) (or H, W without upsampling)."""
        h = self._frames(F.relu(self.bn1(x, cond)), self.conv1, self.upsample)
        h = self._frames(F.relu(self.bn2(h, cond)), self.conv2, False)
        if self.shortcut is not None:
            x = self._frames(x, self.shortcut, self.upsample)
        return x + h


class DBlock(nn.Module):
    """BigGAN D residual block in 2-D (`dims=2`, input `(N, C, H, W)`) or 3-D (`dims=3`, input `(B, C, T, H, W)`).

    Residual: [ReLU] conv3 ReLU conv3 [avg-pool 2]; shortcut: [conv1x1] [avg-pool 2] (conv first when the residual is
    pre-activated, as BigGAN's `DBlock`). The first block of a discriminator skips the leading ReLU (it sees pixels).

    Args:
        channels_in, channels_out: widths.
        dims: 2 or 3.
        downsample: halve H and W (and T in 3-D when `downsample_time`).
        preactivation: ReLU before the first convolution.
        downsample_time: 3-D only; halve T too (DGMR's 3-D D blocks pool 2x2x2).
    """

    def __init__(self, channels_in: int, channels_out: int, dims: int = 2, downsample: bool = True,
                 preactivation: bool = True, downsample_time: bool = True):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"DBlock dims must be 2 or 3, got {dims}")
        conv = snconv2d if dims == 2 else snconv3d
        self.preactivation = preactivation
        self.conv1 = conv(channels_in, channels_out)
        self.conv2 = conv(channels_out, channels_out)
        self.shortcut = conv(channels_in, channels_out, 1) if channels_in != channels_out or downsample else None
        if not downsample:
            self.pool: nn.Module = nn.Identity()
        elif dims == 2:
            self.pool = nn.AvgPool2d(2)
        else:
            self.pool = nn.AvgPool3d((2 if downsample_time else 1, 2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preactivation else x
        h = self.pool(self.conv2(F.relu(self.conv1(h))))
        if self.shortcut is not None:
            x = self.pool(self.shortcut(x)) if self.preactivation else self.shortcut(self.pool(x))
        return x + h


class ProjectionHead(nn.Module):
    """BigGAN / projection-discriminator output (Miyato & Koyama 2018): ReLU, sum over space, then
    `w . h + <e(y), h>` (the class term only when `num_classes > 0`).

    Args:
        channels: width of the last D block.
        num_classes: 0 for an unconditional discriminator.
    """

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.linear = snlinear(channels, 1)
        self.embed = snembedding(num_classes, channels) if num_classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """x `(N, C, H, W)`, labels `(N,)` or None -> scores `(N,)`."""
        h = F.relu(x).sum(dim=(2, 3))  # (N, C)
        score = self.linear(h).squeeze(1)
        if self.embed is not None:
            score = score + (self.embed(labels) * h).sum(dim=1)
        return score
