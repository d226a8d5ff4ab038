"""StyleGAN-V: A Continuous Video Generator with the Price, Image Quality and Perks of StyleGAN2.

Skorokhodov, Tulyakov, Elhoseiny. CVPR 2022. https://arxiv.org/abs/2112.14683

A video is a continuous function of time: one content code w (StyleGAN2 mapping network, z 512 -> w 512) for the
whole video, and per-frame motion codes v(t) (Sec. 3.1): motion noise is drawn every `motion_z_distance` frames,
processed by a padding-free Conv1d network (kernel 11, two layers, lr x 0.01), and turned into an *acyclic
positional encoding*: sinusoids whose periods, phases and amplitudes are predicted from the motion code, with the
value at each motion-code step replaced by a learned, linearly interpolated "aligner" so that the encoding is not
periodic and is stitched at those steps. v(t) is concatenated to the constant 4x4 input of a StyleGAN2 synthesis
network (skip architecture, modulated convolutions, no per-pixel noise). Any real-valued t can be rendered.

The discriminator (Sec. 3.2) is a StyleGAN2 ResNet discriminator applied per frame; the features of the k = 3 frames
of a clip are concatenated at 16x16 (channels halved there) and processed jointly; the time gaps between the frames
are embedded (a learned embedding of the rounded gap + fixed Fourier features), mapped by a 2-layer MLP (the official
`train.py` sets `D_kwargs.mapping_kwargs.num_layers = 2`, overriding the class default of 8) and used as the
projection conditioning of the output. Training is sparse (Sec. 3.3): 3 frames per clip, gaps from
{2, 4, 8, 16, 32} (max distance 32), generated frames at fractional times.

Hyper-parameters are the official `stylegan-v.yaml` with StyleGAN2-ADA's `auto` preset at 256^2, batch 64 (UCF-101):
mapping 2 layers, channel_base 16384, channel_max 512, Adam lr 0.0025, betas (0, 0.99), R1 gamma
0.0002 * 256^2 / 64 = 0.2048 applied lazily every 16 D steps, lr and betas compensated for lazy regularization as in
StyleGAN2 (G by 4/5: its path-length phase is a no-op with weight 0, D by 16/17), G EMA with a half-life of
batch * 10 / 32 kimg (in clips per step) and no ramp-up, non-saturating loss, minibatch-std group 4, ADA target 0.6
with ada_kimg 100 and the same augmentation for every frame of a clip (video-consistent). The official `train.py`
turns the `auto` preset's 5% EMA ramp-up off and sets ada_kimg to 100 for every run not started with `resume=latest`
or `noresume` (its `resume` default is None, so a fresh run takes this branch): these are the defaults here.

Kimg counts frames. The official loop advances `cur_nimg` by `batch_size * num_frames_per_video` per step, so its
25,000 kimg at batch 64 and 3 frames are ceil(25e6 / 192) = 130,209 steps (`training_steps_for_kimg`). Only the
training length and the EMA ramp-up (`cur_nimg * ema_rampup`, off by default) read that count; the EMA decay
(0.5 ** (batch / ema_nimg)) and ADA's step (batch * interval / (ada_kimg * 1000)) use the batch in clips, and lazy R1
runs when the step index is a multiple of 16: each follows the official expression (`training_loop.py`).

Checked against the official code (`universome/stylegan-v`, `src/training/{networks,layers,motion,loss}.py`); layers
are written in plain PyTorch (`zoo/models/layers/stylegan.py`). Deviations:
* Augmentation: ADA's adaptive probability and target are kept, but only a subset of its `bgc` pipeline is
  implemented (x-flip, 90-degree rotation, integer translation; brightness, contrast, saturation), not the
  geometric scaling / arbitrary rotation / fractional translation or luma-flip / hue transforms. On short CPU runs p
  stays near 0 anyway.
* The paper also describes modulating the first layer of each D block by the time-gap embedding; the released code
  conditions only through the output projection, which is what is implemented here.
* The official D's R1 runs as a separate optimizer step every 16 steps (the "Dreg" phase); so does ours. Mixed
  precision is Lightning's (`--precision 16-mixed`) instead of StyleGAN2's per-block fp16 with activation clamping.
* Unconditional only (the paper's UCF-101 model is unconditional); `phase_dropout_std` of the config is unused in
  the released motion encoder and is not implemented.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from einops import rearrange, repeat
from torch import nn

from zoo.config import valid_ranges
from zoo.errors import ZooError
from zoo.frame_sampling import sparse_frame_times
from zoo.models.base import VideoSpec
from zoo.models.gan import GANModel
from zoo.models.layers.stylegan import (
    EqualizedConv1d,
    EqualizedConv2d,
    EqualizedLinear,
    MappingNetwork,
    MinibatchStd,
    SynthesisLayer,
    ToRGB,
    channels_per_resolution,
    setup_filter,
    upsample2d,
)
from zoo.models.losses import nonsaturating_d_loss, nonsaturating_g_loss, r1_penalty
from zoo.models.video_augment import VideoAugment
from zoo.registry import register_model


@valid_ranges(
    z_dim="[1, 4096]", w_dim="[1, 4096]", mapping_layers="[1, 16]", channel_base="[16, 1048576]",
    channel_max="[1, 4096]", motion_z_dim="[1, 4096]", motion_v_dim="[1, 4096]", motion_kernel="[1, 63]",
    motion_z_distance="[1, 1024]", time_enc_dim="[1, 4096]", min_period="(0, inf)", max_period="(0, inf)",
    max_num_frames="[2, 100000]", concat_res="[4, 1024]", frames_div_factor="[1, 64]",
    time_gap_embed_dim="[1, 4096]", d_mapping_layers="[1, 16]", mbstd_group_size="[1, 1024]",
    sample_frames="[1, 100000]", max_distance="[1, 2048]", lr="(0, 1]", beta1="[0, 1)", beta2="[0, 1)",
    r1_gamma="[0, inf)", r1_interval="[1, 100000]", g_reg_interval="[1, 100000]", ema_kimg="(0, inf)",
    ema_rampup="[0, 1]", ada_target="[0, 1]", ada_interval="[1, 100000]", ada_kimg="(0, inf)",
)
@dataclass
class StyleGANVConfig:
    z_dim: int = 512  # content noise size
    w_dim: int = 512  # content code (W) size
    mapping_layers: int = 2  # StyleGAN2-ADA `auto` preset: 2 mapping layers
    channel_base: int = 16384  # synthesis / D width = min(channel_base / resolution, channel_max) (fmaps 0.5)
    channel_max: int = 512  # widest layer
    motion_z_dim: int = 512  # motion noise size
    motion_v_dim: int = 512  # motion code size after the Conv1d network
    motion_kernel: int = 11  # Conv1d kernel of the motion network (two layers, no padding)
    motion_z_distance: int = 16  # frames between consecutive motion codes (= min_period_len)
    time_enc_dim: int = 256  # sinusoids of the acyclic positional encoding (output 2x this)
    min_period: float = 16.0  # shortest sinusoid period, frames
    max_period: float = 1024.0  # longest sinusoid period, frames
    max_num_frames: int = 1024  # longest video the time embeddings cover (dataset max_num_frames)
    concat_res: int = 16  # D: resolution at which the frames' features are concatenated
    frames_div_factor: int = 2  # D: channels divided by this before concatenation
    time_gap_embed_dim: int = 256  # D: learned embedding of the rounded time gap
    d_mapping_layers: int = 2  # D: MLP of the time-gap conditioning (official train.py overrides the default 8 to 2)
    mbstd_group_size: int = 4  # minibatch-std group
    sample_frames: int = 16  # frames `sample()` renders by default (training sees sparse frames)
    max_distance: int = 32  # largest gap between a generated clip's first and last frame (as the data's)
    lr: float = 0.0025  # Adam learning rate (before lazy-regularization compensation)
    beta1: float = 0.0
    beta2: float = 0.99
    r1_gamma: float = 0.2048  # 0.0002 * resolution^2 / batch at 256^2, batch 64 (the `auto` heuristic)
    r1_interval: int = 16  # lazy R1: every this many D steps, weighted by the interval
    g_reg_interval: int = 4  # G's lazy-regularization interval (only its lr / betas compensation applies)
    ema_kimg: float = 20.0  # G EMA half-life in thousands of clips (batch * 10 / 32)
    ema_rampup: float = 0.0  # half-life <= this fraction of the frames seen so far; 0 = off (official fresh runs)
    augment: bool = True  # adaptive, video-consistent augmentation (ADA)
    ada_target: float = 0.6  # target of E[sign(D(real))]
    ada_interval: int = 4  # steps between adjustments of p
    ada_kimg: float = 100.0  # thousands of clips for p to move by 1 (official fresh runs: 100, not the preset's 500)

    def check_experiment(self, data, train) -> None:
        """What the networks need of the data and batch (each of these settings crashed the first step)."""
        frames = data.frames
        if self.max_distance < frames - 1:
            raise ValueError(f"model.max_distance = {self.max_distance} cannot span {frames} distinct frames "
                             f"(data.frames): it must be at least {frames - 1}")
        # D embeds each gap between consecutive frames (nn.Embedding(max_num_frames)); a clip spanning d frames has
        # consecutive gaps up to d - (frames - 2), generated (model.max_distance) and real (data.sparse_max_distance)
        widest = max(self.max_distance, data.sparse_max_distance)
        needed = max(frames, widest - frames + 3)
        if self.max_num_frames < needed:
            raise ValueError(f"model.max_num_frames = {self.max_num_frames} is too small: the discriminator embeds "
                             f"time gaps up to {widest - frames + 2} frames (model.max_distance={self.max_distance}, "
                             f"data.sparse_max_distance={data.sparse_max_distance}, data.frames={frames}); "
                             f"set it to at least {needed}")
        if data.resolution & (data.resolution - 1) == 0 and self.channel_base < data.resolution:
            raise ValueError(f"model.channel_base = {self.channel_base} leaves no channels at {data.resolution} px "
                             f"(width = channel_base / resolution): it must be at least {data.resolution}")
        concat_width = min(self.channel_base // self.concat_res, self.channel_max)
        if concat_width < self.frames_div_factor:
            raise ValueError(f"the discriminator's width at model.concat_res = {self.concat_res} is {concat_width} "
                             f"(min(model.channel_base / {self.concat_res}, model.channel_max = {self.channel_max})), "
                             f"below model.frames_div_factor = {self.frames_div_factor}, which divides it: raise "
                             "channel_max / channel_base or lower frames_div_factor")
        group = min(self.mbstd_group_size, train.batch_size)
        if train.batch_size % group:
            raise ValueError(f"model.mbstd_group_size = {self.mbstd_group_size} must divide train.batch_size = "
                             f"{train.batch_size} (the minibatch-std layer splits the batch into groups of that size)")


# -- generator -------------------------------------------------------------------------------------------------------


class AlignedTimeEncoder(nn.Module):
    """The acyclic positional encoding of time (Sec. 3.1; official `AlignedTimeEncoder`).

    For a time t between motion-code steps t_l <= t < t_r (weight a = (t - t_l) / distance):
    `v(t) = pe(t) - lerp(pe(t_l), pe(t_r), a) + lerp(al(u_l), al(u_r), a)`, where pe are sinusoids with
    frequencies linearly spaced in log-period between `min_period` and `max_period`, scaled periods and phases
    predicted from the left motion code u_l, and al a learned linear "aligner". At the steps themselves the sinusoids
    cancel (v(t_l) = al(u_l)): the encoding is stitched there and never periodic.
    """

    def __init__(self, motion_dim: int, dim: int, min_period: float, max_period: float):
        super().__init__()
        periods = 2 ** np.linspace(np.log2(min_period), np.log2(max_period), dim)
        freqs = torch.from_numpy((2 * np.pi / periods)[::-1].copy()).float()[None]  # (1, dim), increasing
        self.register_buffer("freqs", freqs, persistent=False)
        self.register_buffer("phase_scales", max_period / (2 * np.pi / freqs), persistent=False)  # reference rounding
        self.periods = EqualizedLinear(motion_dim, dim, bias=False)
        self.phases = EqualizedLinear(motion_dim, dim, bias=False)
        self.aligners = EqualizedLinear(motion_dim, 2 * dim, bias=False)

    def forward(self, t, t_left, t_right, u_left, u_right, alpha) -> torch.Tensor:
        """Flat inputs: times `(M,)`, codes `(M, motion_dim)`, alpha `(M, 1)` -> `(M, 2 * dim)`."""
        scale = self.freqs * (self.periods(u_left).tanh() + 1)
        shift = self.phases(u_left) * self.phase_scales

        def encode(time: torch.Tensor) -> torch.Tensor:
            raw = scale * time[:, None] + shift
            return torch.cat([raw.sin(), raw.cos()], dim=1)

        stitched = torch.lerp(encode(t_left), encode(t_right), alpha)
        return encode(t) - stitched + torch.lerp(self.aligners(u_left), self.aligners(u_right), alpha)


class MotionNetwork(nn.Module):
    """Motion noise every `distance` frames -> Conv1d (no padding) -> codes u -> v(t) for any real t >= 0."""

    def __init__(self, c: StyleGANVConfig):
        super().__init__()
        self.c = c
        self.conv = nn.Sequential(
            EqualizedConv1d(c.motion_z_dim, c.motion_z_dim, c.motion_kernel, "lrelu", lr_multiplier=0.01),
            EqualizedConv1d(c.motion_z_dim, c.motion_v_dim, c.motion_kernel, "lrelu", lr_multiplier=0.01),
        )
        self.extra_codes = 2 * (c.motion_kernel - 1)  # eaten by the two unpadded convolutions
        self.encoder = AlignedTimeEncoder(c.motion_v_dim, c.time_enc_dim, c.min_period, c.max_period)
        self.dim = 2 * c.time_enc_dim

    def num_codes(self, t: torch.Tensor) -> int:
        """Motion noise vectors needed to cover times up to max(t, max_num_frames - 1)."""
        longest = max(self.c.max_num_frames - 1, float(t.max()))
        return math.ceil(longest / self.c.motion_z_distance) + 2 + self.extra_codes

    def forward(self, t: torch.Tensor, motion_z: torch.Tensor) -> torch.Tensor:
        """Times `(B, F)` (real-valued, >= 0) and noise `(B, num_codes, motion_z_dim)` -> v `(B, F, dim)`."""
        b, f = t.shape
        u = rearrange(self.conv(rearrange(motion_z, "b n d -> b d n")), "b d n -> b n d")  # (B, codes, v_dim)
        d = self.c.motion_z_distance
        left = torch.div(t, d, rounding_mode="floor").long()  # (B, F)
        rows = torch.arange(b, device=t.device)[:, None]
        u_left, u_right = u[rows, left], u[rows, left + 1]  # (B, F, v_dim)
        t_left = left.to(t.dtype) * d
        alpha = ((t - t_left) / d)[..., None]
        flat = (t.reshape(-1), t_left.reshape(-1), (t_left + d).reshape(-1), u_left.reshape(b * f, -1),
                u_right.reshape(b * f, -1), alpha.reshape(b * f, 1))
        return self.encoder(*flat).reshape(b, f, self.dim)


class SynthesisBlock(nn.Module):
    """One resolution of the skip synthesis network: (up-sampling) modulated convs, ToRGB added to the image."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, channels: int, first: bool):
        super().__init__()
        self.first = first
        self.conv0 = None if first else SynthesisLayer(in_channels, out_channels, w_dim, up=2)
        self.conv1 = SynthesisLayer(in_channels if first else out_channels, out_channels, w_dim)
        self.torgb = ToRGB(out_channels, channels, w_dim)
        self.register_buffer("resample_filter", setup_filter(), persistent=False)

    def forward(self, x, img, w):
        if self.conv0 is not None:
            x = self.conv0(x, w)
        x = self.conv1(x, w)
        y = self.torgb(x, w)
        img = y if img is None else upsample2d(img, self.resample_filter) + y
        return x, img


