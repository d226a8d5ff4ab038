"""The factorized space-time 3-D U-Net of Video Diffusion Models (Ho et al. 2022, Sec. 3, Fig. 1).

A 2-D DDPM U-Net (Ho et al. 2020; DDPM residual blocks, GroupNorm-SiLU-conv with scale-shift conditioning as in
the Google diffusion code, resampling by separate layers) made 3-D by factorizing space and time:

* every 3x3 convolution becomes a 1x3x3 convolution (space only);
* every spatial attention block (attention over H*W, frames as batch) is followed by a temporal attention block
  (attention over T, pixels as batch) with relative position embeddings in time, so the network has no absolute
  notion of frame index;
* group normalization is computed per frame, so that apart from temporal attention every layer acts on each frame
  alone. This is what lets independent images be appended to a video (joint image-video training, Sec. 3.2): a
  temporal attention mask then keeps them from mixing with anything.

The noise level (and an optional class, with a null class for classifier-free guidance) enters through an MLP
embedding that scales and shifts every residual block. The U-Net takes and returns `(B, C, T, H, W)`; inside, since
every layer but temporal attention acts on frames independently, activations are held as `(B*T, C, H, W)`: a
1x3x3 3-D convolution is then exactly a 3x3 2-D convolution and per-frame GroupNorm is plain GroupNorm, which
avoids a transpose around every normalization (about 15% of a CPU training step). They are also channels-last in
memory, so that attention's q, k and v are views PyTorch's fused attention kernel accepts (see `SpatialAttention`,
`TemporalAttention`) and 1x1 convolutions are plain matrix products over pixels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn


def zero_init(module: nn.Module) -> nn.Module:
    """Zero a layer's weights and bias: residual branches start as the identity (DDPM practice)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def sinusoidal_embedding(x: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Transformer sinusoidal features of a float `[B]` -> `[B, dim]`."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = x.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def frame_norm(groups: int, channels: int) -> nn.GroupNorm:
    """GroupNorm of `(B*T, C, H, W)` activations, so statistics are per frame, never across time; up to `groups`
    groups (fewer where `channels` is not a multiple)."""
    return nn.GroupNorm(math.gcd(groups, channels), channels)


def space_conv(c_in: int, c_out: int) -> nn.Conv2d:
    """The 1x3x3 convolution that replaces a 2-D U-Net's 3x3 one, applied to `(B*T, C, H, W)` activations."""
    return nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)


def pointwise_rows(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution of `[N, C, H, W]` as one matrix product over pixels, returning rows `[N, H, W, C_out]`.

    For a channels-last map the permute is free and no im2col runs; the weights stay a Conv2d's (checkpoints
    unchanged)."""
    return F.linear(x.permute(0, 2, 3, 1), conv.weight.flatten(1), conv.bias)


def rows_to_map(rows: torch.Tensor) -> torch.Tensor:
    """Rows `[N, H, W, C]` as the channels-last map `[N, C, H, W]` (a view)."""
    return rows.permute(0, 3, 1, 2)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, scale-shift by the conditioning embedding, GroupNorm-SiLU-dropout-conv, plus a skip.

    Args:
        c_in, c_out: channels in and out.
        emb_dim: width of the conditioning embedding.
        dropout: dropout probability before the second convolution (paper: 0.1).
        groups: GroupNorm groups (at most).
    """

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float, groups: int):
        super().__init__()
        self.norm1 = frame_norm(groups, c_in)
        self.conv1 = space_conv(c_in, c_out)
        self.emb = nn.Linear(emb_dim, 2 * c_out)  # -> (scale, shift)
        self.norm2 = frame_norm(groups, c_out)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()  # no mask drawn when off
        self.conv2 = zero_init(space_conv(c_out, c_out))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """x: `[B*T, c_in, H, W]`; emb: `[B*T, emb_dim]` (each frame carries its clip's embedding)."""
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = rearrange(self.emb(F.silu(emb)), "bt (two c) -> two bt c 1 1", two=2)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        skip = rows_to_map(pointwise_rows(self.skip, x)) if isinstance(self.skip, nn.Conv2d) else x
        return skip + h


