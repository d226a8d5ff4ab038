"""vid2vid's discriminators (Wang et al. 2018, Sec. 3.2; official `Vid2VidModelD`, `get_skipped_frames`).

D_I, the conditional image discriminator, is a pix2pixHD multi-scale PatchGAN on [s_t, x_t] (source map of the frame
and the frame). D_V, the conditional video discriminator, judges K = n_frames_D consecutive frames with the K - 1
flows between them (the *real* video's flow, given to real and fake alike, divided by 20), at `n_scales_temporal`
frame rates: temporal scale s takes every (K^s)-th frame (1, 3, 9, ...), one multi-scale PatchGAN per scale.

Groups of frames for D_V follow the official `get_skipped_frames`: the frames generated so far in the sequence (the
earlier chunks' detached) are kept in a buffer; scale s cuts groups of K frames K^s apart, ending at the newest
frame and then every K frames back, as long as the group lies in the buffer and ends in the current chunk.
Flows between frames K^s apart are, in the official code, FlowNet2 on the skipped frames; here they are the batch's
one-frame flows composed (`compose_flows`), or zeros without flow (see the module's deviations).
"""

from __future__ import annotations

import torch
from einops import rearrange

from zoo.models.layers.pix2pixhd import MultiscaleDiscriminator
from zoo.warp import warp


def image_discriminator(condition_channels: int, ndf: int, n_layers: int, num_d: int, norm: str):
    """D_I on `[N, C_c + 3, H, W]` (source map then frame)."""
    return MultiscaleDiscriminator(condition_channels + 3, ndf, n_layers, num_d, norm)


def temporal_discriminator(n_frames_d: int, ndf: int, n_layers: int, num_d: int, norm: str):
    """One D_V scale on `[N, 3 K + 2 (K - 1), H, W]` (K frames then K - 1 flows, each time-major)."""
    return MultiscaleDiscriminator(3 * n_frames_d + 2 * (n_frames_d - 1), ndf, n_layers, num_d, norm)


def compose_flows(flows: torch.Tensor) -> torch.Tensor:
    """The backward flow from the last frame of a run to the frame before its first flow, chaining one-frame flows.

    Args:
        flows: float `[B, 2, d, H, W]`: flow d-1 maps the last frame to the one before it, flow d-2 that frame to its
            predecessor, and so on (each the `flow_back` convention).

    Returns:
        float `[B, 2, H, W]`: f with warp(frame_{e-d}, f) ~ frame_e; f = f_e + warp(f_{e-1}, f) + ... .
    """
    total = flows[:, :, -1]
    for j in range(flows.shape[2] - 2, -1, -1):
        total = total + warp(flows[:, :, j], total)
    return total


def temporal_groups(frames: torch.Tensor, new: int, scale: int, k: int) -> list[tuple[int, int]]:
    """(first, step) of every group of K frames for temporal scale `scale` in a buffer of `frames` frames whose last
    `new` frames are the current chunk's (official `get_skipped_frames`): step = K^scale, groups end at the last
    frame, then K frames earlier each, while they fit in the buffer."""
    step = k**scale
    span = step * (k - 1)
    groups = []
    for t in range(0, min(frames - span, new), k):
        end = frames - 1 - t
        groups.append((end - span, step))
    return groups


def gather_groups(video: torch.Tensor, groups: list[tuple[int, int]], k: int) -> torch.Tensor:
    """`[B, C, N, H, W]` -> the groups' frames `[(G B), C, K, H, W]` (groups major, as the official concatenation)."""
    parts = [video[:, :, first:first + step * (k - 1) + 1:step] for first, step in groups]
    return torch.cat(parts, dim=0)


def gather_group_flows(flows: torch.Tensor, groups: list[tuple[int, int]], k: int) -> torch.Tensor:
    """Flows between the groups' consecutive frames: `flows` `[B, 2, N, H, W]` (flow i maps buffered frame i to
    frame i - 1) -> `[(G B), 2, K - 1, H, W]`."""
    out = []
    for first, step in groups:
        between = [compose_flows(flows[:, :, first + (j - 1) * step + 1:first + j * step + 1]) for j in range(1, k)]
        out.append(torch.stack(between, dim=2))
    return torch.cat(out, dim=0)


def temporal_input(frames: torch.Tensor, flows: torch.Tensor) -> torch.Tensor:
    """D_V's input: `[N, 3, K, H, W]` and `[N, 2, K - 1, H, W]` -> `[N, 3 K + 2 (K - 1), H, W]` (official
    `view(-1, 3 * K, H, W)` of time-major frames, then the flows / 20)."""
    return torch.cat([rearrange(frames, "n c t h w -> n (t c) h w"), rearrange(flows / 20, "n c t h w -> n (t c) h w")],
                     dim=1)
