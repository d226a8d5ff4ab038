"""VideoGPT stage 1: a 3-D VQ-VAE with axial-attention residual blocks.

Yan, Zhang, Abbeel, Srinivas. "VideoGPT: Video Generation using VQ-VAE and Transformers", 2021.
https://arxiv.org/abs/2104.10157

Sec. 3.1: an encoder of strided 3-D convolutions (down-sampling T, H and W by per-axis powers of two, e.g. 4x4x4:
16x128x128 -> 4x32x32, or 2x4x4) followed by attention residual blocks (normalisation, ReLU, 3x3x3 and 1x1x1
convolutions, then axial self-attention over T, H and W); a decoder that mirrors it with transposed 3-D convolutions.
The bottleneck is a 1024 x 256 codebook learnt with exponential moving averages (decay 0.99, van den Oord et al.
2017, App. A.1), initialised from encoder outputs on the first training batch and with dead codes restarted from
random encoder outputs (Dhariwal et al. 2020); commitment weight 0.25; straight-through gradients. The loss is the
MSE normalised by the data variance plus the commitment loss; videos are scaled to [-0.5, 0.5] inside the model.
Sizes follow the paper's Table 8 for UCF-101 (240 hidden channels, 128 residual channels, 4 residual layers).

Deviations:
* Residual blocks use BatchNorm3d, as the official code (`wilson1yan/VideoGPT`, `videogpt/vqvae.py`) does; the
  bottleneck width is the paper's 128 "residual units" (the official code uses hidden // 2 = 120).
* The codebook's "initialised" flag is a buffer, so a resumed run does not initialise the codebook a second time
  (the official code keeps it in a Python attribute that checkpoints lose).
* A code is dead when its EMA count falls below `restart_threshold` (official: 1); its embedding is replaced, but
  its EMA statistics are kept, exactly as in the official code.
* Adam's default lr is 7e-4 (Table 8); the official `configure_optimizers` hard-codes 3e-4.
* `sample()`: a VQ-VAE alone has no prior. It decodes codes drawn uniformly from the codebook (a uniform prior),
  so the model satisfies the zoo's contract and `zoo eval` scores it as a floor for stage 2. Reconstructions, what
  stage 1 is judged by, are shown in the training sample grids (real clips left, reconstructions right) and
  returned by `reconstruct()`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from zoo.config import valid_ranges
from zoo.models.base import VideoGenerativeModel, VideoSpec
from zoo.models.layers.axial_attention import AxialAttention3d
from zoo.registry import register_model


@valid_ranges(
    hidden_channels="[1, 8192]", residual_channels="[1, 8192]", residual_layers="[1, 64]", attention_heads="[1, 64]",
    downsample="[1, 64]", codebook_size="[2, 1048576]", embedding_dim="[1, 8192]", ema_decay="[0, 1)",
    commitment_weight="[0, inf)", data_variance="(0, inf)", restart_threshold="[0, inf)",
    lr="(0, 1]", beta1="[0, 1)", beta2="[0, 1)",
)
@dataclass
class VQVAEConfig:
    hidden_channels: int = 240  # encoder/decoder width (paper Table 8: 240 hidden units)
    residual_channels: int = 128  # bottleneck width inside an attention residual block (Table 8: 128)
    residual_layers: int = 4  # attention residual blocks in the encoder and in the decoder (Table 8: 4)
    attention_heads: int = 2  # heads of each axial attention (official code: 2)
    downsample: tuple[int, int, int] = (4, 4, 4)  # (T, H, W) down-sampling factors, powers of two
    codebook_size: int = 1024  # K codes (Table 8: 1024)
    embedding_dim: int = 256  # D, code width (Table 8: 256)
    ema_decay: float = 0.99  # EMA decay of the codebook statistics
    commitment_weight: float = 0.25  # beta of the commitment loss
    data_variance: float = 0.06  # variance of the training data in [-0.5, 0.5] (official constant), normalises MSE
    restart_threshold: float = 1.0  # codes whose EMA count falls below this are restarted from encoder outputs
    lr: float = 7e-4  # Adam learning rate (Table 8)
    beta1: float = 0.9  # Adam beta1
    beta2: float = 0.999  # Adam beta2

    def validate(self) -> None:
        for d in self.downsample:
            if d < 1 or d & (d - 1):
                raise ValueError(f"model.downsample factors must be powers of two, got {self.downsample}")


class SamePadConv3d(nn.Module):
    """3-D convolution whose output is `input / stride` per axis: the input is padded by `kernel - stride` (the
    larger half in front), so every stride works with an even kernel. Where that padding is symmetric (odd kernels
    at stride 1, kernel 4 at stride 2) the convolution pads natively, without copying its input; only the
    asymmetric remainder (kernel 4 on a stride-1 axis) goes through `F.pad`."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: tuple[int, int, int] = (1, 1, 1), bias=True):
        super().__init__()
        native, self.pad = _split_padding(_same_padding(kernel, stride))
        self.conv = nn.Conv3d(c_in, c_out, kernel, stride=stride, padding=native, bias=bias)
        self.space_to_depth = _space_to_depth_pays(kernel, stride, c_in)
        self.pointwise = kernel == 1 and tuple(stride) == (1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pointwise:
            # a 1^3 convolution is a matrix product over channels: on a channels-last map it reads and writes in
            # place, where PyTorch's CPU convolution takes a slow path that returns channels-first (copies after it)
            rows = F.linear(x.permute(0, 2, 3, 4, 1), self.conv.weight.flatten(1), self.conv.bias)  # (B, T, H, W, O)
            return rows.permute(0, 4, 1, 2, 3)  # (B, O, T, H, W), channels-last 3-D
        if self.space_to_depth and not any(n % 2 for n in x.shape[2:]):  # odd sizes: the plain path below
            # pad 1, then every 2x2x2 block of voxels becomes 8 channels: the stride-2 kernel-4 convolution is then
            # a stride-1 kernel-2 one (the same products, summed in another order; fewer idle lanes on 3 channels)
            blocks = rearrange(F.pad(x, (1, 1, 1, 1, 1, 1)), "b c (t i) (h j) (w k) -> b (c i j k) t h w",
                               i=2, j=2, k=2).contiguous(memory_format=torch.channels_last_3d)  # (B, 8C, T/2+1, ...)
            return F.conv3d(blocks, _kernel_to_depth(self.conv.weight), self.conv.bias)  # (B, C_out, T/2, H/2, W/2)
        return self.conv(F.pad(x, self.pad) if any(self.pad) else x)


class SamePadConvTranspose3d(nn.Module):
    """Transposed 3-D convolution whose output is `input * stride` per axis (the mirror of `SamePadConv3d`): the
    input padded as there, then a transposed convolution with padding `kernel - 1`. Input padding of p on both sides
    of an axis equals `p * stride` less of the transposed convolution's padding, so the symmetric part is native."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: tuple[int, int, int]):
        super().__init__()
        native, self.pad = _split_padding(_same_padding(kernel, stride))
        padding = tuple(kernel - 1 - p * s for p, s in zip(native, stride))
        self.conv = nn.ConvTranspose3d(c_in, c_out, kernel, stride=stride, padding=padding)
        self.depth_to_space = _space_to_depth_pays(kernel, stride, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.depth_to_space:
            # the adjoint of `SamePadConv3d`'s space-to-depth form: a stride-1 kernel-2 transposed convolution to
            # 8 x C_out channels, each 8 channels a 2x2x2 block of voxels, then the outer voxel cropped on every side
            y = F.conv_transpose3d(x, _kernel_to_depth(self.conv.weight))  # (B, 8 C_out, T+1, H+1, W+1)
            y = rearrange(y, "b (c i j k) t h w -> b c (t i) (h j) (w k)", i=2, j=2, k=2)[:, :, 1:-1, 1:-1, 1:-1]
            return y.contiguous(memory_format=torch.channels_last_3d) + self.conv.bias[:, None, None, None]
        return self.conv(F.pad(x, self.pad) if any(self.pad) else x)


# Space-to-depth pays only where the convolution has few channels on its full-resolution side (the RGB end of the
# encoder and decoder): at the paper config (batch 2, 16x64x64, 3 <-> 240 channels) forward + backward measured 1.95x
# (convolution) and 1.63x (transposed) faster on one CPU thread, but 0.71x / 0.79x at 240 <-> 240 channels.
SPACE_TO_DEPTH_MAX_CHANNELS = 16


def _space_to_depth_pays(kernel: int, stride: tuple[int, int, int], channels: int) -> bool:
    return kernel == 4 and tuple(stride) == (2, 2, 2) and channels <= SPACE_TO_DEPTH_MAX_CHANNELS


def _kernel_to_depth(weight: torch.Tensor) -> torch.Tensor:
    """A `(O, I, 4, 4, 4)` kernel as the `(O, 8 I, 2, 2, 2)` kernel of its space-to-depth form: tap 2a + i of an axis
    is tap a over the i-th voxel of each 2-voxel block (same order as the input's blocks)."""
    return rearrange(weight, "o c (t i) (h j) (w k) -> o (c i j k) t h w", i=2, j=2, k=2)


def _same_padding(kernel: int, stride: tuple[int, int, int]) -> tuple[int, ...]:
    pad: list[int] = []
    for s in reversed(stride):  # F.pad lists the last axis (W) first
        total = kernel - s
        pad += [total - total // 2, total // 2]
    return tuple(pad)


def _split_padding(pad: tuple[int, ...]) -> tuple[tuple[int, int, int], tuple[int, ...]]:
    """`F.pad` amounts (last axis first) -> (native symmetric padding per axis (T, H, W), the `F.pad` remainder)."""
    pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]  # (before, after), W first
    native = [min(pair) for pair in pairs]
    remainder = tuple(p - n for pair, n in zip(pairs, native) for p in pair)
    return tuple(reversed(native)), remainder


def _strides(downsample: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """Per-layer strides: every axis halves until its factor is used up, e.g. (2, 4, 4) -> [(2, 2, 2), (1, 2, 2)]."""
    steps = [int(math.log2(d)) for d in downsample]
    return [tuple(2 if i < s else 1 for s in steps) for i in range(max(steps))]


class AttentionResidualBlock(nn.Module):
    """x + [norm, ReLU, conv 3^3 -> residual, norm, ReLU, conv 1^3 -> hidden, norm, ReLU, axial attention](x)."""

    def __init__(self, hidden: int, residual: int, heads: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.BatchNorm3d(hidden), nn.ReLU(),
            SamePadConv3d(hidden, residual, 3, bias=False),
            nn.BatchNorm3d(residual), nn.ReLU(),
            SamePadConv3d(residual, hidden, 1, bias=False),
            nn.BatchNorm3d(hidden), nn.ReLU(),
            AxialAttention3d(hidden, heads),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def _residual_stack(c: VQVAEConfig) -> nn.Sequential:
    blocks = [AttentionResidualBlock(c.hidden_channels, c.residual_channels, c.attention_heads)
              for _ in range(c.residual_layers)]
    return nn.Sequential(*blocks, nn.BatchNorm3d(c.hidden_channels), nn.ReLU())


class Encoder(nn.Module):
    """(B, C, T, H, W) in [-0.5, 0.5] -> (B, hidden, T/dt, H/dh, W/dw): strided 4^3 convolutions with ReLU, a 3^3
    convolution, then the attention residual stack."""

    def __init__(self, channels: int, c: VQVAEConfig):
        super().__init__()
        widths = [channels] + [c.hidden_channels] * len(_strides(c.downsample))
        self.downs = nn.ModuleList(
            SamePadConv3d(w_in, c.hidden_channels, 4, stride)
            for w_in, stride in zip(widths[:-1], _strides(c.downsample))
        )
        self.conv_last = SamePadConv3d(widths[-1], c.hidden_channels, 3)
        self.residual = _residual_stack(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Channels-last 3-D from here on (the decoder inherits it through the codebook): oneDNN's convolutions and
        # BatchNorm have channels-last kernels, axial attention and the quantiser read the maps without copies.
        x = x.contiguous(memory_format=torch.channels_last_3d)
        for down in self.downs:
            x = F.relu(down(x))
        return self.residual(self.conv_last(x))


class Decoder(nn.Module):
    """(B, hidden, T', H', W') -> (B, C, T, H, W): the attention residual stack, then strided transposed 4^3
    convolutions (ReLU between, none after the last), mirroring the encoder."""

    def __init__(self, channels: int, c: VQVAEConfig):
        super().__init__()
        self.residual = _residual_stack(c)
        strides = _strides(c.downsample)
        widths = [c.hidden_channels] * len(strides) + [channels]
        self.ups = nn.ModuleList(
            SamePadConvTranspose3d(w_in, w_out, 4, stride)
            for w_in, w_out, stride in zip(widths[:-1], widths[1:], strides)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.residual(h)
        for i, up in enumerate(self.ups):
            h = up(h)
            if i < len(self.ups) - 1:
                h = F.relu(h)
        return h


@dataclass
class Quantized:
    """What the codebook returns for a batch of encoder outputs `z` `(B, D, T', H', W')`."""

    embeddings: torch.Tensor  # (B, D, T', H', W'): the chosen codes, with straight-through gradients to z
    codes: torch.Tensor  # (B, T', H', W') long: code indices
    commitment_loss: torch.Tensor  # beta * ||z - sg(e)||^2, scalar
    perplexity: torch.Tensor  # exp(entropy) of the batch's code histogram, scalar
    usage: torch.Tensor  # fraction of the codebook chosen at least once in the batch (all ranks in training)


def _all_reduce(x: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(x)
    return x


def _broadcast(x: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.broadcast(x, 0)
    return x


class EMACodebook(nn.Module):
    """Vector quantiser with EMA codebook updates, data-dependent initialisation and dead-code restarts.

    Buffers (no gradients): `embeddings` (K, D); `cluster_size` N (K), the EMA of how often each code is chosen;
    `embedding_sum` (K, D), the EMA of the sum of encoder outputs assigned to each code; `initialized`.
    In training mode each forward updates them (all-reduced across DDP ranks): N <- d N + (1 - d) n,
    S <- d S + (1 - d) sum z, e = S / N (Laplace-smoothed); then every code with N < threshold is restarted at a
    random encoder output of the batch (rank 0's choice, broadcast).
    """

    def __init__(self, size: int, dim: int, decay: float, commitment_weight: float, restart_threshold: float):
        super().__init__()
        self.size, self.dim, self.decay = size, dim, decay
        self.commitment_weight, self.restart_threshold = commitment_weight, restart_threshold
        self.register_buffer("embeddings", torch.randn(size, dim))
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("embedding_sum", self.embeddings.clone())
        self.register_buffer("initialized", torch.tensor(False))

    def random_outputs(self, flat: torch.Tensor) -> torch.Tensor:
        """K rows drawn without replacement from `flat` (N, D); when N < K the rows are repeated with a little
        noise (std 0.01 / sqrt(D)) so that no two codes coincide."""
        if flat.shape[0] < self.size:
            repeats = math.ceil(self.size / flat.shape[0])
            flat = flat.repeat(repeats, 1)
            flat = flat + torch.randn_like(flat) * (0.01 / math.sqrt(self.dim))
        rows = torch.randperm(flat.shape[0], device=flat.device)[: self.size]
        return _broadcast(flat[rows].contiguous())

    @torch.no_grad()
    def initialise(self, flat: torch.Tensor) -> None:
        chosen = self.random_outputs(flat)
        self.embeddings.copy_(chosen)
        self.embedding_sum.copy_(chosen)
        self.cluster_size.fill_(1.0)
        self.initialized.fill_(True)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, T', H', W') long -> embeddings (B, D, T', H', W')."""
        return rearrange(F.embedding(codes, self.embeddings), "b t h w d -> b d t h w")

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for every row of `flat` (N, D)."""
        distances = (
            flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embeddings.t() + self.embeddings.pow(2).sum(1)[None]
        )  # (N, K)
        return distances.argmin(1)

    @torch.no_grad()
    def ema_update(self, flat: torch.Tensor, codes: torch.Tensor, counts: torch.Tensor) -> None:
        """One EMA step from encoder outputs `flat` (N, D), their codes (N,) and all ranks' code counts (K,)."""
        sums = _all_reduce(torch.zeros_like(self.embedding_sum).index_add_(0, codes, flat))  # (K, D)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embedding_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + 1e-7) / (total + self.size * 1e-7) * total  # Laplace smoothing
        self.embeddings.copy_(self.embedding_sum / smoothed[:, None])
        dead = (self.cluster_size < self.restart_threshold)[:, None]
        self.embeddings.copy_(torch.where(dead, self.random_outputs(flat), self.embeddings))

    def forward(self, z: torch.Tensor) -> Quantized:
        b, _, t, h, w = z.shape
        flat = rearrange(z, "b d t h w -> (b t h w) d").detach()
        if self.training and not bool(self.initialized):
            self.initialise(flat)
        codes = self.nearest(flat)  # (B T' H' W',)
        embeddings = self.lookup(rearrange(codes, "(b t h w) -> b t h w", b=b, t=t, h=h, w=w))
        commitment = self.commitment_weight * F.mse_loss(z, embeddings.detach())
        # (K,) in the statistics' dtype (as the official one-hots `type_as` the inputs): a float64 model's
        # perplexity was float32
        counts = torch.bincount(codes, minlength=self.size).to(self.cluster_size.dtype)  # (K,)
        if self.training:  # only training steps synchronise ranks (evaluation may run unevenly across them)
            counts = _all_reduce(counts)
            self.ema_update(flat, codes, counts)
        probs = counts / counts.sum()
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
        straight_through = z + (embeddings - z).detach()
        return Quantized(straight_through, rearrange(codes, "(b t h w) -> b t h w", b=b, t=t, h=h, w=w),
                         commitment, perplexity, (counts > 0).float().mean())


@register_model(
    "videogpt_vqvae",
    description="VideoGPT stage 1: 3-D conv + axial-attention VQ-VAE with an EMA codebook (train before videogpt)",
    paper="Yan et al., VideoGPT: Video Generation using VQ-VAE and Transformers, 2021, https://arxiv.org/abs/2104.10157",
)
class VideoGPTVQVAE(VideoGenerativeModel):
    """VideoGPT's VQ-VAE (Yan et al. 2021, Sec. 3.1); see the module docstring for the architecture and deviations."""

    config_class = VQVAEConfig

    def __init__(self, config: VQVAEConfig, spec: VideoSpec):
        super().__init__(config, spec)
        config.validate()
        size = (spec.frames, spec.resolution, spec.resolution)
        if any(s % d for s, d in zip(size, config.downsample)):
            raise ValueError(f"frames x resolution^2 {size} must be divisible by model.downsample {config.downsample}")
        c = config
        self.encoder = Encoder(spec.channels, c)
        self.pre_quantize = SamePadConv3d(c.hidden_channels, c.embedding_dim, 1)
        self.codebook = EMACodebook(c.codebook_size, c.embedding_dim, c.ema_decay, c.commitment_weight,
                                    c.restart_threshold)
        self.post_quantize = SamePadConv3d(c.embedding_dim, c.hidden_channels, 1)
        self.decoder = Decoder(spec.channels, c)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(T', H', W'): the grid of codes of one clip."""
        size = (self.spec.frames, self.spec.resolution, self.spec.resolution)
        return tuple(s // d for s, d in zip(size, self.config.downsample))

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, Quantized]:
        """Encode, quantise, decode.

        Args:
            video: float `[B, C, T, H, W]` in [-1, 1].

        Returns:
            The reconstruction `[B, C, T, H, W]` on the model's internal [-0.5, 0.5] scale (not clamped), and the
            quantiser's output.
        """
        quantized = self.codebook(self.pre_quantize(self.encoder(video * 0.5)))
        return self.decoder(self.post_quantize(quantized.embeddings)), quantized

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Video `[B, C, T, H, W]` in [-1, 1] -> codes `[B, T', H', W']` long (never updates the codebook)."""
        flat = rearrange(self.pre_quantize(self.encoder(video * 0.5)), "b d t h w -> (b t h w) d")
        b, (t, h, w) = video.shape[0], self.latent_shape
        return rearrange(self.codebook.nearest(flat), "(b t h w) -> b t h w", b=b, t=t, h=h, w=w)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes `[B, T', H', W']` long -> video `[B, C, T, H, W]` in [-1, 1]."""
        video = self.decoder(self.post_quantize(self.codebook.lookup(codes)))
        return video.clamp(-0.5, 0.5) * 2.0

    def reconstruct(self, video: torch.Tensor) -> torch.Tensor:
        """Reconstructions `[B, C, T, H, W]` in [-1, 1] of `video` (same shape, in [-1, 1])."""
        with self.evaluating():
            return self.decode(self.encode(video))

    def sample(self, n, labels=None, generator=None, frames=None):
        """Decodes codes drawn uniformly from the codebook (a uniform prior; see the module docstring)."""
        self.check_frames(frames)
        self.check_labels(n, labels, generator)  # unconditional: refuses labels
        with self.evaluating():
            codes = self.randint(self.config.codebook_size, n, *self.latent_shape, generator=generator)
            return self.decode(codes)

    # -- training -------------------------------------------------------------------------------------------------

    def reconstruction_loss(self, video: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
        """MSE on the [-0.5, 0.5] scale divided by the data variance (Sec. 3.1)."""
        return F.mse_loss(reconstruction, video * 0.5) / self.config.data_variance

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        reconstruction, quantized = self(batch["video"])
        recon = self.reconstruction_loss(batch["video"], reconstruction)
        loss = recon + quantized.commitment_loss
        self.log_losses(
            {"loss": loss, "recon_loss": recon, "commitment_loss": quantized.commitment_loss,
             "perplexity": quantized.perplexity, "codebook_usage": quantized.usage},
            prog_bar=("recon_loss", "perplexity"),
        )  # fmt: skip
        return loss

    def configure_optimizers(self):
        c = self.config
        # fused: one kernel for all parameters (CPU and GPU), the same update up to float rounding
        return torch.optim.Adam(self.parameters(), lr=c.lr, betas=(c.beta1, c.beta2), fused=True)

    def grid_videos(self, real, generator):
        """The sample grid shows reconstructions of the real clips (what stage 1 is judged by)."""
        return self.reconstruct(real["video"])
