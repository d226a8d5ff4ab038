"""vid2vid's sequential generator F (Wang et al. 2018, Sec. 3.1 and 3.2; official `CompositeGenerator`,
`CompositeLocalGenerator` and `Vid2VidModelG.generate_frame_train`).

Markov assumption (Eq. 2): frame t is generated from the source maps s_{t-L..t} and the previously generated frames
x_{t-L..t-1}, L = n_frames_G - 1 = 2. One network predicts from both, through two shared-structure encoders whose
features are added, the hallucinated frame h (Tanh), the backward flow w to x_{t-1} (x, y pixels, 20 x a linear
head) and the soft occlusion mask m (Sigmoid); the frame is (Eq. 3)

    x_t = (1 - m) * warp(x_{t-1}, w) + m * h

with `zoo.warp.warp` (reads x_{t-1} at p + w(p), bilinear, border padding: the official `resample`). With the
foreground/background prior (Eq. 4, `fg`) a separate network sees the source maps only and draws the foreground
(the union of the `fg_labels` classes of s_t), composited over the background frame above.

Coarse to fine (Sec. 3.2, pix2pixHD-style): scale 0 runs at the coarsest resolution with width ngf; every finer
scale s has width ngf / 2^s, a stride-2 front end on its resolution whose features are added to scale s - 1's image
and flow features, `n_blocks_local` residual blocks and one up-sampling stage. Each scale warps its own previous
outputs; its flow head is scaled by 20 * 2^s.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from zoo.models.layers.pix2pixhd import ResnetBlock, down, downsample_2x, head, stem, up
from zoo.warp import warp


@dataclass
class FrameOutput:
    """One generated frame at one scale (all `[N, C, H, W]`): the frame x_t, the hallucinated h, flow w (pixels),
    mask m (None without flow), and the features a finer scale adds to its own."""

    frame: torch.Tensor  # [N, 3, H, W] in [-1, 1]
    hallucinated: torch.Tensor  # [N, 3, H, W] in [-1, 1]; with `fg`, foreground composited over h (official img_raw)
    flow: torch.Tensor | None  # [N, 2, H, W], x / y pixels to x_{t-1}
    mask: torch.Tensor | None  # [N, 1, H, W] in [0, 1]
    image_features: torch.Tensor
    flow_features: torch.Tensor | None
    fg_features: torch.Tensor | None


def composite(previous: torch.Tensor, hallucinated: torch.Tensor, flow: torch.Tensor,
              mask: torch.Tensor) -> torch.Tensor:
    """Eq. 3: (1 - m) * warp(x_{t-1}, w) + m * h; `previous`, `hallucinated` `[N, 3, H, W]`, `flow` `[N, 2, H, W]`,
    `mask` `[N, 1, H, W]`."""
    return hallucinated * mask + warp(previous, flow) * (1 - mask)


class CompositeGenerator(nn.Module):
    """Scale 0 (the coarsest, or the only one): pix2pixHD global generators sharing one bottleneck sum.

    Args:
        label_channels: source maps of the window, n_frames_G * C_c.
        prev_channels: previous frames of the window, (n_frames_G - 1) * 3.
        ngf: width of the stems (official 128).
        n_downsampling: stride-2 stages (official 3).
        n_blocks: residual blocks, half in the encoders, half in each decoder (official 9: 5 + 4).
        norm: "batch" (official default) | "instance".
        fg: build the foreground network (Eq. 4).
        use_flow: predict flow and mask (official `--no_flow` turns them off: x_t = h).
    """

    def __init__(self, label_channels: int, prev_channels: int, ngf: int, n_downsampling: int, n_blocks: int,
                 norm: str, fg: bool, use_flow: bool):
        super().__init__()
        self.use_flow, self.fg, self.flow_scale = use_flow, fg, 20.0
        bottleneck = ngf * 2**n_downsampling

        def encoder(channels: int, width: int, blocks: int) -> nn.Sequential:
            layers = stem(channels, width, norm)
            for i in range(n_downsampling):
                layers += down(width * 2**i, width * 2 ** (i + 1), norm)
            return nn.Sequential(*layers, *[ResnetBlock(width * 2**n_downsampling, norm) for _ in range(blocks)])

        def decoder(width: int) -> nn.Sequential:
            stages = [up(width * 2**i, width * 2 ** (i - 1), norm) for i in range(n_downsampling, 0, -1)]
            return nn.Sequential(*[m for stage in stages for m in stage])

        encoder_blocks = n_blocks - n_blocks // 2
        self.label_down = encoder(label_channels, ngf, encoder_blocks)  # official model_down_seg
        self.image_down = encoder(prev_channels, ngf, encoder_blocks)  # official model_down_img
        self.image_res = nn.Sequential(*[ResnetBlock(bottleneck, norm) for _ in range(n_blocks // 2)])
        self.image_up = decoder(ngf)
        self.image_head = nn.Sequential(*head(ngf, 3, nn.Tanh()))
        if use_flow:
            self.flow_res = nn.Sequential(*[ResnetBlock(bottleneck, norm) for _ in range(n_blocks // 2)])
            self.flow_up = decoder(ngf)
            self.flow_head = nn.Sequential(*head(ngf, 2, None))
            self.mask_head = nn.Sequential(*head(ngf, 1, nn.Sigmoid()))
        if fg:
            width = ngf // 2 if n_downsampling > 2 else ngf  # official ngf_indv
            self.fg_down = encoder(label_channels, width, 0)
            self.fg_res = nn.Sequential(*[ResnetBlock(width * 2**n_downsampling, norm) for _ in range(n_blocks)])
            self.fg_up = decoder(width)
            self.fg_head = nn.Sequential(*head(width, 3, nn.Tanh()))

    def forward(self, labels: torch.Tensor, previous: torch.Tensor, fg_mask: torch.Tensor | None,
                coarse: FrameOutput | None = None, raw_only: bool = False) -> FrameOutput:
        """One frame. `labels` `[N, n_frames_G * C_c, H, W]`, `previous` `[N, (n_frames_G - 1) * 3, H, W]` (oldest
        first), `fg_mask` `[N, 1, H, W]` (with `fg`); `raw_only`: x_t = h (a first frame without a past)."""
        features = self.label_down(labels) + self.image_down(previous)
        image_features = self.image_up(self.image_res(features))
        flow_features = self.flow_up(self.flow_res(features)) if self.use_flow else None
        fg_features = self.fg_up(self.fg_res(self.fg_down(labels))) if self.fg else None
        return self.finish(previous, image_features, flow_features, fg_features, fg_mask, raw_only)

    def finish(self, previous, image_features, flow_features, fg_features, fg_mask, raw_only) -> FrameOutput:
        hallucinated = self.image_head(image_features)
        flow = mask = None
        frame = hallucinated
        if self.use_flow:
            flow = self.flow_head(flow_features) * self.flow_scale
            mask = self.mask_head(flow_features)
            if not raw_only:
                frame = composite(previous[:, -3:], hallucinated, flow, mask)
        if self.fg:
            foreground = self.fg_head(fg_features)
            frame = foreground * fg_mask + frame * (1 - fg_mask)
            hallucinated = foreground * fg_mask + hallucinated * (1 - fg_mask)
        return FrameOutput(frame, hallucinated, flow, mask, image_features, flow_features, fg_features)


class CompositeLocalGenerator(CompositeGenerator):
    """A finer scale s >= 1 (official `CompositeLocalGenerator`): width ngf = base ngf / 2^s, one stride-2 stage, the
    coarser scale's features added, `n_blocks_local` residual blocks, one up-sampling stage; flow head x 20 * 2^s."""

    def __init__(self, label_channels: int, prev_channels: int, ngf: int, n_downsampling: int, n_blocks_local: int,
                 norm: str, fg: bool, use_flow: bool, scale: int):
        nn.Module.__init__(self)
        self.use_flow, self.fg, self.flow_scale = use_flow, fg, 20.0 * 2**scale

        def branch(channels: int, width: int) -> nn.Sequential:
            return nn.Sequential(*stem(channels, width, norm), *down(width, 2 * width, norm))

        def decoder(width: int) -> nn.Sequential:
            blocks = [ResnetBlock(2 * width, norm) for _ in range(n_blocks_local)]
            return nn.Sequential(*blocks, *up(2 * width, width, norm))

        self.label_down = branch(label_channels, ngf)
        self.image_down = branch(prev_channels, ngf)
        self.image_up = decoder(ngf)
        self.image_head = nn.Sequential(*head(ngf, 3, nn.Tanh()))
        if use_flow:
            self.flow_up = decoder(ngf)
            self.flow_head = nn.Sequential(*head(ngf, 2, None))
            self.mask_head = nn.Sequential(*head(ngf, 1, nn.Sigmoid()))
        if fg:
            width = ngf // 2 if n_downsampling > 2 else ngf
            self.fg_down = branch(label_channels, width)
            self.fg_up = decoder(width)
            self.fg_head = nn.Sequential(*head(width, 3, nn.Tanh()))

    def forward(self, labels, previous, fg_mask, coarse: FrameOutput | None = None, raw_only: bool = False):
        features = self.label_down(labels) + self.image_down(previous)
        image_features = self.image_up(features + coarse.image_features)
        flow_features = self.flow_up(features + coarse.flow_features) if self.use_flow else None
        fg_features = self.fg_up(self.fg_down(labels) + coarse.fg_features) if self.fg else None
        return self.finish(previous, image_features, flow_features, fg_features, fg_mask, raw_only)


