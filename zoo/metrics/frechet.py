"""Frechet distance and kernel (KVD) math on feature arrays: features -> statistics -> value, as pure functions.

Everything is float64 (features are upcast), following TF-GAN. The trace of the matrix square root uses TF-GAN's
symmetric construction `tr(sqrt_sym(A Sigma_gen A))` with `A = sqrt_sym(Sigma_real)`, which stays real and needs no
complex `sqrtm`; `frechet_distance_scipy` is the StyleGAN-V form (`scipy.linalg.sqrtm` of the non-symmetric
product), kept as a cross-check. See `shared/protocols/metrics.md` sections 1.8 and 2.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

Covariance = Literal["unbiased", "biased"]  # unbiased: divide by N-1 (TF-GAN); biased: divide by N (StyleGAN-V)
COVARIANCES = ("unbiased", "biased")
TFGAN_BLOCK_SIZE = 1024  # rows per block of TF-GAN's KVD block estimate


def _as_float64(features: np.ndarray | torch.Tensor, name: str = "features") -> np.ndarray:
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [N, D], got shape {features.shape}")
    return features


def feature_statistics(
    features: np.ndarray | torch.Tensor, covariance: Covariance = "unbiased"
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a feature set.

    Args:
        features: `[N, D]` array (any float dtype; computed in float64).
        covariance: `unbiased` (divide by N-1, TF-GAN and TF FVD) or `biased` (divide by N, StyleGAN-V).

    Returns:
        `(mu, sigma)`: float64 `[D]` and `[D, D]`.
    """
    x = _as_float64(features)
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 feature vectors for a covariance, got {n}")
    mu = x.mean(axis=0)
    centred = x - mu
    sigma = centred.T @ centred / (n - 1 if covariance == "unbiased" else n)
    return mu, sigma


def sqrt_sym(matrix: np.ndarray, eps: float = 1e-10) -> np.ndarray:
    """Square root of a symmetric PSD matrix by SVD, as TF-GAN does: singular values below `eps` are kept unrooted."""
    u, s, vh = np.linalg.svd(matrix)
    s = np.where(s < eps, s, np.sqrt(s))
    return (u * s) @ vh


def trace_sqrt_product(sigma: np.ndarray, sigma_v: np.ndarray) -> float:
    """`tr(sqrtm(sigma @ sigma_v))` via the symmetric product `A sigma_v A`, `A = sqrt_sym(sigma)` (TF-GAN)."""
    a = sqrt_sym(sigma)
    return float(np.trace(sqrt_sym(a @ sigma_v @ a)))


def frechet_distance_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """`||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr(sqrt(sigma1 sigma2))`, float64.

    Argument 1 plays TF-GAN's "real" role (its square root is taken first); the value is symmetric up to ~1e-5
    absolute when the covariances are rank-deficient (N <= D), and to ~1e-12 otherwise.
    """
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2))


def frechet_distance(
    a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, covariance: Covariance = "unbiased"
) -> float:
    """Frechet distance between two feature sets (FVD when they are I3D logits).

    Args:
        a: real features `[N, D]`.
        b: generated features `[M, D]`.
        covariance: `unbiased` (N-1, TF FVD, default) or `biased` (N, StyleGAN-V).

    Returns:
        The distance as a Python float (computed in float64).
    """
    return frechet_distance_from_stats(*feature_statistics(a, covariance), *feature_statistics(b, covariance))


def frechet_distance_scipy(
    a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, covariance: Covariance = "biased"
) -> float:
    """StyleGAN-V's form (`scipy.linalg.sqrtm` of the non-symmetric product, real part), for cross-checks only."""
    import scipy.linalg

    mu_r, sigma_r = feature_statistics(a, covariance)
    mu_g, sigma_g = feature_statistics(b, covariance)
    root = scipy.linalg.sqrtm(sigma_g @ sigma_r)
    diff = mu_g - mu_r
    return float(np.real(diff @ diff + np.trace(sigma_g + sigma_r - root * 2)))


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cubic polynomial kernel `(x . y / d + 1)^3` between the rows of `x [N, D]` and `y [M, D]` -> `[N, M]`."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"unbiased MMD^2 needs at least 2 samples per set, got {m} and {n}")
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    term_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    term_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(term_x + term_y - 2.0 * k_xy.mean())


def kernel_distance(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """KVD: unbiased MMD^2 with the cubic polynomial kernel over the full sets (LVDM `polynomial_mmd` form), raw.

    Args:
        a: real features `[N, D]`.
        b: generated features `[M, D]`.
    """
    return _mmd2_unbiased(_as_float64(b, "b"), _as_float64(a, "a"))


def kernel_distance_blocks(
    a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, max_block_size: int = TFGAN_BLOCK_SIZE
) -> tuple[float, float]:
    """TF-GAN's block estimator of KVD: `ceil(max(N, M) / max_block_size)` contiguous blocks, mean of per-block MMD^2.

    Equals `kernel_distance` when both sets have at most `max_block_size` rows.

    Returns:
        `(mean, standard error)`; the standard error is NaN for a single block (Bessel-corrected spread).
    """
    real, gen = _as_float64(a, "a"), _as_float64(b, "b")
    n_blocks = math.ceil(max(len(real), len(gen)) / max_block_size)
    edges_r = np.linspace(0, len(real), n_blocks + 1).astype(np.int64)
    edges_g = np.linspace(0, len(gen), n_blocks + 1).astype(np.int64)
    estimates = np.array(
        [
            _mmd2_unbiased(gen[edges_g[i] : edges_g[i + 1]], real[edges_r[i] : edges_r[i + 1]])
            for i in range(n_blocks)
        ]
    )
    mean = float(estimates.mean())
    stderr = float(np.sqrt(estimates.var(ddof=1) / n_blocks)) if n_blocks > 1 else float("nan")
    return mean, stderr


def bootstrap_interval(
    a: np.ndarray | torch.Tensor,
    b: np.ndarray | torch.Tensor,
    value_fn,
    rounds: int,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `value_fn(a, b)`, resampling the rows of both sets with replacement.

    Args:
        a, b: feature sets `[N, D]`, `[M, D]` (for IS, `a` may be None and `value_fn` ignores it).
        value_fn: `(a, b) -> float`.
        rounds: number of bootstrap resamples K.
        seed: seed of the resampling (`numpy.random.default_rng`).
        level: coverage of the interval.

    Returns:
        `(low, high)` percentiles of the K resampled values.
    """
    rng = np.random.default_rng(seed)
    a = None if a is None else _as_float64(a, "a")
    b = _as_float64(b, "b")
    values = []
    for _ in range(rounds):
        ra = None if a is None else a[rng.integers(0, len(a), len(a))]
        values.append(value_fn(ra, b[rng.integers(0, len(b), len(b))]))
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
