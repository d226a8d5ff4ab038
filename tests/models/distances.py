"""The distance of every model's slow learning check: `fvd_shapes` (the shapes benchmark's FVD with the shipped
`shapes_net` detector), so the zoo's checks use the yardstick its users get from `zoo eval --metric fvd_shapes`.

The detector is trained with corruption augmentation (noise, coloured speckle, blur, blockiness, README "The shapes
benchmark"), so early samples full of high-frequency artefacts score as far from real as they look, instead of
farther than an untrained network's near-grey clips.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from zoo.metrics.feature_metric import as_pixels
from zoo.metrics.frechet import frechet_distance


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
