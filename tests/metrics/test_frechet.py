"""Frechet distance, KVD and IS against shared/reference/frechet_kvd_is_vectors.npz (README section B)."""

import numpy as np
import pytest
import torch

from zoo.metrics.frechet import (
    frechet_distance,
    frechet_distance_scipy,
    kernel_distance,
    kernel_distance_blocks,
)
from zoo.metrics.inception_score import inception_score, inception_score_repeated


@pytest.fixture(scope="module")
def vectors(shared_dir):
    return np.load(shared_dir / "reference" / "frechet_kvd_is_vectors.npz")


def _randn(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_frechet_rank_deficient_case_a(vectors):
    real, gen = vectors["caseA_real"], vectors["caseA_gen"]
    assert frechet_distance(real, gen) == pytest.approx(float(vectors["caseA__fd_tfgan__unbiased_cov__svd_trace_sqrt"]),
                                                        abs=1e-9)
    assert frechet_distance(real, gen, "biased") == pytest.approx(
        float(vectors["caseA__fd_biased_cov__svd_trace_sqrt"]), abs=1e-9)


@pytest.mark.slow
def test_scipy_cross_check(vectors):
    real, gen = vectors["caseA_real"], vectors["caseA_gen"]
    assert frechet_distance_scipy(real, gen) == pytest.approx(
        float(vectors["caseA__fd_stylegan_v__biased_cov__scipy_sqrtm"]), abs=1e-4)


def test_frechet_full_rank_case_b(vectors):
    real, gen = _randn((2048, 400), 3), _randn((2048, 400), 4) * 1.25 + 0.1
    assert frechet_distance(real, gen) == pytest.approx(
        float(vectors["caseB__fd_tfgan__unbiased_cov__svd_trace_sqrt"]), rel=1e-9)
    assert frechet_distance(real, gen, "biased") == pytest.approx(
        float(vectors["caseB__fd_stylegan_v__biased_cov__scipy_sqrtm"]), rel=1e-9)
    assert kernel_distance(real, gen) == pytest.approx(float(vectors["caseB__kvd_full_unbiased_mmd2"]), rel=1e-9)
    mean, stderr = kernel_distance_blocks(real, gen)
    assert mean == pytest.approx(float(vectors["caseB__kvd_tfgan_block_mean"]), rel=1e-9)
    assert stderr == pytest.approx(4.594e-5, rel=1e-3)


def test_frechet_identity_and_symmetry(vectors):
    real, gen = vectors["caseA_real"][:, :64], vectors["caseA_gen"][:, :64]
    assert abs(frechet_distance(real, real)) < 1e-8
    assert frechet_distance(real, gen) == pytest.approx(frechet_distance(gen, real), rel=1e-9)
    assert frechet_distance(real, gen) > 1.0


def test_kvd_case_a(vectors):
    real, gen = vectors["caseA_real"], vectors["caseA_gen"]
    assert kernel_distance(real, gen) == pytest.approx(float(vectors["caseA__kvd_full_unbiased_mmd2"]), rel=1e-9)
    mean, stderr = kernel_distance_blocks(real, gen)
    assert mean == pytest.approx(float(vectors["caseA__kvd_tfgan_block_mean"]), rel=1e-9) and np.isnan(stderr)


def test_inception_score_conventions(vectors):
    probs = torch.softmax(torch.from_numpy(vectors["is_logits"]).double(), dim=1).numpy()
    assert inception_score(probs)[0] == pytest.approx(float(vectors["is_tgan2_1split"]), rel=1e-12)
    sgv = inception_score(probs.astype(np.float32), splits=10, eps=0.0, shuffle_seed=42, float32=True)
    np.testing.assert_allclose(sgv, vectors["is_stylegan_v_mean_std"], rtol=1e-6)
    np.testing.assert_allclose(inception_score(probs, splits=10), vectors["is_tgan2_10splits_mean_std"], rtol=1e-9)
    assert inception_score_repeated(np.concatenate([probs, probs]), 2)[0] == pytest.approx(
        float(vectors["is_tgan2_1split"]), rel=1e-12)
