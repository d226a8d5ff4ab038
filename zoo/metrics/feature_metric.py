"""The shared torchmetrics base of FVD, KVD and IS: videos -> uint8 -> detector features, kept per side, DDP-synced.

Feature rows are kept (not running sums) so that one feature pass serves FVD, KVD and the bootstrap, and so that
real features can be cached and reloaded exactly. States are float64 lists reduced by concatenation across ranks.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from zoo.video_io import to_uint8


def as_pixels(videos: torch.Tensor) -> torch.Tensor:
    """uint8 `[B, T, H, W, C]` unchanged; float `[B, C, T, H, W]` in [-1, 1] quantized with `zoo.video_io.to_uint8`.

    Generated videos thus take the exact path of decoded real frames before any detector sees them.
    """
    if videos.dtype == torch.uint8:
        if videos.ndim != 5:
            raise ValueError(f"uint8 videos must be [B, T, H, W, C], got {tuple(videos.shape)}")
        return videos
    return to_uint8(videos)


class ToolNotState:
    """Mixin for metrics that hold a network they only use (a detector, a segmenter, LPIPS): the network is a tool,
    not state, so it stays out of state dicts and checkpoints. `tool_attribute` names it."""

    tool_attribute = "extractor"

    def state_dict(self, *args, **kwargs):  # type: ignore[override]
        tool = getattr(self, self.tool_attribute)
        setattr(self, self.tool_attribute, None)
        try:
            return super().state_dict(*args, **kwargs)
        finally:
            setattr(self, self.tool_attribute, tool)


class VideoFeatureMetric(ToolNotState, Metric):
    """Base: `update(videos, real=...)` or `update(features=..., real=...)`; subclasses implement `value`.

    Args:
        extractor: uint8 `[B, T, H, W, C]` -> float `[B, D]` module (see `zoo.metrics.detectors.build_extractor`);
            may be None when only precomputed features are passed.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better: bool | None = None

    def __init__(self, extractor: nn.Module | None = None, **kwargs):
        super().__init__(**kwargs)
        self.extractor = extractor
        self.add_state("real_features", default=[], dist_reduce_fx="cat")
        self.add_state("fake_features", default=[], dist_reduce_fx="cat")

    def update(self, videos: torch.Tensor | None = None, real: bool = False,
               features: torch.Tensor | None = None) -> None:
        """Add a batch of videos (float `[B, C, T, H, W]` in [-1, 1] or uint8 `[B, T, H, W, C]`) or of features."""
        if features is None:
            if self.extractor is None:
                raise ValueError(f"{type(self).__name__} has no extractor; pass features=")
            features = self.extractor(as_pixels(videos))
        features = torch.as_tensor(features).to(device=self.device, dtype=torch.float64)
        if features.ndim != 2:
            raise ValueError(f"features must be [B, D], got {tuple(features.shape)}")
        (self.real_features if real else self.fake_features).append(features)

    def feature_arrays(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """All (synced) real and generated features as float64 numpy arrays (None for an empty side)."""

        def cat(state):
            if isinstance(state, list) and not state:
                return None
            return dim_zero_cat(state).cpu().numpy()

        return cat(self.real_features), cat(self.fake_features)

    def value(self, real: np.ndarray | None, fake: np.ndarray) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def results(self) -> dict[str, float]:
        """The metric's value and any secondary values, keyed by name."""
        return {self.name: float(self.compute())}

    def compute(self) -> torch.Tensor:
        real, fake = self.feature_arrays()
        if fake is None:
            raise ValueError(f"{type(self).__name__}: no generated videos were added")
        return torch.tensor(self.value(real, fake), dtype=torch.float64)

    def bootstrap(self, rounds: int, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
        """Percentile interval of the value when both feature sets are resampled with replacement."""
        from zoo.metrics.frechet import bootstrap_interval

        real, fake = self.feature_arrays()
        return bootstrap_interval(real, fake, self.value, rounds, seed, level)