class Generator(nn.Module):
    """Mapping network (content), motion network (time), and the StyleGAN2 synthesis network with a temporal input."""

    def __init__(self, c: StyleGANVConfig, spec: VideoSpec):
        super().__init__()
        self.c = c
        self.mapping = MappingNetwork(c.z_dim, 0, c.w_dim, c.mapping_layers)
        self.motion = MotionNetwork(c)
        widths = channels_per_resolution(spec.resolution, c.channel_base, c.channel_max)
        self.const = nn.Parameter(torch.randn(1, widths[4], 4, 4))
        blocks, previous = [], widths[4] + self.motion.dim  # the first conv sees [const, v(t)]
        for res, width in widths.items():
            blocks.append(SynthesisBlock(previous, width, c.w_dim, spec.channels, first=res == 4))
            previous = width
        self.blocks = nn.ModuleList(blocks)

    def forward(self, z: torch.Tensor, t: torch.Tensor, motion_z: torch.Tensor,
                truncation_psi: float = 1.0) -> torch.Tensor:
        """z `(B, z_dim)`, times `(B, F)`, motion noise -> frames `(B, C, F, H, W)` (not clamped)."""
        b, f = t.shape
        w = repeat(self.mapping(z, truncation_psi=truncation_psi), "b d -> (b f) d", f=f)
        v = rearrange(self.motion(t, motion_z), "b f d -> (b f) d")
        x = torch.cat([self.const.expand(b * f, -1, -1, -1), v[:, :, None, None].expand(-1, -1, 4, 4)], dim=1)
        img = None
        for block in self.blocks:
            x, img = block(x, img, w)
        return rearrange(img, "(b f) c h w -> b c f h w", b=b)


