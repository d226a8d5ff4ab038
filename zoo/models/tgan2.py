"""TGANv2: Train Sparsely, Generate Densely: Memory-efficient Unsupervised Training of High-resolution Temporal GAN.

Saito, Saito, Koyama, Kobayashi. IJCV 2020. https://arxiv.org/abs/1811.09245 (official Chainer code:
`pfnet-research/tgan2`; every fact below was read there: `multi_tgan_clstm_generator.py`, `conv_lstm.py`,
`resblocks.py`, `multi_resnet_video_discriminator.py`, `datasets/multi_level.py`, `updaters/dirac_updater.py`,
`conf/*.yml`, the README's UCF-101 command).

Generator (Sec. 3): z_slow ~ U(-1, 1)^256 -> linear -> a `base x base` map with `clstm_channels` channels -> stacked
3x3 ConvLSTMs unrolled over T frames (the map enters at t = 0, zeros after) -> per-frame 2-D up-sampling residual
blocks (SNGAN GenBlock, BatchNorm) with a rendering head (BN, ReLU, 3x3 conv, tanh) after each of the last 4 blocks.
Between levels a *subsampling layer* (training only) keeps every 2nd frame from a random offset (`subsample_frame`)
and every 2nd video (`subsample_batch`), so level l renders T / 2^l frames at resolution R / 2^(L-1-l). At inference
only the last level renders, densely: all frames of every video. The discriminator is one SNGAN-style 3-D ResNet per
level (3x3x3 kernels, no spectral norm), each fed its level's fake and real tensors; real clips reach level l with
the same frame subsampling (per-clip random offsets) and 2^(L-1-l) average pooling.

Loss (`DiracUpdater`, reg_type 'real'): D minimizes mean softplus(-y_real) + mean softplus(y_fake) + lambda *
sum_levels sum_batch ||dy/dx_real||^2; G minimizes mean softplus(-y_fake). `y` is every level's score concatenated
along the batch axis, so the means run over all levels' samples together (the issue's "scores summed": each
sample's score enters the loss once, levels weighted by their sample count).

Defaults = the official README's UCF-101 command, the run behind the repository's reported IS 25.07: ConvLSTM 1 layer
x 1024 channels, lambda 0.5, n_dis 1, `subsample_batch` off (commit ec18e2c "Do not use batch sub-sampling in
UCF101" switched it off), frame subsampling on, 192x192 (base map 3x3), batch 32 per GPU x 4 GPUs, 100k iterations,
learning rate decayed linearly to 0 from iteration 0. The other official values stay reachable: `conf/dirac.yml` has
lambda 10, n_dis 3, subsample_batch on; `conf/gen/tgan_multi_192x256.yml` 3 ConvLSTM layers x 512.

Optimizer: Adam, eps 8e-8 as in every official config (`eps: 0.00000008`; the paper notes say 1e-8), applied
Chainer-style (`zoo.models.optim.eps_before_bias_correction`: eps added to sqrt(v) before the bias correction of the
step size, as the official optimizer; PyTorch's own placement gave a different first step).

Update (`DiracUpdater.update_core`): a *simultaneous* update. The first pass of a step draws one real batch and one
batch of fakes, scores both with the current D, back-propagates G's loss (at the pre-update D) and D's loss (the
same fakes, detached) and steps both optimizers; with n_dis > 1 the next passes are D-only updates, each on a fresh
real batch and fresh fakes. Here: `simultaneous_update` and `fresh_real_batches` of the `GANModel` base (both on).
This is not an alternation: an alternating step would score G's fakes with the D just updated.

Deviations:
* Class-conditional variant: the official generator builds conditional BatchNorm layers when `n_classes > 0` but its
  forward never passes the labels (it would fail), and its updater passes labels where the generator expects
  `n_frames`. Here labels reach every conditional BN (generator) and every level's projection head (discriminator),
  subsampled along with the batch.
* Level count and block widths are config fields so that small resolutions work: `channel_multipliers` lists the
  blocks (official 16, 8, 4, 2, 1, 1 x ch = 32), `levels` rendering heads follow the last `levels` blocks, and the
  base map is `resolution / 2^len(channel_multipliers)` (official `t_size`: 3 for 192, 4 for 256).
* Real-clip augmentation is the data layer's (`experiments/tgan2/ucf101.yaml`): `data.hflip` (official `xflip`,
  p = 0.5) and `data.crop_jitter: 0.875` (official `_crop_center`: 192 of 256 columns at x0 ~ U{4..60}, the centre
  +- 28 px of the 32 px half slack), drawn per clip from the data seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from zoo.config import valid_ranges
from zoo.errors import ZooError
from zoo.models.base import VideoSpec
from zoo.models.gan import GANModel, Losses
from zoo.models.layers.conv_rnn import ConvLSTMCell, unroll
from zoo.models.layers.resblocks import (
    DisBlock3d,
    OptimizedDisBlock3d,
    UpResBlock2d,
    apply_norm,
    batch_norm_2d,
    glorot_,
)
from zoo.models.losses import nonsaturating_d_loss, nonsaturating_g_loss, zero_centred_gradient_penalty_sum
from zoo.models.optim import eps_before_bias_correction
from zoo.registry import register_model


@valid_ranges(
    z_dim="[1, 4096]", clstm_channels="[1, 8192]", clstm_layers="[1, 16]", ch="[1, 4096]",
    channel_multipliers="[1, 256]", levels="[1, 16]", dis_channels="[1, 4096]", gp_weight="[0, inf)",
    n_dis="[1, 100]", lr="(0, 1]", beta1="[0, 1)", beta2="[0, 1)", eps="(0, 1)", lr_decay_start="[0, inf)",
    lr_decay_end="[1, inf)", sample_chunk="[1, 100000]",
)
@dataclass
class TGANv2Config:
    z_dim: int = 256  # z_slow: U(-1, 1) latent drawn once per video
    clstm_channels: int = 1024  # ConvLSTM width (README UCF command; conf/gen/*.yml: 512)
    clstm_layers: int = 1  # stacked ConvLSTMs (README UCF command; conf/gen/tgan_multi_192x256.yml: 3)
    ch: int = 32  # generator base width: block i outputs ch * channel_multipliers[i] channels
    channel_multipliers: list[int] = field(default_factory=lambda: [16, 8, 4, 2, 1, 1])  # one 2x up-sampling block each
    levels: int = 4  # rendering heads, after each of the last `levels` blocks; level l renders R / 2^(levels-1-l)
    subsample_frame: bool = True  # training: keep every 2nd frame (random offset) between levels
    subsample_batch: bool = False  # training: keep every 2nd video between levels (README UCF: off; conf/dirac: on)
    dis_channels: int = 64  # mid_ch of each level's 3-D ResNet discriminator (widths 1, 2, 4, 8, 16 x)
    class_conditional: bool = False  # conditional BN in G and projection in D (needs a labelled dataset)
    gp_weight: float = 0.5  # lambda of the zero-centred penalty on real data, summed over batch (conf/dirac: 10)
    n_dis: int = 1  # discriminator updates per generator update (README UCF command; conf/dirac.yml: 3)
    simultaneous_update: bool = True  # G and D gradients from the same fakes at pre-update weights (DiracUpdater)
    fresh_real_batches: bool = True  # a new real batch per D update (DiracUpdater calls the iterator n_dis times)
    lr: float = 1e-4  # Adam step size (alpha), G and D
    beta1: float = 0.0  # Adam beta1
    beta2: float = 0.9  # Adam beta2
    eps: float = 8e-8  # Adam eps (official configs: 0.00000008)
    lr_decay_start: int | None = 0  # step where the linear decay to 0 starts (README: 0); None = constant lr
    lr_decay_end: int = 100_000  # step where the learning rate reaches 0 (official: the 100k-iteration run's end)
    sample_chunk: int = 64  # frames rendered at once by sample() (memory bound; exact, BN uses running stats)

    def validate(self) -> None:
        """Checks across fields (single-field ranges are declared above and checked when the config is resolved)."""
        if not 1 <= self.levels <= len(self.channel_multipliers):
            raise ZooError(f"model.levels must be in [1, {len(self.channel_multipliers)}] (one per channel multiplier "
                           f"at most), got {self.levels}")
        if self.lr_decay_start is not None and self.lr_decay_start >= self.lr_decay_end:
            raise ZooError("model.lr_decay_start must be null or below model.lr_decay_end")


def lecun_normal_(module: nn.Module) -> nn.Module:
    """Chainer's default initializer (LeCunNormal: std sqrt(1 / fan_in)), zero bias."""
    nn.init.kaiming_normal_(module.weight, nonlinearity="linear")  # std = 1 / sqrt(fan_in)
    if module.bias is not None:
        nn.init.zeros_(module.bias)
    return module