class SpatialAttention(nn.Module):
    """Multi-head self-attention over the H*W positions of each frame (frames as batch), residual.

    The U-Net runs channels-last (see `UNet3D.forward`), so q, k and v come from three products (the slices of the
    one 1x1 q/k/v convolution) as `(B*T, H, W, C)` rows, viewed with each head's channels contiguous: PyTorch's fused
    (flash) CPU attention kernel accepts them, where channels-first q/k/v (head dim strided by H*W) fall back to the
    "math" path, which also materializes the (H*W)^2 attention matrix. Three products rather than one `3C` product
    and a split: the split's backward stacked the three gradients and copied them back into row order (measured 4%
    faster forward + backward at 32 x 128 x 32 x 32, 1 thread).
    """

    def __init__(self, channels: int, head_dim: int, groups: int):
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = frame_norm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: `[B*T, C, H, W]` (channels-last is fastest)."""
        h, w = x.shape[2:]
        rows = self.norm(x).permute(0, 2, 3, 1)  # (B*T, H, W, C)
        q, k, v = (rearrange(F.linear(rows, weight, bias), "bt h w (n d) -> bt n (h w) d", n=self.heads)
                   for weight, bias in zip(self.qkv.weight.flatten(1).chunk(3), self.qkv.bias.chunk(3)))
        y = F.scaled_dot_product_attention(q, k, v)  # (B*T, heads, H*W, head_dim)
        y = rearrange(y, "bt n (h w) d -> bt h w (n d)", h=h, w=w)
        return x + rows_to_map(F.linear(y, self.out.weight.flatten(1), self.out.bias))


class RelativePositionBias(nn.Module):
    """A learned per-head bias for every relative distance j - i in time, clipped to +-max_distance.

    The paper names relative position embeddings (Shaw et al. 2018) without details; a per-head scalar per relative
    distance (as in T5) is the simplest such embedding and lets attention use fused kernels.
    """

    def __init__(self, heads: int, max_distance: int):
        super().__init__()
        self.max_distance = max_distance
        self.table = nn.Embedding(2 * max_distance + 1, heads)
        nn.init.zeros_(self.table.weight)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        """float `[heads, T, T]`, bias[n, i, j] for query frame i and key frame j; positions: long `[T]`."""
        relative = (positions[None, :] - positions[:, None]).clamp(-self.max_distance, self.max_distance)
        return rearrange(self.table(relative + self.max_distance), "i j n -> n i j")


class TemporalAttention(nn.Module):
    """Multi-head self-attention over the T frames at each pixel (pixels as batch), relative positions, residual.

    Args:
        channels: feature channels.
        head_dim: channels per head (paper: 64).
        groups: GroupNorm groups (at most).
        max_distance: relative distances beyond this share one embedding.
    """

    def __init__(self, channels: int, head_dim: int, groups: int, max_distance: int):
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = frame_norm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.position_bias = RelativePositionBias(self.heads, max_distance)
        self.out = zero_init(nn.Conv2d(channels, channels, 1))

    def attention_bias(self, positions: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
        """Additive attention bias `[heads, T, T]`: relative positions, and -inf where `allowed` is False (the
        reference form of what `forward` computes)."""
        bias = self.position_bias(positions)
        if allowed is not None:
            bias = bias.masked_fill(~allowed, float("-inf"))
        return bias

    def forward(self, x: torch.Tensor, positions: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
        """x: `[B*T, C, H, W]`; positions: long `[T]` frame times; allowed: bool `[T, T]` (query i may see key j).

        The learned bias needs a gradient, and PyTorch's fused CPU attention takes no additive mask that does, so
        the bias rides inside the dot product instead: with q' = [q / sqrt(d), onehot(i)], k' = [k, bias[:, j]] and
        v' = [v, 0], q'.k' = q.k / sqrt(d) + bias[i, j] exactly (up to float rounding), and the gradient reaches
        the bias table through k'. The joint-training mask, which needs none, goes in as a boolean mask. Building
        q', k', v' is the one copy that gathers each pixel's frames anyway.
        """
        t = positions.shape[0]
        qkv = rearrange(pointwise_rows(self.qkv, self.norm(x)), "(b t) h w (three n d) -> three b h w n t d", t=t,
                        three=3, n=self.heads)  # views
        q, k, v = qkv.unbind(0)  # unbind, not indexing: indexing's backward zero-fills all of qkv once per slice
        b, h, w, n, _, d = q.shape
        bias = self.position_bias(positions).to(qkv.dtype)  # (heads, T query, T key)
        onehot = torch.eye(t, dtype=qkv.dtype, device=qkv.device).expand(b, h, w, n, t, t)
        q = torch.cat([q * d**-0.5, onehot], dim=-1).view(b * h * w, n, t, d + t)
        k = torch.cat([k, bias.transpose(1, 2).expand(b, h, w, n, t, t)], dim=-1).view(b * h * w, n, t, d + t)
        v = torch.cat([v, onehot.new_zeros(()).expand(b, h, w, n, t, t)], dim=-1).view(b * h * w, n, t, d + t)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=1.0)  # (B*H*W, heads, T, d + T)
        y = rearrange(y[..., :d], "(b h w) n t d -> (b t) h w (n d)", h=h, w=w)
        return x + rows_to_map(F.linear(y, self.out.weight.flatten(1), self.out.bias))


class SpaceTimeAttention(nn.Module):
    """Spatial attention followed by temporal attention: the paper's factorized attention block."""

    def __init__(self, channels: int, head_dim: int, groups: int, max_distance: int):
        super().__init__()
        self.spatial = SpatialAttention(channels, head_dim, groups)
        self.temporal = TemporalAttention(channels, head_dim, groups, max_distance)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
        return self.temporal(self.spatial(x), positions, allowed)


