"""Frechet / KVD math: behaviours that mutation testing showed unchecked (issue 19), each against a computation done
here by hand (closed forms for diagonal covariances, np.cov, the unbiased MMD^2 definition) or an exact boundary."""

import numpy as np
import pytest
import scipy.linalg

from zoo.metrics import frechet as F


def _cov(x, ddof):
    return np.cov(x, rowvar=False, ddof=ddof)


def _fd_by_hand(a, b, ddof):
    sa, sb = _cov(a, ddof), _cov(b, ddof)
    return float(np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(sa + sb - 2 * scipy.linalg.sqrtm(sa @ sb).real))


def _mmd2_by_hand(x, y):
    """Unbiased MMD^2 with k(u, v) = (u.v / d + 1)^3, by explicit pair loops."""
    d = x.shape[1]

    def k(u, v):
        return (u @ v / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


RNG = np.random.default_rng(7)
A = RNG.normal(size=(9, 3))
B = RNG.normal(0.5, 2.0, size=(7, 3))


def test_defaults_are_the_documented_conventions():
    """feature_statistics / frechet_distance default to /(N-1); the scipy cross-check defaults to /N."""
    mu, sigma = F.feature_statistics(A)
    np.testing.assert_allclose(mu, A.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, _cov(A, 1), rtol=1e-12)
    assert F.frechet_distance(A, B) == pytest.approx(_fd_by_hand(A, B, 1), rel=1e-9)
    assert F.frechet_distance_scipy(A, B) == pytest.approx(_fd_by_hand(A, B, 0), rel=1e-9)
    assert F.frechet_distance_scipy(A, B, "unbiased") == pytest.approx(_fd_by_hand(A, B, 1), rel=1e-9)


def test_two_vectors_suffice_and_one_is_refused():
    two = A[:2]
    np.testing.assert_allclose(F.feature_statistics(two)[1], _cov(two, 1), rtol=1e-12)
    with pytest.raises(ValueError, match="need at least 2 feature vectors for a covariance, got 1"):
        F.feature_statistics(A[:1])
    assert F.kernel_distance(A[:2], B) == pytest.approx(_mmd2_by_hand(B, A[:2]), rel=1e-10)
    assert F.kernel_distance(A, B[:2]) == pytest.approx(_mmd2_by_hand(B[:2], A), rel=1e-10)
    for a, b, counts in ((A[:1], B, "7 and 1"), (A, B[:1], "1 and 9")):
        with pytest.raises(ValueError, match=f"at least 2 samples per set, got {counts}"):
            F.kernel_distance(a, b)


def test_errors_name_the_argument_and_the_problem():
    with pytest.raises(ValueError, match=r"features must be a 2-D array \[N, D\], got shape \(9,\)"):
        F.feature_statistics(A[:, 0])
    with pytest.raises(ValueError, match=r"covariance must be one of \('unbiased', 'biased'\), got 'N'"):
        F.feature_statistics(A, "N")
    for fn in (F.kernel_distance, F.kernel_distance_blocks):
        with pytest.raises(ValueError, match=r"^a must be a 2-D array"):
            fn(A[:, 0], B)
        with pytest.raises(ValueError, match=r"^b must be a 2-D array"):
            fn(A, B[:, 0])
    with pytest.raises(ValueError, match=r"^b must be a 2-D array"):
        F.bootstrap_interval(A, B[:, 0], F.frechet_distance, rounds=2)
    with pytest.raises(ValueError, match=r"^a must be a 2-D array"):
        F.bootstrap_interval(A[:, 0], B, F.frechet_distance, rounds=2)


def test_float32_statistics_are_used_in_float64():
    """Diagonal covariances have the closed form FD = |mu1 - mu2|^2 + sum (sqrt s1 - sqrt s2)^2. float32 inputs whose
    traces lose units in float32 (spacing 8 at 1e8) must still give the exact float64 value."""
    s1 = np.array([1e8, 1.0, 1.0, 4.0], np.float32)
    s2 = np.array([4e8, 9.0, 1.0, 1.0], np.float32)
    mu1 = np.array([1.0, 2.0, 0.0, 0.0], np.float32)
    mu2 = np.array([0.0, 0.0, 0.0, 3.0], np.float32)
    expected = 14.0 + np.sum((np.sqrt(s1.astype(np.float64)) - np.sqrt(s2.astype(np.float64))) ** 2)
    assert expected == 100000019.0
    value = F.frechet_distance_from_stats(mu1, np.diag(s1), mu2, np.diag(s2))
    assert value == pytest.approx(expected, abs=1e-4)
    value = F.frechet_distance_from_stats(mu2, np.diag(s2), mu1, np.diag(s1))
    assert value == pytest.approx(expected, abs=1e-4)


def test_kvd_blocks_default_to_1024_rows():
    """1025 rows make two blocks at the default size (rows [0, 512) and [512, 1025)): mean and standard error of the two
    per-block MMD^2, each checked against the full-set estimator on that block."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(1025, 2)), rng.normal(0.2, 1.0, size=(1025, 2))
    mean, stderr = F.kernel_distance_blocks(a, b)
    blocks = [F.kernel_distance(a[s], b[s]) for s in (slice(0, 512), slice(512, 1025))]
    assert mean == pytest.approx(np.mean(blocks), rel=1e-12)
    assert stderr == pytest.approx(abs(blocks[0] - blocks[1]) / 2, rel=1e-9)  # sqrt(var_ddof1 / 2) for 2 values
    mean_one, stderr_one = F.kernel_distance_blocks(a[:1024], b[:1024])
    assert mean_one == pytest.approx(F.kernel_distance(a[:1024], b[:1024]), rel=1e-12) and np.isnan(stderr_one)


def test_bootstrap_interval_is_the_percentile_interval_of_seeded_resamples():
    """Rounds draw the rows of a, then of b, from numpy's default_rng(seed); the interval is the (2.5, 97.5)
    percentiles at level 0.95. Recomputed here with a statistic that reads both sets."""

    def value(a, b):
        return float(b.sum() - (0.0 if a is None else a.sum()))

    low, high = F.bootstrap_interval(A, B, value, rounds=40, seed=5, level=0.9)
    rng = np.random.default_rng(5)
    values = []
    for _ in range(40):
        ia = rng.integers(0, len(A), len(A))
        ib = rng.integers(0, len(B), len(B))
        values.append(B[ib].sum() - A[ia].sum())
    assert (low, high) == pytest.approx(tuple(np.percentile(values, [5.0, 95.0])), rel=1e-12)
    low, high = F.bootstrap_interval(None, B, value, rounds=30, seed=1)
    rng = np.random.default_rng(1)
    values = [B[rng.integers(0, len(B), len(B))].sum() for _ in range(30)]
    assert (low, high) == pytest.approx(tuple(np.percentile(values, [2.5, 97.5])), rel=1e-12)


def test_bootstrap_default_seed_is_zero():
    def value(a, b):
        return float(b.sum() - a.sum())

    assert F.bootstrap_interval(A, B, value, rounds=20) == F.bootstrap_interval(A, B, value, rounds=20, seed=0)
    assert F.bootstrap_interval(A, B, value, rounds=20) != F.bootstrap_interval(A, B, value, rounds=20, seed=1)
