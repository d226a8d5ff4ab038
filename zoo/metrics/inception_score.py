"""Video Inception Score on UCF-101 C3D predictions (Saito et al., TGAN 2017 / TGANv2 2020; StyleGAN-V 2022).

`IS = exp(mean_i KL(p(y|x_i) || p(y)))` per split. Conventions (see `shared/protocols/metrics.md` section 3):
* TGANv2 (default): float64 probabilities, `p + 1e-20`, 1 split over N = 2048 samples, repeated over `repeats`
  independent sample sets (10 in the paper), reported as mean and std over repeats.
* StyleGAN-V (`isv`): float32 probabilities shuffled with `np.random.RandomState(42)`, 10 splits, no epsilon,
  mean and std over splits; ~6 % lower than 1 split on the same predictions.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from zoo.metrics.feature_metric import VideoFeatureMetric
from zoo.registry import register_metric


def inception_score(probs: np.ndarray | torch.Tensor, splits: int = 1, eps: float = 1e-20,
                    shuffle_seed: int | None = None, float32: bool = False) -> tuple[float, float]:
    """Inception score of class probabilities.

    Args:
        probs: `[N, K]` class probabilities (rows sum to 1).
        splits: number of contiguous splits `[i N // s, (i + 1) N // s)`.
        eps: added to the probabilities before the logs (TGANv2 1e-20; StyleGAN-V 0).
        shuffle_seed: if set, rows are shuffled in place with `np.random.RandomState(seed)` first (StyleGAN-V: 42).
        float32: compute in float32 (StyleGAN-V) instead of float64.

    Returns:
        `(mean, std)` over the splits (std is 0 for one split).
    """
    if isinstance(probs, torch.Tensor):
        probs = probs.detach().cpu().numpy()
    p = np.array(probs, dtype=np.float32 if float32 else np.float64)
    if p.ndim != 2:
        raise ValueError(f"probs must be [N, K], got shape {p.shape}")
    if shuffle_seed is not None:
        np.random.RandomState(shuffle_seed).shuffle(p)
    n = p.shape[0]
    scores = []
    for i in range(splits):
        part = p[i * n // splits : (i + 1) * n // splits] + p.dtype.type(eps)
        marginal = part.mean(axis=0, keepdims=True)
        kl = part * (np.log(part) - np.log(marginal))
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def inception_score_repeated(probs: np.ndarray | torch.Tensor, repeats: int, **kwargs) -> tuple[float, float]:
    """TGANv2's loops: IS of each of `repeats` contiguous sample sets, then mean and std over the sets."""
    probs = probs.detach().cpu().numpy() if isinstance(probs, torch.Tensor) else np.asarray(probs)
    n = probs.shape[0]
    scores = [inception_score(probs[i * n // repeats : (i + 1) * n // repeats], **kwargs)[0] for i in range(repeats)]
    return float(np.mean(scores)), float(np.std(scores))


@register_metric(
    "is",
    description="video Inception Score on UCF-101 C3D (TGANv2 1 split x repeats default; StyleGAN-V 10 splits)",
    paper="Saito et al., Train Sparsely, Generate Densely (TGANv2), IJCV 2020, arXiv:1811.09245",
)
class VideoInceptionScore(VideoFeatureMetric):
    """IS of the generated videos (real videos, if added, give the real-data IS in `results()`).

    Args:
        extractor: C3D extractor (uint8 pixels -> probabilities `[B, 101]`).
        splits: splits per sample set (TGANv2 1, StyleGAN-V 10).
        repeats: independent sample sets the generated videos are cut into (TGANv2 10 loops).
        convention: `tgan2` (float64, eps 1e-20, no shuffle) or `stylegan_v` (float32, no eps, RandomState(42)).
    """

    name = "is"
    higher_is_better = True

    def __init__(self, extractor: nn.Module | None = None, splits: int = 1, repeats: int = 1,
                 convention: str = "tgan2", **kwargs):
        super().__init__(extractor, **kwargs)
        if convention not in ("tgan2", "stylegan_v"):
            raise ValueError(f"convention must be 'tgan2' or 'stylegan_v', got {convention!r}")
        self.splits, self.repeats, self.convention = splits, repeats, convention

    def _kwargs(self) -> dict:
        if self.convention == "stylegan_v":
            return {"splits": self.splits, "eps": 0.0, "shuffle_seed": 42, "float32": True}
        return {"splits": self.splits, "eps": 1e-20}

    def score(self, probs: np.ndarray) -> tuple[float, float]:
        if self.repeats > 1:
            return inception_score_repeated(probs, self.repeats, **self._kwargs())
        return inception_score(probs, **self._kwargs())

    def value(self, real: np.ndarray | None, fake: np.ndarray) -> float:
        return self.score(fake)[0]

    def results(self) -> dict[str, float]:
        real, fake = self.feature_arrays()
        mean, std = self.score(fake)
        out = {"is": mean, "is_std": std}
        if real is not None and len(real):  # evaluate() adds an empty real row list on every rank
            out["is_real"] = self.score(real)[0]
        return out
