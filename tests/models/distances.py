"""A real distance between sets of videos for learning checks: no model's own loss, no pretrained detector."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange


def video_features(videos: torch.Tensor, pool: int = 8) -> torch.Tensor:
    """Appearance + motion features: every frame average-pooled to pool x pool, and the pooled frame differences.

    Args:
        videos: float `[N, C, T, H, W]` in [-1, 1].

    Returns:
        float64 `[N, D]`.
    """
    n, c, t = videos.shape[:3]
    frames = F.adaptive_avg_pool2d(rearrange(videos.float(), "n c t h w -> (n t) c h w"), pool)
    frames = rearrange(frames, "(n t) c h w -> n t (c h w)", n=n)
    motion = (frames[:, 1:] - frames[:, :-1]).abs() if t > 1 else frames[:, :0]
    return torch.cat([frames.flatten(1), 4 * motion.flatten(1)], dim=1).double()


def kernel_mmd(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD^2 with the polynomial kernel (x.y / d + 1)^3 (as in KID/KVD) between feature sets `[N, D]`."""
    d = x.shape[1]
    kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
    m, n = len(x), len(y)
    return float(
        (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
        + (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
        - 2 * kxy.mean()
    )


def video_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    return kernel_mmd(video_features(real), video_features(fake))