# -- discriminator ---------------------------------------------------------------------------------------------------


class DiscriminatorBlock(nn.Module):
    """StyleGAN2 ResNet D block: (fromRGB), conv 3x3, conv 3x3 with 2x FIR down-sampling, 1x1 skip; both / sqrt 2."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, image_channels: int):
        super().__init__()
        self.fromrgb = EqualizedConv2d(image_channels, tmp_channels, 1, activation="lrelu") if not in_channels else None
        conv0_in = in_channels or tmp_channels
        self.conv0 = EqualizedConv2d(conv0_in, tmp_channels, 3, activation="lrelu")
        self.conv1 = EqualizedConv2d(tmp_channels, out_channels, 3, activation="lrelu", down=2)
        self.skip = EqualizedConv2d(conv0_in, out_channels, 1, bias=False, down=2)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor) -> torch.Tensor:
        if self.fromrgb is not None:
            x = self.fromrgb(img)
        y = self.skip(x, gain=math.sqrt(0.5))
        return y + self.conv1(self.conv0(x), gain=math.sqrt(0.5))


class TimeGapEncoder(nn.Module):
    """Embeds the gaps between a clip's consecutive frames: a learned embedding of the rounded gap and fixed
    sinusoids at frequencies pi * 2^k / T (official `TemporalDifferenceEncoder` + `FixedTimeEncoder`)."""

    def __init__(self, frames: int, max_num_frames: int, embed_dim: int):
        super().__init__()
        self.embed = nn.Embedding(max_num_frames, embed_dim)
        resolution = 2 ** math.ceil(math.log2(max_num_frames))
        count = math.ceil(math.log2(resolution))
        self.register_buffer("coefs", (math.pi * 2.0 ** torch.arange(count) / resolution)[None], persistent=False)
        self.dim = (embed_dim + 2 * count) * (frames - 1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """Times `(B, k)` -> `(B, dim)`."""
        gaps = (t[:, 1:] - t[:, :-1]).reshape(-1)  # (B * (k - 1),)
        raw = self.coefs * gaps[:, None].float()
        out = torch.cat([self.embed(gaps.round().long()), raw.sin(), raw.cos()], dim=1)
        return out.reshape(len(t), -1)


class Discriminator(nn.Module):
    """Per-frame StyleGAN2 D whose k frames' features are concatenated at `concat_res`, conditioned on time gaps."""

    def __init__(self, c: StyleGANVConfig, spec: VideoSpec):
        super().__init__()
        self.frames, self.concat_res = spec.frames, c.concat_res
        widths = channels_per_resolution(spec.resolution, c.channel_base, c.channel_max)
        resolutions = [r for r in sorted(widths, reverse=True) if r > 4]
        if c.concat_res not in resolutions:
            raise ValueError(f"D concatenates frames at {c.concat_res}x{c.concat_res}: the resolution must be larger")
        blocks = []
        for res in resolutions:
            in_channels = widths[res] if res < spec.resolution else 0
            out_channels = widths[res // 2]
            if res // 2 == c.concat_res:
                out_channels //= c.frames_div_factor
            if res == c.concat_res:
                in_channels = (in_channels // c.frames_div_factor) * spec.frames
            blocks.append(DiscriminatorBlock(in_channels, widths[res], out_channels, spec.channels))
        self.blocks = nn.ModuleList(blocks)
        self.block_res = resolutions
        self.time_gaps = None
        if spec.frames > 1:
            self.time_gaps = TimeGapEncoder(spec.frames, c.max_num_frames, c.time_gap_embed_dim)
        cmap_dim = widths[4]
        self.mapping = (MappingNetwork(0, self.time_gaps.dim, cmap_dim, c.d_mapping_layers, w_avg_beta=None)
                        if self.time_gaps is not None else None)
        self.mbstd = MinibatchStd(c.mbstd_group_size)
        self.conv = EqualizedConv2d(widths[4] + 1, widths[4], 3, activation="lrelu")
        self.fc = EqualizedLinear(widths[4] * 16, widths[4], activation="lrelu")
        self.out = EqualizedLinear(widths[4], cmap_dim if self.mapping is not None else 1)

    def forward(self, video: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Clips `(B, C, k, H, W)` at times `(B, k)` -> logits `(B,)`."""
        b = video.shape[0]
        img, x = rearrange(video, "b c k h w -> (b k) c h w"), None
        for res, block in zip(self.block_res, self.blocks):
            if res == self.concat_res:
                x = rearrange(x, "(b k) c h w -> b (k c) h w", b=b)
            x = block(x, img)
        x = self.fc(self.conv(self.mbstd(x)).flatten(1))
        x = self.out(x)
        if self.mapping is None:
            return x[:, 0]
        cmap = self.mapping(None, self.time_gaps(t))
        return (x * cmap).sum(dim=1) / math.sqrt(cmap.shape[1])


# -- the model -------------------------------------------------------------------------------------------------------


def training_steps_for_kimg(kimg: float, batch_size: int, frames_per_clip: int) -> int:
    """Steps of an official run of `kimg` thousand images: it stops once `cur_nimg >= kimg * 1000`, and `cur_nimg`
    grows by `batch_size * frames_per_clip` a step (25,000 kimg, batch 64, 3 frames: 130,209 steps)."""
    return math.ceil(kimg * 1000 / (batch_size * frames_per_clip))



@register_model(
    "stylegan_v",
    description="continuous-time video GAN: StyleGAN2 synthesis + acyclic time encoding, sparse 3-frame training",
    paper="Skorokhodov et al., StyleGAN-V, CVPR 2022, https://arxiv.org/abs/2112.14683",
)
class StyleGANV(GANModel):
    """StyleGAN-V (Skorokhodov et al. 2022); see the module docstring for the architecture and deviations."""

    config_class = StyleGANVConfig

    def __init__(self, config: StyleGANVConfig, spec: VideoSpec):
        super().__init__(config, spec)
        if spec.resolution < 2 * config.concat_res or spec.resolution & (spec.resolution - 1):
            raise ValueError(f"StyleGAN-V needs a power-of-two resolution >= {2 * config.concat_res} "
                             f"(model.concat_res={config.concat_res}), got {spec.resolution}")
        self.generator = Generator(config, spec)
        self.discriminator = Discriminator(config, spec)
        self.augment = VideoAugment() if config.augment else None
        self.init_generator_ema(decay=0.999)  # the decay is recomputed every step from the EMA half-life
        self.batch_size = 1  # clips per rank in the current step (for the EMA half-life and ADA's speed)
        self.register_buffer("ada_signs", torch.zeros(2))  # (sum of sign(D(real)), count) since the last adjustment

    # -- sampling ------------------------------------------------------------------------------------------------

    def motion_noise(self, n: int, t: torch.Tensor, generator=None) -> torch.Tensor:
        return self.randn(n, self.generator.motion.num_codes(t), self.config.motion_z_dim, generator=generator)

    def sample_at(self, n: int, times, generator: torch.Generator | None = None, truncation_psi: float = 1.0):
        """Render `n` videos at arbitrary real-valued `times` (frames, >= 0): `[n, C, len(times), H, W]` in [-1, 1].

        The same content and motion noise are drawn whatever the times, so the same generator state gives the same
        video sampled at other times."""
        dtype = self.generator.const.dtype
        t = torch.as_tensor(times, device=self.device).to(dtype).reshape(1, -1).expand(n, -1)
        if t.min() < 0:
            raise ZooError("StyleGAN-V renders times >= 0")
        with self.evaluating():
            z = self.randn(n, self.config.z_dim, generator=generator).to(dtype)
            longest = t.new_full((1, 1), float(max(t.max().item(), self.config.max_num_frames - 1)))
            motion_z = self.motion_noise(n, longest, generator).to(dtype)
            return self.sampling_generator(z, t, motion_z, truncation_psi).clamp(-1, 1)

    def sample(self, n, labels=None, generator=None, frames=None, truncation_psi: float = 1.0):
        self.check_labels(n, labels, generator)  # unconditional (as the paper's UCF-101 model): refuses labels
        frames = frames or self.config.sample_frames
        if frames < 1:
            raise ZooError(f"frames must be >= 1, got {frames}")
        return self.sample_at(n, torch.arange(frames), generator, truncation_psi)

    @property
    def label_classes(self) -> int:
        return 0

    # -- training ------------------------------------------------------------------------------------------------

    def configure_optimizers(self):
        c = self.config

        def adam(module: nn.Module, interval: int) -> torch.optim.Adam:
            ratio = interval / (interval + 1)  # lazy regularization: StyleGAN2 Appendix B
            return torch.optim.Adam(module.parameters(), lr=c.lr * ratio, eps=1e-8,
                                    betas=(c.beta1**ratio, c.beta2**ratio))

        return adam(self.generator, c.g_reg_interval), adam(self.discriminator, c.r1_interval)

    def fake_times(self, real_times: torch.Tensor, video_length: torch.Tensor | None) -> torch.Tensor:
        """Generator times for a batch: the data's sparse sampling with fractional offsets (official `gen_t`)."""
        b, k = real_times.shape
        rng = np.random.default_rng(int(torch.randint(2**62, ()).item()))  # seeded by the step's torch seed
        # official: the length of a video, at most the dataset's max_num_frames (1024)
        longest = self.config.max_num_frames
        lengths = [min(x, longest) for x in video_length.tolist()] if video_length is not None else [longest] * b
        times = [sparse_frame_times(k, self.config.max_distance, length, rng, fractional=True) for length in lengths]
        return torch.tensor(times, dtype=torch.float32, device=self.device)

    def real_clip(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The real clips and their times `(B, k)`; a contiguous batch (no `times`) counts as times 0..k-1."""
        video = batch["video"]
        if video.shape[2] != self.spec.frames:
            raise ZooError(f"StyleGAN-V was built for {self.spec.frames}-frame clips, the batch has {video.shape[2]}")
        times = batch.get("times")
        if times is None:
            times = torch.arange(video.shape[2], device=video.device, dtype=torch.float32).expand(len(video), -1)
        return video, times.float()

    def generate(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        video, times = self.real_clip(batch)
        self.batch_size = len(video)
        t = self.fake_times(times, batch.get("video_length"))
        z = self.randn(len(video), self.config.z_dim)
        return self.generator(z, t, self.motion_noise(len(video), t)), t

    def discriminate(self, video: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.augment is not None:
            video = self.augment(video, float(self.augment.p))
        return self.discriminator(video, t)

    def discriminator_update(self, batch: dict, optimizers: list, step: int):
        logs = self.optimize(optimizers[0], lambda: self.discriminator_loss(batch, step))
        if self.config.r1_gamma > 0 and self.iteration % self.config.r1_interval == 0:
            logs.update(self.optimize(optimizers[0], lambda: self.r1_loss(batch)))
        return logs

    def discriminator_loss(self, batch: dict, step: int):
        real, real_t = self.real_clip(batch)
        with torch.no_grad():
            fake, fake_t = self.generate(batch)
        real_logits = self.discriminate(real, real_t)
        self.ada_signs += torch.stack([real_logits.detach().sign().sum(), real_logits.new_tensor(len(real))])
        loss = nonsaturating_d_loss(real_logits, self.discriminate(fake, fake_t))
        p = self.augment.p.detach().clone() if self.augment is not None else torch.zeros(())
        return loss, {"d_loss": loss, "ada_p": p}

    def r1_loss(self, batch: dict):
        """Lazy R1 (StyleGAN2 Sec. 4): gamma / 2 * ||grad D(real)||^2, weighted by the interval."""
        real, real_t = self.real_clip(batch)
        real = real.detach().requires_grad_(True)
        logits = self.discriminate(real, real_t)
        # official: squared gradient summed per frame, averaged over the clip's frames
        penalty = r1_penalty(logits, real) / real.shape[2]
        # official loss.py:173 adds `image_logits * 0`: every D parameter gets a gradient (zero for the output bias,
        # which the penalty cannot reach), so Adam's step count and second moments advance for all of them here
        loss = penalty * (self.config.r1_gamma / 2) * self.config.r1_interval + logits.sum() * 0
        return loss, {"r1": penalty}

    def generator_loss(self, batch: dict):
        fake, fake_t = self.generate(batch)
        loss = nonsaturating_g_loss(self.discriminate(fake, fake_t))
        return loss, {"g_loss": loss}

    def frames_seen(self, iteration: int, clips_per_step: int) -> int:
        """The official `cur_nimg` before step `iteration`: it counts frames, `batch * num_frames_per_video` a step."""
        return iteration * clips_per_step * self.spec.frames

    def ema_beta(self, clips_per_step: int) -> float:
        """EMA decay of this step (official `training_loop.py`): half-life `ema_kimg * 1000` clips, capped by
        `ema_rampup * cur_nimg` (frames seen before this step) when the ramp-up is on."""
        c = self.config
        half_life = c.ema_kimg * 1000
        if c.ema_rampup:
            half_life = min(half_life, self.frames_seen(self.iteration, clips_per_step) * c.ema_rampup)
        return 0.5 ** (clips_per_step / max(half_life, 1e-8))

    @torch.no_grad()
    def update_generator_ema(self) -> None:
        """EMA with StyleGAN2-ADA's half-life schedule (`ema_beta`), then ADA's adjustment."""
        batch = self.batch_size * self.trainer.world_size  # clips per step, all ranks
        beta = self.ema_beta(batch)
        ema = self.generator_ema.module
        torch._foreach_lerp_(list(ema.parameters()), list(self.generator.parameters()), 1 - beta)
        for b_ema, b in zip(ema.buffers(), self.generator.buffers()):
            b_ema.copy_(b)
        self.adjust_augmentation(batch)

    def adjust_augmentation(self, batch: int) -> None:
        """ADA (Karras et al. 2020, Sec. 3): move p towards E[sign(D(real))] = target every `ada_interval` steps."""
        c = self.config
        if self.augment is None or (self.iteration + 1) % c.ada_interval:
            return
        signs = self.ada_signs.clone()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(signs)
        if signs[1] > 0:
            direction = float(np.sign(signs[0] / signs[1] - c.ada_target))
            self.augment.p.add_(direction * batch * c.ada_interval / (c.ada_kimg * 1000)).clamp_(min=0.0)
        self.ada_signs.zero_()
