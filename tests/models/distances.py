"""The distance every model's slow learning check uses: `fvd_shapes`, the shapes benchmark's FVD.

The in-repo `shapes_net` detector (weights shipped in the package, checksum checked on load) embeds both sets; the
Frechet distance is the float64 one of `zoo eval` (`zoo.metrics.frechet`, /(N-1) covariance). Checks compare a trained
model's samples with its untrained initial network's on the same real clips, so the small-sample bias of FVD
(the same on both sides of the comparison) does not decide the outcome.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from zoo.metrics.feature_metric import as_pixels
from zoo.metrics.frechet import frechet_distance


@lru_cache(maxsize=1)
def _extractor():
    from zoo.metrics.detectors import build_extractor

    return build_extractor("shapes_net")


def video_features(videos: torch.Tensor) -> torch.Tensor:
    """float `[N, C, T, H, W]` in [-1, 1] (T >= 8) -> float64 `[N, 128]` shapes_net features, quantized to uint8
    first exactly as `zoo eval` does."""
    extractor = _extractor()
    return torch.cat([extractor(as_pixels(videos[i : i + 64])) for i in range(0, len(videos), 64)])


def video_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """fvd_shapes between two sets of float videos `[N, C, T, H, W]` in [-1, 1]."""
    return frechet_distance(video_features(real).numpy(), video_features(fake).numpy())