class Downsample(nn.Module):
    """Halve H and W with a stride-(1, 2, 2) 1x3x3 convolution (stride-2 3x3 on `(B*T, C, H, W)`)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Double H and W: nearest neighbour, then a 1x3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = space_conv(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))  # (B*T, C, 2H, 2W)


def temporal_mask(frames: int, video_frames: int | None, device: torch.device) -> torch.Tensor | None:
    """bool `[T, T]` for joint image-video training (Sec. 3.2): the first `video_frames` frames form a video and
    attend to one another; every later frame is an independent image and attends only to itself.
    None (no mask) when all frames are video."""
    if video_frames is None or video_frames >= frames:
        return None
    allowed = torch.eye(frames, dtype=torch.bool, device=device)
    allowed[:video_frames, :video_frames] = True
    return allowed


class UNet3D(nn.Module):
    """The video U-Net: `(z_t [B, C, T, H, W], noise level [B], class [B]) -> eps or v [B, C, T, H, W]`.

    Args:
        channels: data channels (3 for RGB).
        base_channels: width of the first level (paper UCF-101: 256).
        channel_mults: width multiplier per level; each level but the last halves H and W (paper: 1, 2, 4, 8).
        blocks_per_level: residual blocks per level on the way down (paper: 2; the way up has one more).
        attention_resolutions: feature-map sizes (pixels) with space-time attention (paper: 8, 16, 32). The middle
            block always has it.
        head_dim: channels per attention head (paper: 64).
        dropout: residual-block dropout (paper: 0.1).
        emb_dim: width of the conditioning embedding (paper: 1024).
        emb_layers: linear layers of the conditioning MLP (paper UCF-101: 4).
        num_classes: classes for class conditioning (0 = unconditional); index `num_classes` is the null class.
        groups: GroupNorm groups (DDPM: 32), reduced where a level has fewer channels.
        max_distance: relative time distances beyond this share one embedding.
    """

    def __init__(
        self,
        channels: int = 3,
        base_channels: int = 256,
        channel_mults: tuple[int, ...] = (1, 2, 4, 8),
        blocks_per_level: int = 2,
        attention_resolutions: tuple[int, ...] = (8, 16, 32),
        resolution: int = 64,
        head_dim: int = 64,
        dropout: float = 0.1,
        emb_dim: int = 1024,
        emb_layers: int = 4,
        num_classes: int = 0,
        groups: int = 32,
        max_distance: int = 32,
    ):
        super().__init__()
        if resolution % 2 ** (len(channel_mults) - 1):
            raise ValueError(f"resolution {resolution} is not divisible by 2^{len(channel_mults) - 1} (channel_mults)")
        self.base_channels, self.num_classes = base_channels, num_classes
        self.emb_mlp = self._mlp(base_channels, emb_dim, emb_layers)
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None

        def block(c_in: int, c_out: int) -> ResBlock:
            return ResBlock(c_in, c_out, emb_dim, dropout, groups)

        def attention(c: int) -> SpaceTimeAttention:
            return SpaceTimeAttention(c, head_dim, groups, max_distance)

        self.stem = space_conv(channels, base_channels)
        self.down = nn.ModuleList()
        skips, c, size = [base_channels], base_channels, resolution
        for level, mult in enumerate(channel_mults):
            for _ in range(blocks_per_level):
                self.down.append(nn.ModuleList([block(c, base_channels * mult)]))
                c = base_channels * mult
                if size in attention_resolutions:
                    self.down[-1].append(attention(c))
                skips.append(c)
            if level < len(channel_mults) - 1:
                self.down.append(nn.ModuleList([Downsample(c)]))
                skips.append(c)
                size //= 2
        self.middle = nn.ModuleList([block(c, c), attention(c), block(c, c)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            for i in range(blocks_per_level + 1):
                self.up.append(nn.ModuleList([block(c + skips.pop(), base_channels * mult)]))
                c = base_channels * mult
                if size in attention_resolutions:
                    self.up[-1].append(attention(c))
                if level > 0 and i == blocks_per_level:
                    self.up[-1].append(Upsample(c))
                    size *= 2
        self.head = nn.Sequential(frame_norm(groups, c), nn.SiLU(), zero_init(space_conv(c, channels)))

    @staticmethod
    def _mlp(c_in: int, width: int, layers: int) -> nn.Sequential:
        modules: list[nn.Module] = [nn.Linear(c_in, width)]
        for _ in range(layers - 1):
            modules += [nn.SiLU(), nn.Linear(width, width)]
        return nn.Sequential(*modules)

    def embed(self, noise_level: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Conditioning embedding `[B, emb_dim]`. noise_level: float `[B]` in [0, 1]; labels: long `[B]`, where
        `num_classes` is the null class (None: all null)."""
        emb = self.emb_mlp(sinusoidal_embedding(1000.0 * noise_level, self.base_channels))
        if self.class_emb is not None:
            if labels is None:
                labels = torch.full_like(noise_level, self.num_classes, dtype=torch.long)
            emb = emb + self.class_emb(labels)
        return emb

    def forward(
        self,
        z: torch.Tensor,
        noise_level: torch.Tensor,
        labels: torch.Tensor | None = None,
        video_frames: int | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict eps or v.

        Args:
            z: float `[B, C, T, H, W]`, the noisy input.
            noise_level: float `[B]` in [0, 1] (t of the cosine schedule, 1 = pure noise).
            labels: long `[B]` class labels with `num_classes` = null (class-conditional models only).
            video_frames: the first `video_frames` frames are a video, the rest independent images (None: all video).
            positions: long `[T]` frame times for the relative position embeddings (default 0..T-1; only
                differences matter).

        Returns:
            float `[B, C, T, H, W]`.
        """
        b, _, t = z.shape[:3]
        if positions is None:
            positions = torch.arange(t, device=z.device)
        allowed = temporal_mask(t, video_frames, z.device)
        emb = repeat(self.embed(noise_level, labels), "b d -> (b t) d", t=t)
        # Channels-last from here on: attention's q/k/v become per-head contiguous views (see SpatialAttention), and
        # oneDNN's CPU convolutions and GroupNorm have channels-last kernels.
        h = self.stem(rearrange(z, "b c t h w -> (b t) c h w").contiguous(memory_format=torch.channels_last))
        skips = [h]
        for layers in self.down:
            h = self._run(layers, h, emb, positions, allowed)
            skips.append(h)
        h = self._run(self.middle, h, emb, positions, allowed)
        for layers in self.up:
            h = self._run(layers, torch.cat([h, skips.pop()], dim=1), emb, positions, allowed)
        return rearrange(self.head(h), "(b t) c h w -> b c t h w", b=b).contiguous()

    @staticmethod
    def _run(layers: nn.ModuleList, h, emb, positions, allowed) -> torch.Tensor:
        for layer in layers:
            if isinstance(layer, ResBlock):
                h = layer(h, emb)
            elif isinstance(layer, SpaceTimeAttention):
                h = layer(h, positions, allowed)
            else:
                h = layer(h)
        return h
