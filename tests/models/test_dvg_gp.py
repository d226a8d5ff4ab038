"""DVG's ported GP against the sparse variational GP equations written out by hand (float64).

The official `GPRegressionLayer1` is gpytorch 0.3's `WhitenedVariationalStrategy`: with inducing points Z, whitened
q(v) = N(m, S), L = chol(K_ZZ + jitter I) and A = L^{-1} K_Zx, the predictive q(f(x)) has mean mu(x) + A^T m and
variance k(x, x) + jitter + diag(A^T (S - I) A); the ELBO per GP is sum_i E_q log N(y_i | f_i, sigma^2) / N - KL(q(v)
|| N(0, I)) / N. The old gpytorch does not run on current torch, so the check is against these formulas."""

from __future__ import annotations

import math

import pytest
import torch

from tests.models.vid2vid_synthetic import one_thread
from zoo.models.dvg.gp import GPDynamics, trigger

JITTER = 1e-6  # gpytorch's variational Cholesky jitter for float64


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    yield from one_thread()


def trained_like_gp(dims=3, m=5, seed=0) -> GPDynamics:
    """A GP with non-trivial variational parameters and hyper-parameters (as after some training)."""
    torch.manual_seed(seed)
    gp = GPDynamics(dims, m).double()
    with torch.no_grad():
        vs = gp.gp.variational_strategy
        vs.variational_params_initialized.fill_(1)  # else the first training-mode call resets q(v) to the prior
        q = vs._variational_distribution
        q.variational_mean.normal_()
        q.chol_variational_covar.copy_(torch.tril(0.3 * torch.randn(dims, m, m)) + 0.5 * torch.eye(m))
        gp.gp.mean_module.constant.normal_()
        gp.gp.covar_module.raw_outputscale.normal_()
        gp.gp.covar_module.base_kernel.raw_lengthscale.normal_()
        gp.likelihood.raw_noise.normal_()
    return gp


def by_hand(gp: GPDynamics, h: torch.Tensor):
    """Predictive mean and variance of f `(B, D)` and the noise `(D,)` from the parameters, by the equations."""
    vs = gp.gp.variational_strategy
    z = vs.inducing_points[..., 0]  # (D, M)
    q = vs._variational_distribution
    m_u, l_s = q.variational_mean, torch.tril(q.chol_variational_covar)  # (D, M), (D, M, M)
    s = l_s @ l_s.mT
    scale = gp.gp.covar_module.outputscale[:, None, None]
    ell = gp.gp.covar_module.base_kernel.lengthscale  # (D, 1, 1)

    def k(a, b):
        return scale * torch.exp(-0.5 * (a[:, :, None] - b[:, None, :]) ** 2 / ell ** 2)

    x = h.T  # (D, B)
    eye = torch.eye(z.shape[1], dtype=h.dtype)
    chol = torch.linalg.cholesky(k(z, z) + JITTER * eye)
    a = torch.linalg.solve_triangular(chol, k(z, x), upper=False)  # (D, M, B)
    mean = gp.gp.mean_module.constant[:, None] + (a.mT @ m_u[..., None])[..., 0]
    var = scale[:, :, 0] + JITTER + ((a.mT @ (s - eye)) * a.mT).sum(-1)
    kl = 0.5 * (s.diagonal(dim1=-2, dim2=-1).sum(-1) + (m_u ** 2).sum(-1) - z.shape[1] - torch.logdet(s))
    return mean.T, var.T, gp.likelihood.noise[:, 0], kl


def test_predictive_mean_and_variance_match_the_equations():
    gp = trained_like_gp()
    h = torch.rand(7, 3, dtype=torch.float64) * 2 - 1
    f = gp.latent(h)
    mean, var, noise, _ = by_hand(gp, h)
    torch.testing.assert_close(f.mean.T, mean, rtol=0, atol=1e-10)
    torch.testing.assert_close(f.variance.T, var, rtol=0, atol=1e-10)
    p_mean, f_var, p_var = gp.predictive(h)  # + the likelihood's noise
    torch.testing.assert_close(p_mean, mean, rtol=0, atol=1e-10)
    torch.testing.assert_close(f_var, var, rtol=0, atol=1e-10)
    torch.testing.assert_close(p_var, var + noise, rtol=0, atol=1e-10)


def test_neg_elbo_matches_the_equations():
    gp = trained_like_gp()
    h = torch.rand(6, 3, dtype=torch.float64) * 2 - 1
    y = torch.rand(6, 3, dtype=torch.float64) * 2 - 1
    mean, var, noise, kl = by_hand(gp, h)
    n = h.shape[0]
    expected_ll = -0.5 * torch.log(2 * math.pi * noise) - ((y - mean) ** 2 + var) / (2 * noise)  # (B, D)
    elbo = expected_ll.sum(0) / n - kl / n  # (D,)
    torch.testing.assert_close(gp.neg_elbo(gp.latent(h), y), -elbo.sum(), rtol=0, atol=1e-10)


def test_trigger_fires_only_above_the_threshold():
    var = torch.tensor([[0.01, 0.03], [0.2, 0.4], [0.05, 0.05]])  # means 0.02, 0.3, 0.05
    assert trigger(var, 0.05).tolist() == [False, True, False]  # strictly above fires
    assert trigger(var, 0.0).tolist() == [True, True, True]
    assert trigger(var, 1.0).tolist() == [False, False, False]


def test_checkpoint_holds_no_infinite_constraint_bounds():
    state = GPDynamics(4, 3).state_dict()
    assert not any(k.endswith(("lower_bound", "upper_bound")) for k in state)
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
