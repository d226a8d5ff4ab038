"""Precision, recall, density and coverage of k-nearest-neighbour manifolds (Kynkaanniemi et al., NeurIPS 2019,
arXiv:1904.06991; Naeem et al., ICML 2020, arXiv:2002.09797), and MoCoGAN's average content distance (Tulyakov et
al., CVPR 2018, arXiv:1707.04993, section 4.1).

PRDC tells a model that covers only some classes or motions (high precision, low recall / coverage) apart from one
that draws blurry clips of all of them (low precision / density). Definitions (Naeem et al., section 3), with
`B(x, r)` the ball of radius r around x and `NND_k(x)` the distance of x to its k-th nearest neighbour in its own set
(x itself excluded), real features X (N), fake features Y (M):

* precision = 1/M sum_j 1[exists i: Y_j in B(X_i, NND_k(X_i))]
* recall    = 1/N sum_i 1[exists j: X_i in B(Y_j, NND_k(Y_j))]
* density   = 1/(kM) sum_j sum_i 1[Y_j in B(X_i, NND_k(X_i))]
* coverage  = 1/N sum_i 1[exists j: Y_j in B(X_i, NND_k(X_i))]

Euclidean distances in float64, k = 5 (the paper's default). The headline value is coverage (the most robust of the
four in Naeem et al., section 4); the others are secondary values of the row.

ACD: the mean over generated videos of the mean L2 distance between all pairs of one video's per-frame content
features (lower = content better kept over time). MoCoGAN used the mean foreground colour (shape motion) and OpenFace
features (faces); here the per-time-step embeddings of `shapes_net`. Real videos, if added, give the real ACD, the
reference a model should reach, not zero.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from zoo.metrics.feature_metric import VideoFeatureMetric
from zoo.registry import register_metric

NEAREST_NEIGHBOURS = 5  # k of the k-NN balls (Naeem et al.'s default)


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise Euclidean distances `[len(a), len(b)]`, float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    sq = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def _kth_neighbour_radii(x: np.ndarray, k: int) -> np.ndarray:
    d = _distances(x, x)
    return np.partition(d, k, axis=1)[:, k]  # index 0 is the point itself (distance 0)


def prdc(real: np.ndarray, fake: np.ndarray, k: int = NEAREST_NEIGHBOURS) -> dict[str, float]:
    """Precision, recall, density and coverage of `fake` `[M, D]` against `real` `[N, D]` (module docstring)."""
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"PRDC with k={k} needs more than {k} real and fake samples, got {len(real)} / {len(fake)}")
    real_radii = _kth_neighbour_radii(real, k)
    fake_radii = _kth_neighbour_radii(fake, k)
    d = _distances(real, fake)  # [N, M]
    inside_real = d <= real_radii[:, None]  # fake j inside real ball i
    return {
        "precision": float(inside_real.any(axis=0).mean()),
        "recall": float((d <= fake_radii[None, :]).any(axis=1).mean()),
        "density": float(inside_real.sum(axis=0).mean() / k),
        "coverage": float((d.min(axis=1) <= real_radii).mean()),
    }


@register_metric(
    "prdc",
    description="precision / recall / density / coverage of k-NN manifolds (k=5) on shapes_net features",
    paper="Naeem et al., Reliable Fidelity and Diversity Metrics for Generative Models, ICML 2020, arXiv:2002.09797",
)
class PRDC(VideoFeatureMetric):
    """PRDC between the real and generated feature sets; `compute()` is coverage, `results()` all four."""

    name = "prdc"
    higher_is_better = True

    def __init__(self, extractor: nn.Module | None = None, k: int = NEAREST_NEIGHBOURS, **kwargs):
        super().__init__(extractor, **kwargs)
        self.k = k

    def value(self, real: np.ndarray | None, fake: np.ndarray) -> float:
        if real is None:
            raise ValueError("PRDC needs real videos: call update(videos, real=True)")
        return prdc(real, fake, self.k)["coverage"]

    def results(self) -> dict[str, float]:
        real, fake = self.feature_arrays()
        if real is None or fake is None:
            raise ValueError("PRDC needs real and generated videos")
        values = prdc(real, fake, self.k)
        return {"prdc": values["coverage"], **values}


def average_content_distance(frame_features: np.ndarray, dim: int) -> float:
    """Mean over videos of the mean pairwise L2 distance between one video's per-frame features.

    Args:
        frame_features: `[N, T * dim]` (each row: T per-frame feature vectors of size `dim`, concatenated).
    """
    x = np.asarray(frame_features, np.float64)
    if x.ndim != 2 or x.shape[1] % dim:
        raise ValueError(f"frame features must be [N, T * {dim}], got {x.shape}")
    x = x.reshape(len(x), -1, dim)  # (N, T, dim)
    t = x.shape[1]
    if t < 2:
        raise ValueError("ACD needs at least 2 frame features per video")
    d = np.sqrt(np.maximum(((x[:, :, None] - x[:, None, :]) ** 2).sum(-1), 0.0))  # (N, T, T)
    return float((d.sum((1, 2)) / (t * (t - 1))).mean())


@register_metric(
    "acd",
    description="MoCoGAN's average content distance: mean pairwise distance of per-frame features within a video",
    paper="Tulyakov et al., MoCoGAN, CVPR 2018, arXiv:1707.04993, section 4.1",
)
class AverageContentDistance(VideoFeatureMetric):
    """ACD of the generated videos (`results()` adds `acd_real` when real videos were added).

    Args:
        extractor: returns `[B, T * dim]` per-frame features (`ShapesExtractor(output="frame_features")`).
        dim: size of one frame's feature vector.
    """

    name = "acd"
    higher_is_better = False

    def __init__(self, extractor: nn.Module | None = None, dim: int = 64, **kwargs):
        super().__init__(extractor, **kwargs)
        self.dim = dim

    def value(self, real: np.ndarray | None, fake: np.ndarray) -> float:
        return average_content_distance(fake, self.dim)

    def results(self) -> dict[str, float]:
        real, fake = self.feature_arrays()
        out = {"acd": average_content_distance(fake, self.dim)}
        if real is not None and len(real):
            out["acd_real"] = average_content_distance(real, self.dim)
        return out