class Subsample(nn.Module):
    """TGANv2's subsampling layer: in training, every `batch`-th video and every `frame`-th frame from one random
    offset in [0, frame) (shared by the batch, as in the official code); the identity in eval mode.

    Args:
        batch: batch stride (1 = off).
        frame: frame stride (1 = off).
    """

    def __init__(self, batch: int, frame: int):
        super().__init__()
        self.batch, self.frame = batch, frame

    def forward(self, h: torch.Tensor, labels: torch.Tensor | None = None):
        """h `(N, T, ...)`, labels `(N,)` -> `(ceil(N / batch), T / frame, ...)`, labels likewise."""
        if not self.training:
            return h, labels
        offset = int(torch.randint(self.frame, ()))  # CPU draw: seeded per step, works for any device
        return h[:: self.batch, offset :: self.frame], None if labels is None else labels[:: self.batch]


class MultiLevelGenerator(nn.Module):
    """ConvLSTM temporal generator + per-frame multi-level renderer (`MultiTGANCLSTMGenerator`).

    Args:
        config: the model config.
        channels: output colour channels.
        resolution: output height = width of the last level.
        num_classes: > 0 for class-conditional BatchNorm.
    """

    def __init__(self, config: TGANv2Config, channels: int, resolution: int, num_classes: int):
        super().__init__()
        c = config
        self.levels, self.num_classes, self.chunk = c.levels, num_classes, c.sample_chunk
        self.base = resolution >> len(c.channel_multipliers)  # official t_size
        self.clstm_channels = c.clstm_channels
        self.fc = lecun_normal_(nn.Linear(c.z_dim, c.clstm_channels * self.base**2))
        self.clstm = nn.ModuleList(ConvLSTMCell(c.clstm_channels, c.clstm_channels, 3) for _ in range(c.clstm_layers))
        for cell in self.clstm:  # official: x- and h-convolutions initialized (LeCun) separately, bias on x only
            w = cell.gates.weight.data
            nn.init.normal_(w[:, : c.clstm_channels], std=1 / math.sqrt(c.clstm_channels * 9))
            nn.init.normal_(w[:, c.clstm_channels :], std=1 / math.sqrt(c.clstm_channels * 9))
            nn.init.zeros_(cell.gates.bias)
        widths = [c.clstm_channels] + [c.ch * m for m in c.channel_multipliers]
        self.blocks = nn.ModuleList(
            UpResBlock2d(w_in, w_out, num_classes) for w_in, w_out in zip(widths[:-1], widths[1:])
        )
        self.first_level = len(self.blocks) - c.levels  # index of the block whose output level 0 renders
        level_widths = widths[self.first_level + 1 :]
        self.render_norms = nn.ModuleList(batch_norm_2d(w, num_classes) for w in level_widths)
        self.render_convs = nn.ModuleList(lecun_normal_(nn.Conv2d(w, channels, 3, padding=1)) for w in level_widths)
        self.subsample = Subsample(2 if c.subsample_batch else 1, 2 if c.subsample_frame else 1)

    def hidden_frames(self, z: torch.Tensor, frames: int) -> torch.Tensor:
        """z `(N, z_dim)` -> ConvLSTM states `(N, T, clstm, base, base)`: the map enters at t = 0, zeros after."""
        x0 = self.fc(z).view(len(z), self.clstm_channels, self.base, self.base)
        inputs = torch.cat([x0[:, :, None], x0.new_zeros(*x0.shape[:2], frames - 1, *x0.shape[2:])], dim=2)
        for cell in self.clstm:
            inputs = unroll(cell, inputs)  # (N, C, T, base, base)
        return rearrange(inputs, "n c t h w -> n t c h w")

    def render(self, level: int, h: torch.Tensor, labels: torch.Tensor | None, n: int) -> torch.Tensor:
        """Rendering head: BN, ReLU, 3x3 conv, tanh; `(n T, C, H, W)` -> video `(n, channels, T, H, W)`."""
        x = torch.tanh(self.render_convs[level](F.relu(apply_norm(self.render_norms[level], h, labels))))
        return rearrange(x, "(n t) c h w -> n c t h w", n=n)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None, frames: int):
        """Training: the list of `levels` videos `(N_l, C, T_l, H_l, W_l)` and the labels of each (or None).
        Eval: the last level rendered densely, `(N, C, frames, H, W)` in [-1, 1]."""
        h = self.hidden_frames(z, frames)  # (N, T, C, base, base)
        if not self.training:
            return self.render_dense(h, labels)
        outputs, level_labels = [], []
        for level in range(self.levels):
            if level > 0:
                h, labels = self.subsample(h, labels)
            n, t = h.shape[:2]
            flat = rearrange(h, "n t c hh ww -> (n t) c hh ww")
            frame_labels = None if labels is None else repeat(labels, "n -> (n t)", t=t)
            stop = self.first_level + 1 if level == 0 else self.first_level + level + 1
            start = 0 if level == 0 else stop - 1
            for block in self.blocks[start:stop]:
                flat = block(flat, frame_labels)
            outputs.append(self.render(level, flat, frame_labels, n))
            level_labels.append(labels)
            h = rearrange(flat, "(n t) c hh ww -> n t c hh ww", n=n)
        return outputs, level_labels

    def render_dense(self, h: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Every frame through every block and the last head, `chunk` frames at a time (eval-mode BN: exact)."""
        n, t = h.shape[:2]
        flat = rearrange(h, "n t c hh ww -> (n t) c hh ww")
        frame_labels = None if labels is None else repeat(labels, "n -> (n t)", t=t)
        chunks = []
        for i in range(0, len(flat), self.chunk):
            x = flat[i : i + self.chunk]
            y = None if frame_labels is None else frame_labels[i : i + self.chunk]
            for block in self.blocks:
                x = block(x, y)
            chunks.append(torch.tanh(self.render_convs[-1](F.relu(apply_norm(self.render_norms[-1], x, y)))))
        return rearrange(torch.cat(chunks), "(n t) c hh ww -> n c t hh ww", n=n)


class ResNetVideoDiscriminator(nn.Module):
    """One level's discriminator (`ResNetVideoDiscriminator`): an optimized first block (space pooled), four
    down-sampling 3-D residual blocks (widths 2, 4, 8, 16 x mid), ReLU, global *sum* pooling, linear score, plus a
    projection term <embed(y), h> when class-conditional."""

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int):
        super().__init__()
        widths = [mid_channels * m for m in (1, 2, 4, 8, 16)]
        self.blocks = nn.ModuleList([OptimizedDisBlock3d(in_channels, widths[0])])
        self.blocks.extend(DisBlock3d(w_in, w_out) for w_in, w_out in zip(widths[:-1], widths[1:]))
        self.linear = glorot_(nn.Linear(widths[-1], 1))
        self.embed = glorot_(nn.Embedding(num_classes, widths[-1])) if num_classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """`(B, C, T, H, W)` -> scores `(B,)`."""
        h = x
        for block in self.blocks:
            h = block(h)
        h = F.relu(h).sum(dim=(2, 3, 4))  # (B, 16 mid)
        out = self.linear(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(labels) * h).sum(1)
        return out


class MultiLevelDiscriminator(nn.Module):
    """One `ResNetVideoDiscriminator` per level (`MultiResNetVideoDiscriminator`, mid_ch 64)."""

    def __init__(self, levels: int, in_channels: int, mid_channels: int, num_classes: int):
        super().__init__()
        self.levels = nn.ModuleList(
            ResNetVideoDiscriminator(in_channels, mid_channels, num_classes) for _ in range(levels)
        )

    def forward(self, videos: list[torch.Tensor], labels: list[torch.Tensor | None]) -> list[torch.Tensor]:
        """Level l's video to level l's network; one score vector `(N_l,)` per level."""
        if len(videos) != len(self.levels):
            raise ValueError(f"expected {len(self.levels)} levels of videos, got {len(videos)}")
        return [d(x, y) for d, x, y in zip(self.levels, videos, labels)]


@register_model(
    "tgan2",
    description="ConvLSTM temporal generator, multi-level per-frame renderer with subsampling layers, one 3-D ResNet "
    "discriminator per level",
    paper="Saito et al., Train Sparsely, Generate Densely (TGANv2), IJCV 2020, https://arxiv.org/abs/1811.09245",
)
class TGANv2(GANModel):
    """TGANv2 (Saito et al. 2020, Sec. 3-4); see the module docstring for architecture, loss and deviations."""

    config_class = TGANv2Config

    def __init__(self, config: TGANv2Config, spec: VideoSpec):
        super().__init__(config, spec)
        config.validate()
        c = config
        blocks = len(c.channel_multipliers)
        if spec.resolution % (1 << blocks):
            raise ValueError(
                f"TGANv2 with {blocks} up-sampling blocks needs a resolution divisible by {1 << blocks}, got "
                f"{spec.resolution} (change model.channel_multipliers)"
            )
        frame_stride = 1 << (c.levels - 1) if c.subsample_frame else 1
        if spec.frames % frame_stride:
            raise ValueError(
                f"TGANv2 with {c.levels} levels and frame subsampling needs frames divisible by {frame_stride}, "
                f"got {spec.frames}"
            )
        self.num_classes = spec.num_classes if c.class_conditional else 0
        if c.class_conditional and self.num_classes == 0:
            raise ValueError("model.class_conditional needs a labelled dataset (num_classes > 0)")
        self.generator = MultiLevelGenerator(c, spec.channels, spec.resolution, self.num_classes)
        self.discriminator = MultiLevelDiscriminator(c.levels, spec.channels, c.dis_channels, self.num_classes)

    def configure_optimizers(self):
        c = self.config

        def adam(module: nn.Module) -> torch.optim.Adam:
            optimizer = torch.optim.Adam(module.parameters(), lr=c.lr, betas=(c.beta1, c.beta2), eps=c.eps)
            optimizer.register_step_pre_hook(eps_before_bias_correction(c.eps))
            return optimizer

        return [adam(self.generator), adam(self.discriminator)]

    # -- real clips per level ----------------------------------------------------------------------------------

    def real_levels(self, video: torch.Tensor, labels: torch.Tensor | None):
        """Real clips `(B, C, T, H, W)` as each level sees them (official `MultiLevelDataset` + updater): frames
        halved level by level from a random offset per clip, space average-pooled by 2^(L-1-l), batch strided."""
        c = self.config
        videos, level_labels, x = [], [], video
        for level in range(c.levels):
            if level > 0 and c.subsample_frame:
                offsets = torch.randint(2, (len(x),)).to(x.device)  # per clip, as the dataset draws them
                index = offsets[:, None] + 2 * torch.arange(x.shape[2] // 2, device=x.device)  # (B, T / 2)
                x = torch.take_along_dim(x, index[:, None, :, None, None], dim=2)
            stride = (1 << level) if c.subsample_batch else 1
            pool = 1 << (c.levels - 1 - level)
            videos.append(F.avg_pool3d(x[::stride], (1, pool, pool)) if pool > 1 else x[::stride])
            level_labels.append(None if labels is None else labels[::stride])
        return videos, level_labels

    # -- sampling -------------------------------------------------------------------------------------------------

    def uniform_noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z_slow ~ U(-1, 1)^(n, z_dim) on the model's device."""
        if generator is None:
            return torch.rand(n, self.config.z_dim, device=self.device) * 2 - 1
        z = torch.rand(n, self.config.z_dim, generator=generator, device=generator.device)
        return z.to(self.device) * 2 - 1

    @property
    def label_classes(self) -> int:
        return self.num_classes

    def _labels(self, n: int, labels: torch.Tensor | None, generator=None) -> torch.Tensor | None:
        if not self.num_classes and labels is None:
            return None  # unconditional: trains on a labelled dataset without its labels
        return self.check_labels(n, labels, generator)  # an unconditional model refuses labels

    def sample(self, n, labels=None, generator=None, frames=None):
        """Dense inference: `frames` (default: the training length; any length works, the ConvLSTM is recurrent)
        frames of `n` videos, last level only."""
        frames = self.spec.frames if frames is None else int(frames)
        if frames < 1:
            raise ZooError(f"tgan2 samples need frames >= 1, got {frames}")
        with self.evaluating():
            labels = self._labels(n, labels, generator)
            return self.generator(self.uniform_noise(n, generator), labels, frames)

    # -- training -------------------------------------------------------------------------------------------------

    def _batch_labels(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        if not self.num_classes:
            return None
        labels = batch["label"]
        if (labels < 0).any():
            raise ZooError("model.class_conditional needs labelled clips; this batch has label -1")
        return labels

    def fakes(self, n: int, labels: torch.Tensor | None):
        """Training-mode generator output: per-level fake videos and their labels."""
        return self.generator(self.uniform_noise(n), labels, self.spec.frames)

    def draw_fakes(self, batch: dict[str, torch.Tensor]):
        """Per-level fakes for `batch` and their labels, with the graph to G."""
        return self.fakes(len(batch["video"]), self._batch_labels(batch))

    def discriminator_loss(self, batch: dict[str, torch.Tensor], step: int, fakes=None) -> tuple[torch.Tensor, Losses]:
        video, labels = batch["video"], self._batch_labels(batch)
        reals, real_labels = self.real_levels(video, labels)
        penalize = self.config.gp_weight > 0
        if penalize:
            reals = [x.detach().requires_grad_(True) for x in reals]
        if fakes is None:
            with torch.no_grad():
                fakes = self.fakes(len(video), labels)  # fakes conditioned on the real labels (official)
        fake_videos, fake_labels = [x.detach() for x in fakes[0]], fakes[1]
        real_scores = self.discriminator(reals, real_labels)
        fake_scores = self.discriminator(fake_videos, fake_labels)
        d_loss = nonsaturating_d_loss(torch.cat(real_scores), torch.cat(fake_scores))
        gp = zero_centred_gradient_penalty_sum(real_scores, reals) if penalize else video.new_zeros(())
        return d_loss + self.config.gp_weight * gp, {"d_loss": d_loss, "gp": gp}

    def generator_loss(self, batch: dict[str, torch.Tensor], fakes=None) -> tuple[torch.Tensor, Losses]:
        fake_videos, fake_labels = fakes if fakes is not None else self.draw_fakes(batch)
        g_loss = nonsaturating_g_loss(torch.cat(self.discriminator(fake_videos, fake_labels)))
        return g_loss, {"g_loss": g_loss}

    def learning_rate(self, step: int) -> float:
        """Chainer `LinearShift`: lr until `lr_decay_start`, then linearly to 0 at `lr_decay_end`."""
        c = self.config
        if c.lr_decay_start is None or step <= c.lr_decay_start:
            return c.lr
        return c.lr * max(0.0, 1 - (step - c.lr_decay_start) / (c.lr_decay_end - c.lr_decay_start))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        lr = self.learning_rate(self.iteration)  # a function of the step: resumed runs continue the same schedule
        for optimizer in self.optimizers():
            for group in optimizer.optimizer.param_groups:
                group["lr"] = lr
        super().training_step(batch, batch_idx)
