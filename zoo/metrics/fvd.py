"""FVD and KVD as DDP-synced torchmetrics on I3D features (Unterthiner et al. 2018, https://arxiv.org/abs/1812.01717).

FVD: features -> (mean, covariance) -> Frechet distance, float64, covariance divided by N-1 (TF) or N (StyleGAN-V),
trace-sqrt by TF-GAN's symmetric construction (`zoo.metrics.frechet`). KVD: unbiased MMD^2 with the cubic polynomial
kernel over the full sets (LVDM form), plus TF-GAN's block estimator as a secondary value.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from zoo.metrics.feature_metric import VideoFeatureMetric
from zoo.metrics.frechet import COVARIANCES, TFGAN_BLOCK_SIZE, frechet_distance, kernel_distance, kernel_distance_blocks
from zoo.registry import register_metric


@register_metric(
    "fvd",
    description="Frechet Video Distance on I3D Kinetics-400 logits (float64, TF-GAN trace-sqrt; presets fvd2048_*)",
    paper="Unterthiner et al., Towards Accurate Generative Models of Video, 2018, arXiv:1812.01717",
)
class FrechetVideoDistance(VideoFeatureMetric):
    """FVD between the real and generated feature sets.

    Args:
        extractor: I3D extractor (uint8 pixels -> `[B, 400]`).
        covariance: `unbiased` (N-1, TF FVD; default) or `biased` (N, StyleGAN-V parity).
    """

    name = "fvd"
    higher_is_better = False

    def __init__(self, extractor: nn.Module | None = None, covariance: str = "unbiased", **kwargs):
        super().__init__(extractor, **kwargs)
        if covariance not in COVARIANCES:
            raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
        self.covariance = covariance

    def value(self, real: np.ndarray | None, fake: np.ndarray) -> float:
        if real is None:
            raise ValueError("FVD needs real videos: call update(videos, real=True)")
        return frechet_distance(real, fake, self.covariance)


@register_metric(
    "kvd",
    description="Kernel Video Distance: unbiased cubic-polynomial MMD^2 on I3D logits, full sets (+ TF-GAN blocks)",
    paper="Unterthiner et al., FVD: A new metric for video generation, ICLR workshop 2019",
)
class KernelVideoDistance(VideoFeatureMetric):
    """KVD (raw MMD^2, not x1000) between the real and generated feature sets.

    Args:
        extractor: I3D extractor.
        max_block_size: block size of the secondary TF-GAN estimate.
    """

    name = "kvd"
    higher_is_better = False

    def __init__(self, extractor: nn.Module | None = None, max_block_size: int = TFGAN_BLOCK_SIZE, **kwargs):
        super().__init__(extractor, **kwargs)
        self.max_block_size = max_block_size

    def value(self, real: np.ndarray | None, fake: np.ndarray) -> float:
        if real is None:
            raise ValueError("KVD needs real videos: call update(videos, real=True)")
        return kernel_distance(real, fake)

    def results(self) -> dict[str, float]:
        real, fake = self.feature_arrays()
        mean, stderr = kernel_distance_blocks(real, fake, self.max_block_size)
        return {"kvd": float(self.compute()), "kvd_tfgan_block": mean, "kvd_tfgan_block_stderr": stderr}