def pyramid(video: torch.Tensor, n_scales: int) -> list[torch.Tensor]:
    """`[B, C, T, H, W]` at full resolution and `n_scales - 1` halvings (official `build_pyr`), finest first."""
    levels = [video]
    for _ in range(1, n_scales):
        b = video.shape[0]
        frames = downsample_2x(rearrange(levels[-1], "b c t h w -> (b t) c h w"))
        levels.append(rearrange(frames, "(b t) c h w -> b c t h w", b=b))
    return levels


@dataclass
class Generated:
    """`generate`'s result: the frames at every scale (finest first) and the finest scale's h, w, m, all
    `[B, C, n, H, W]`; `past` holds each scale's last n_frames_G - 1 frames (detached) to continue from."""

    frames: list[torch.Tensor]
    hallucinated: torch.Tensor
    flow: torch.Tensor | None
    mask: torch.Tensor | None
    past: list[torch.Tensor]


class SequentialGenerator(nn.Module):
    """The coarse-to-fine stack of scales, run frame by frame (official `generate_frame_train`).

    Args:
        condition_channels: C_c of the source maps.
        n_frames_g: Markov window, source maps per frame (previous frames: n_frames_g - 1).
        ngf, n_downsampling, n_blocks, n_blocks_local, norm, fg, use_flow: see `CompositeGenerator`.
        n_scales: spatial scales (1: the global generator only).
        fg_labels: channels of the source maps forming the foreground mask (with `fg`).
    """

    def __init__(self, condition_channels: int, n_frames_g: int, ngf: int, n_downsampling: int, n_blocks: int,
                 n_blocks_local: int, norm: str, n_scales: int, fg: bool, fg_labels: tuple[int, ...], use_flow: bool):
        super().__init__()
        self.n_frames_g, self.fg_labels, self.use_flow = n_frames_g, tuple(fg_labels), use_flow
        label_channels, prev_channels = condition_channels * n_frames_g, 3 * (n_frames_g - 1)
        nets: list[nn.Module] = [CompositeGenerator(label_channels, prev_channels, ngf, n_downsampling, n_blocks, norm,
                                                    fg, use_flow)]
        for s in range(1, n_scales):
            nets.append(CompositeLocalGenerator(label_channels, prev_channels, ngf // 2**s, n_downsampling,
                                                n_blocks_local, norm, fg, use_flow, scale=s))
        self.scales = nn.ModuleList(nets)  # scales[0]: coarsest resolution; scales[-1]: full resolution

    @property
    def n_scales(self) -> int:
        return len(self.scales)

    def fg_mask(self, labels: torch.Tensor) -> torch.Tensor | None:
        """Union of the foreground classes of one frame's source maps `[N, C_c, H, W]` -> `[N, 1, H, W]` in [0, 1]."""
        if not self.scales[0].fg:
            return None
        return labels[:, list(self.fg_labels)].sum(1, keepdim=True).clamp(0, 1)

    def generate(self, conditions: torch.Tensor, past: list[torch.Tensor], raw_only: bool = False,
                 train_coarse: bool = True) -> Generated:
        """Generate n = T_c - (n_frames_g - 1) frames.

        Args:
            conditions: float `[B, C_c, T_c, H, W]`: the source maps of the n frames and of the n_frames_g - 1 before.
            past: per scale (finest first) float `[B, 3, n_frames_g - 1, H_s, W_s]`: the frames before the first one.
            raw_only: frames are h without warping (official `no_first_img` on a sequence's first chunk).
            train_coarse: False detaches the coarser scales (official `niter_fix_global`: only the finest trains).

        Returns:
            `Generated`; previous frames enter every step detached (official `max_frames_backpropagate` 1).
        """
        k = self.n_frames_g
        n_scales = self.n_scales
        labels = pyramid(conditions, n_scales)
        frames = [list(torch.unbind(p, dim=2)) for p in past]  # per scale, a list of [B, 3, H_s, W_s]
        n = conditions.shape[2] - (k - 1)
        outputs: list[FrameOutput] = []
        for t in range(n):
            coarse = None
            for s, net in enumerate(self.scales):
                level = n_scales - 1 - s  # scale s runs at pyramid level n_scales - 1 - s
                window = rearrange(labels[level][:, :, t:t + k], "b c t h w -> b (t c) h w")
                previous = rearrange(torch.stack(frames[level][-(k - 1):], dim=2).detach(), "b c t h w -> b (t c) h w")
                out = net(window, previous, self.fg_mask(labels[level][:, :, t + k - 1]), coarse, raw_only)
                if s < n_scales - 1 and not train_coarse:
                    out = FrameOutput(*(x.detach() if x is not None else None for x in vars(out).values()))
                frames[level].append(out.frame)
                coarse = out
            outputs.append(coarse)
        new = [torch.stack(f[k - 1:], dim=2) for f in frames]  # [B, 3, n, H_s, W_s] per level

        def stack(name: str) -> torch.Tensor | None:
            values = [getattr(o, name) for o in outputs]
            return None if values[0] is None else torch.stack(values, dim=2)

        past = [torch.stack(f[-(k - 1):], dim=2).detach() for f in frames]
        return Generated(new, stack("hallucinated"), stack("flow"), stack("mask"), past)
