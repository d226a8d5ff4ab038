"""DVD-GAN: Adversarial Video Generation on Complex Datasets (v1 title: Efficient Video Generation on Complex Datasets).

Clark, Donahue, Simonyan. 2019. https://arxiv.org/abs/1907.06571 (no official code).

A class-conditional BigGAN for video with two discriminators (Sec. 3):
* **G**: z ~ N(0, I_120) and a learned 120-d class embedding e(y) form c = [z; e(y)]; an affine (SN-linear) map of c
  gives a 4x4 map, the input of a ConvGRU unrolled once per frame. Per-frame BigGAN residual up-blocks follow, every
  BatchNorm class-conditional on the full c (BigGAN-deep style) with statistics per frame, never pooled over time.
  Separable self-attention (H, then W, then T) sits before the last residual block. Output: BN-ReLU-conv3x3-tanh.
* **D_S**: a 2-D BigGAN discriminator on k = 8 frames drawn at random per clip at full resolution; per-frame
  projection scores summed. **D_T**: the whole clip after 2x2 average pooling; its first two residual blocks 3-D
  (pooling 2x2x2), the rest 2-D per frame; projection scores summed over the remaining frames (as DGMR, which reuses
  DVD-GAN's D blocks). Both use projection conditioning on the class.
* Hinge loss summed over D_S and D_T; 2 D steps per G step; Adam betas (0, 0.999); G lr 1e-4; spectral norm on every
  layer of G and D, orthogonal init; G EMA 0.9999 from step 20k, used for sampling and evaluation; truncated z at
  sampling as an option.

Version followed: **v2** (the arXiv revision titled "Adversarial Video Generation on Complex Datasets"): a ConvGRU at
the start of every resolution group, each group then holding two residual blocks (one keeping the resolution, one
up-sampling; the order within the group is ours). `rnn_per_group=False` gives the v1 layout: one ConvGRU at 4x4,
followed by one joint (non-separable) self-attention on the 4x4 x T map, the same two blocks per group.

Choices where the sources are silent or disagree (also in docs/models/dvdgan.md):
* D learning rate 5e-4: the v2 summary's value (the v1 text reads "2e-4?" and the unofficial Harrypotterrrr code uses
  2e-4 with betas (0, 0.9)). The D:G ratio is 5:1, not BigGAN's 4:1 (BigGAN-PyTorch, the BigGAN author's reference
  code, launches its ImageNet runs with `--G_lr 1e-4 --D_lr 4e-4`). `d_lr` changes it.
* Widths come from BigGAN's architecture tables (BigGAN-PyTorch `G_arch` / `D_arch`), ch = 96 (`g_ch`, `d_ch`).
  G: BigGAN's 128x128 G, ch * min(16, resolution / r) channels at resolution r (16, 16, 8, 4, 2, 1 x ch from 4x4 to
  128x128); DVD-GAN doubles the residual blocks per resolution and adds a ConvGRU per group, which is where most of
  its parameters are (a 3x3 ConvGRU at 16 x 96 channels holds 127M). D_S is BigGAN's D for the frame resolution
  (`d_widths`: down-blocks to 4x4, then one block at 4x4; 1, 2, 4, 8, 16, 16 x ch at 128); D_T is BigGAN's D for the
  pooled resolution (at 128: the 64x64 D, 1, 2, 4, 8, 16 x ch). D has no attention (not described).
* Frame BatchNorm statistics are synced over the whole batch under DDP (`FrameConditionalBatchNorm`: per-(channel,
  frame) sums all-reduced), as BigGAN / DVD-GAN normalise over all TPU cores' samples.
* Every D update draws a fresh real batch (`fresh_real_batches`: the data layer serves `n_dis` batches per step), as
  BigGAN-PyTorch's `train_fns.GAN_training_function` splits its loaded batch into one chunk per D step.
* Fakes for D are drawn with uniformly random classes; the clip length is fixed by the per-frame BN statistics.
* After every EMA update the EMA generator's spectral-norm vectors get 10 power iterations on the averaged weights
  (averaged u, v are not unit vectors, and torch's eval-mode spectral norm uses them as they are).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from zoo.config import valid_ranges
from zoo.models.base import VideoSpec
from zoo.models.gan import GANModel, Losses
from zoo.models.layers.biggan import (
    DBlock,
    FrameConditionalBatchNorm,
    FrameGBlock,
    ProjectionHead,
    refresh_spectral_norm_vectors,
    snconv2d,
    snconv3d,
    snembedding,
    snlinear,
)
from zoo.models.layers.conv_rnn import ConvGRUCell, unroll
from zoo.models.layers.separable_attention import JointSelfAttention, SeparableAttention
from zoo.models.losses import hinge_d_loss, hinge_g_loss
from zoo.registry import register_model

GRU_ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}


@valid_ranges(
    dim_z="[1, 4096]", dim_class="[0, 4096]", g_ch="[1, 4096]", d_ch="[1, 4096]", gru_activation=("relu", "tanh"),
    gru_kernel="[1, 15]", k_frames="[1, 4096]", temporal_pool="[1, 64]", temporal_3d_blocks="[0, 16]",
    n_dis="[1, 100]", g_lr="(0, 1]", d_lr="(0, 1]", beta1="[0, 1)", beta2="[0, 1)", ema_decay="[0, 1)",
    ema_start="[0, inf)",
)
@dataclass
class DVDGANConfig:
    dim_z: int = 120  # latent z ~ N(0, I) per video
    dim_class: int = 120  # learned class embedding e(y), concatenated to z (class-conditional only)
    class_conditional: bool = True  # condition G and D on labels when the dataset has them; false: unconditional
    g_ch: int = 96  # G base width: ch * min(16, resolution / r) channels at resolution r (BigGAN 128 schedule)
    d_ch: int = 96  # D_S and D_T base width, same schedule
    rnn_per_group: bool = True  # v2: a ConvGRU opens every resolution group; false: v1, one ConvGRU at 4x4
    gru_activation: str = "relu"  # ConvGRU candidate nonlinearity: relu (DVD-GAN) or tanh (Ballas et al. 2016)
    gru_kernel: int = 3  # ConvGRU spatial kernel
    attention: bool = True  # separable self-attention (H, W, T) before the last residual block of G
    k_frames: int = 8  # frames per clip D_S sees, drawn at random without replacement
    temporal_pool: int = 2  # D_T's average pooling of H and W (factor)
    temporal_3d_blocks: int = 2  # D_T's first residual blocks that are 3-D (the rest are 2-D per frame)
    n_dis: int = 2  # D updates per G update
    fresh_real_batches: bool = True  # a new real batch for every D update (BigGAN's loop); false: one per step
    g_lr: float = 1e-4  # Adam learning rate of G
    d_lr: float = 5e-4  # Adam learning rate of D_S and D_T (one optimizer); see the module docstring
    beta1: float = 0.0  # Adam beta1 (G and D)
    beta2: float = 0.999  # Adam beta2 (G and D)
    ema_decay: float = 0.9999  # decay of the generator EMA used for sampling and evaluation
    ema_start: int = 20000  # training step from which the EMA averages (before: it copies G's weights)


def _width(ch: int, resolution: int, r: int) -> int:
    return ch * min(16, resolution // r)


def d_widths(resolution: int) -> list[int]:
    """Channel multipliers of BigGAN's D at `resolution` (BigGAN-PyTorch `D_arch` out_channels): one down-block per
    halving to 4x4, doubling to at most 16, then one block at 4x4 that doubles once more (64: 1, 2, 4, 8, 16;
    128: 1, 2, 4, 8, 16, 16)."""
    downs = int(math.log2(resolution // 4))
    return [min(16, 2**i) for i in range(downs + 1)]


class DVDGANGenerator(nn.Module):
    """G (Clark et al. 2019, Sec. 3 and Fig. 2): [z; e(y)] -> 4x4 -> (ConvGRU, 2 residual blocks) per group -> video."""

    def __init__(self, config: DVDGANConfig, spec: VideoSpec, num_classes: int):
        super().__init__()
        c, res = config, spec.resolution
        self.frames, self.ch0 = spec.frames, _width(c.g_ch, res, 4)
        self.embed = snembedding(num_classes, c.dim_class) if num_classes else None
        cond = c.dim_z + (c.dim_class if num_classes else 0)
        self.affine = snlinear(cond, self.ch0 * 4 * 4)
        activation = GRU_ACTIVATIONS[c.gru_activation]

        def gru(width: int) -> ConvGRUCell:
            return ConvGRUCell(width, width, c.gru_kernel, activation, conv=snconv2d)

        def conv1x1(a: int, b: int) -> nn.Module:
            return snconv3d(a, b, 1, bias=False)

        self.grus, self.blocks, self.up_blocks = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        r = 4
        while r < res:
            width, out = _width(c.g_ch, res, r), _width(c.g_ch, res, 2 * r)
            self.grus.append(gru(width) if (c.rnn_per_group or r == 4) else nn.Identity())
            self.blocks.append(FrameGBlock(width, width, spec.frames, cond, upsample=False))
            self.up_blocks.append(FrameGBlock(width, out, spec.frames, cond, upsample=True))
            r *= 2
        # v1: one joint attention on the 4x4 RNN output; both: separable attention before the last residual block
        self.first_attention = JointSelfAttention(self.ch0, conv1x1) if not c.rnn_per_group else None
        self.attention = SeparableAttention(_width(c.g_ch, res, res // 2), conv1x1) if c.attention else None
        self.out_bn = FrameConditionalBatchNorm(_width(c.g_ch, res, res), spec.frames, 0)
        self.out_conv = snconv2d(_width(c.g_ch, res, res), spec.channels)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """z `(B, dim_z)`, labels `(B,)` or None -> videos `(B, C, T, H, W)` in [-1, 1]."""
        cond = z if self.embed is None else torch.cat([z, self.embed(labels)], dim=1)  # (B, cond)
        x = rearrange(self.affine(cond), "b (c h w) -> b c h w", h=4, w=4)
        x = repeat(x, "b c h w -> b c t h w", t=self.frames)  # the same input at every GRU step
        for i, (gru, block, up_block) in enumerate(zip(self.grus, self.blocks, self.up_blocks)):
            if isinstance(gru, ConvGRUCell):
                x = unroll(gru, x)  # (B, C, T, H, W): hidden state per frame
            if i == 0 and self.first_attention is not None:
                x = self.first_attention(x)
            x = block(x, cond)
            if i == len(self.blocks) - 1 and self.attention is not None:
                x = self.attention(x)
            x = up_block(x, cond)
        x = F.relu(self.out_bn(x))
        b = x.shape[0]
        x = self.out_conv(rearrange(x, "b c t h w -> (b t) c h w"))
        return torch.tanh(rearrange(x, "(b t) c h w -> b c t h w", b=b))


class SpatialDiscriminator(nn.Module):
    """D_S: BigGAN's 2-D D applied to `k` frames per clip drawn at random; the k per-frame scores are summed."""

    def __init__(self, config: DVDGANConfig, spec: VideoSpec, num_classes: int):
        super().__init__()
        self.k = config.k_frames
        *widths, last = [config.d_ch * m for m in d_widths(spec.resolution)]
        blocks = [DBlock(a, b, dims=2, preactivation=i > 0) for i, (a, b) in enumerate(zip([spec.channels] + widths,
                                                                                                widths))]
        blocks.append(DBlock(widths[-1], last, dims=2, downsample=False))
        self.blocks = nn.Sequential(*blocks)
        self.head = ProjectionHead(last, num_classes)

    def select_frames(self, videos: torch.Tensor) -> torch.Tensor:
        """Per clip, `k` distinct random frame indices `(B, k)` (different draws for different clips)."""
        b, t = videos.shape[0], videos.shape[2]
        return torch.rand(b, t, device=videos.device).argsort(dim=1)[:, : self.k]

    def forward(self, videos: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """videos `(B, C, T, H, W)` -> scores `(B,)`."""
        index = self.select_frames(videos)  # (B, k)
        frames = videos[torch.arange(videos.shape[0], device=videos.device)[:, None], :, index]  # (B, k, C, H, W)
        scores = self.head(self.blocks(rearrange(frames, "b k c h w -> (b k) c h w")),
                           None if labels is None else labels.repeat_interleave(self.k))
        return rearrange(scores, "(b k) -> b k", k=self.k).sum(dim=1)


class TemporalDiscriminator(nn.Module):
    """D_T: the whole clip 2x2 average-pooled; 3-D residual blocks first, then 2-D blocks per frame; the per-frame
    projection scores summed over time."""

    def __init__(self, config: DVDGANConfig, spec: VideoSpec, num_classes: int):
        super().__init__()
        self.pool = config.temporal_pool
        *widths, last = [config.d_ch * m for m in d_widths(spec.resolution // self.pool)]
        blocks3d, blocks2d, t = [], [], spec.frames
        for i, (a, b) in enumerate(zip([spec.channels] + widths, widths)):
            if i < config.temporal_3d_blocks:
                blocks3d.append(DBlock(a, b, dims=3, preactivation=i > 0, downsample_time=t >= 2))
                t = t // 2 if t >= 2 else t
            else:
                blocks2d.append(DBlock(a, b, dims=2, preactivation=i > 0))
        blocks2d.append(DBlock(widths[-1], last, dims=2, downsample=False))
        self.blocks3d, self.blocks2d = nn.Sequential(*blocks3d), nn.Sequential(*blocks2d)
        self.head = ProjectionHead(last, num_classes)

    def pooled(self, videos: torch.Tensor) -> torch.Tensor:
        """What D_T looks at: `(B, C, T, H / p, W / p)`, each frame average-pooled p x p."""
        return F.avg_pool3d(videos, (1, self.pool, self.pool))

    def forward(self, videos: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """videos `(B, C, T, H, W)` -> scores `(B,)`."""
        b = videos.shape[0]
        x = self.blocks3d(self.pooled(videos))  # (B, C', T', H', W')
        t = x.shape[2]
        x = self.blocks2d(rearrange(x, "b c t h w -> (b t) c h w"))
        scores = self.head(x, None if labels is None else labels.repeat_interleave(t))
        return rearrange(scores, "(b t) -> b t", b=b).sum(dim=1)


@register_model(
    "dvdgan",
    description="class-conditional BigGAN for video: ConvGRU + per-frame residual G, separable attention, "
    "spatial (k random frames) and temporal (2x2-pooled clip) discriminators",
    paper="Clark et al., Adversarial Video Generation on Complex Datasets (DVD-GAN), 2019, https://arxiv.org/abs/1907.06571",
)
class DVDGAN(GANModel):
    """DVD-GAN (Clark, Donahue, Simonyan 2019); the module docstring lists the architecture and every choice."""

    config_class = DVDGANConfig

    def __init__(self, config: DVDGANConfig, spec: VideoSpec):
        super().__init__(config, spec)
        validate(config, spec)
        self.num_classes = spec.num_classes if config.class_conditional else 0
        self.generator = DVDGANGenerator(config, spec, self.num_classes)
        self.spatial_discriminator = SpatialDiscriminator(config, spec, self.num_classes)
        self.temporal_discriminator = TemporalDiscriminator(config, spec, self.num_classes)
        self.init_generator_ema(config.ema_decay, config.ema_start)

    def configure_optimizers(self):
        c = self.config
        d_params = [*self.spatial_discriminator.parameters(), *self.temporal_discriminator.parameters()]
        return [torch.optim.Adam(self.generator.parameters(), lr=c.g_lr, betas=(c.beta1, c.beta2)),
                torch.optim.Adam(d_params, lr=c.d_lr, betas=(c.beta1, c.beta2))]

    @torch.no_grad()
    def update_generator_ema(self) -> None:
        super().update_generator_ema()
        refresh_spectral_norm_vectors(self.generator_ema.module)  # averaged u, v are not unit vectors

    # -- sampling ---------------------------------------------------------------------------------------------------

    def latents(self, n: int, truncation: float | None = None, generator=None) -> torch.Tensor:
        """z `(n, dim_z)` ~ N(0, I); with `truncation`, entries beyond +-truncation are redrawn (BigGAN's trick)."""
        z = self.randn(n, self.config.dim_z, generator=generator)
        if truncation is not None:
            if truncation <= 0:
                raise ValueError(f"truncation must be > 0, got {truncation}")
            while (outside := z.abs() > truncation).any():
                z = torch.where(outside, self.randn(n, self.config.dim_z, generator=generator), z)
        return z

    @property
    def label_classes(self) -> int:
        return self.num_classes

    def labels_for(self, n: int, labels: torch.Tensor | None, generator=None) -> torch.Tensor | None:
        if not self.num_classes and labels is None:
            return None
        return self.check_labels(n, labels, generator)  # an unconditional model refuses labels

    def sample(self, n, labels=None, generator=None, frames=None, truncation: float | None = None):
        """Videos from the EMA generator; `truncation` (e.g. 0.5) trades diversity for fidelity (paper Table 1)."""
        self.check_frames(frames)
        with self.evaluating():
            y = self.labels_for(n, labels, generator)
            z = self.latents(n, truncation, generator)
            return self.sampling_generator(z, y)

    # -- training ---------------------------------------------------------------------------------------------------

    def discriminate(self, videos: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.spatial_discriminator(videos, labels), self.temporal_discriminator(videos, labels)

    def fakes(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        labels = self.labels_for(n, None)
        return self.generator(self.latents(n), labels), labels

    def discriminator_loss(self, batch: dict[str, torch.Tensor], step: int) -> tuple[torch.Tensor, Losses]:
        real = batch["video"]
        real_labels = batch["label"] if self.num_classes else None
        with torch.no_grad():
            fake, fake_labels = self.fakes(real.shape[0])
        real_s, real_t = self.discriminate(real, real_labels)
        fake_s, fake_t = self.discriminate(fake, fake_labels)
        d_spatial, d_temporal = hinge_d_loss(real_s, fake_s), hinge_d_loss(real_t, fake_t)
        return d_spatial + d_temporal, {"d_loss": d_spatial + d_temporal, "d_spatial": d_spatial,
                                        "d_temporal": d_temporal}

    def generator_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Losses]:
        fake, labels = self.fakes(batch["video"].shape[0])
        fake_s, fake_t = self.discriminate(fake, labels)
        g_spatial, g_temporal = hinge_g_loss(fake_s), hinge_g_loss(fake_t)
        return g_spatial + g_temporal, {"g_loss": g_spatial + g_temporal, "g_spatial": g_spatial,
                                        "g_temporal": g_temporal}


def validate(c: DVDGANConfig, spec: VideoSpec) -> None:
    """Config against data, with messages that say what to change (ValueError; `zoo fit` reports it as a ZooError)."""
    res = spec.resolution
    if res < 8 or res & (res - 1):
        raise ValueError(f"DVD-GAN needs a power-of-two resolution >= 8, got {res}")
    if c.gru_activation not in GRU_ACTIVATIONS:
        raise ValueError(f"model.gru_activation must be one of {sorted(GRU_ACTIVATIONS)}, got {c.gru_activation!r}")
    if not 1 <= c.k_frames <= spec.frames:
        raise ValueError(f"model.k_frames must be in [1, data.frames={spec.frames}], got {c.k_frames}")
    if c.temporal_pool < 1 or res // c.temporal_pool < 8 or c.temporal_pool & (c.temporal_pool - 1):
        raise ValueError(f"model.temporal_pool must be a power of two leaving >= 8 pixels, got {c.temporal_pool}")
    t_blocks = int(math.log2(res // c.temporal_pool // 4))
    if not 0 <= c.temporal_3d_blocks <= t_blocks:
        raise ValueError(f"model.temporal_3d_blocks must be in [0, {t_blocks}] at {res} px, got {c.temporal_3d_blocks}")
    for name in ("dim_z", "g_ch", "d_ch", "n_dis", "gru_kernel"):
        if getattr(c, name) < 1:
            raise ValueError(f"model.{name} must be >= 1, got {getattr(c, name)}")
    if c.attention and c.g_ch * 2 < 8:
        raise ValueError(f"model.attention needs g_ch >= 4 (attention width >= 8), got g_ch={c.g_ch}")
    if c.class_conditional and spec.num_classes and c.dim_class < 1:
        raise ValueError(f"model.dim_class must be >= 1 for class-conditional training, got {c.dim_class}")
    for name in ("g_lr", "d_lr"):
        if not getattr(c, name) > 0:
            raise ValueError(f"model.{name} must be > 0, got {getattr(c, name)}")
    if not (0 <= c.beta1 < 1 and 0 <= c.beta2 < 1):
        raise ValueError(f"model.beta1 and beta2 must be in [0, 1), got {c.beta1}, {c.beta2}")
    if not 0 <= c.ema_decay < 1 or c.ema_start < 0:
        raise ValueError(f"model.ema_decay must be in [0, 1) and ema_start >= 0, got {c.ema_decay}, {c.ema_start}")
