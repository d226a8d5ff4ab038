"""Distances between sets of videos for learning checks: no model's own loss.

`video_distance` (what every model's slow check calls) is still the kernel MMD on pooled frames and frame differences.
`fvd_shapes_distance` is the shapes benchmark's FVD with the shipped `shapes_net`; the checks do not use it yet: it
ranks MoCoGAN after 200 steps of its slow check (32 181) far behind its untrained network (1 831), because the
detector, trained on clean clips only, answers high-frequency artefacts with exploding features (README, "The shapes
benchmark"). Switch `video_distance` to it once the detector is retrained with artefact augmentation.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from einops import rearrange

from zoo.metrics.feature_metric import as_pixels
from zoo.metrics.frechet import frechet_distance


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


@lru_cache(maxsize=1)
def _shapes_extractor():
    from zoo.metrics.detectors import build_extractor

    return build_extractor("shapes_net")


def fvd_shapes_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """fvd_shapes between two sets of float videos `[N, C, T, H, W]` in [-1, 1] (T >= 8), quantized to uint8 first as
    `zoo eval` does; the float64 Frechet distance of `zoo.metrics.frechet` on the 128 shapes_net features."""
    extractor = _shapes_extractor()

    def feats(videos):
        return torch.cat([extractor(as_pixels(videos[i : i + 64])) for i in range(0, len(videos), 64)]).numpy()

    return frechet_distance(feats(real), feats(fake))
