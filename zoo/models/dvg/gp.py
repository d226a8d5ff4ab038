"""DVG's GP temporal dynamics encoder: a batch of independent variational GPs, one per latent dimension.

Shrivastava & Shrivastava, ICLR 2021, Sec. 3.2 (the GP models the distribution of the next latent given the current
one) and Sec. 3.3 (its variance over the output function space is the trigger). As the official `models/gp_models.py`
(`GPRegressionLayer1`, checked): `g_dim` GPs; GP d maps the scalar latent h_t[d] to h_{t+1}[d]; constant mean,
scaled RBF kernel, 40 inducing points initialised uniform in [0, 1) and learned, a Cholesky variational distribution
in the whitened parametrisation (u = L v, v ~ N(m, S)); a Gaussian likelihood with one noise per dimension; the
variational ELBO with `num_data` = the batch size. The official code uses gpytorch 0.3's removed
`AbstractVariationalGP` / `WhitenedVariationalStrategy`; this is the same model on the current API
(`ApproximateGP` + `VariationalStrategy`, which is whitened).
"""

from __future__ import annotations

import gpytorch
import torch
from einops import rearrange
from torch import nn


class LatentGP(gpytorch.models.ApproximateGP):
    """`dims` independent 1-D -> 1-D sparse variational GPs (batch shape `[dims]`)."""

    def __init__(self, dims: int, num_inducing: int):
        batch = torch.Size([dims])
        q_u = gpytorch.variational.CholeskyVariationalDistribution(num_inducing, batch_shape=batch)
        inducing = torch.rand(dims, num_inducing, 1)  # (D, M, 1), official init
        strategy = gpytorch.variational.VariationalStrategy(self, inducing, q_u, learn_inducing_locations=True)
        super().__init__(strategy)
        with torch.no_grad():  # at construction, not on the first call (which may be a seeded prediction): q(v) = the
            # prior N(0, I) plus gpytorch's small init noise, as the official first training call did
            q_u.initialize_variational_distribution(strategy.prior_distribution)
            strategy.variational_params_initialized.fill_(1)
        self.mean_module = gpytorch.means.ConstantMean(batch_shape=batch)
        self.covar_module = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel(batch_shape=batch),
                                                         batch_shape=batch)

    def forward(self, x: torch.Tensor) -> gpytorch.distributions.MultivariateNormal:
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))  # x: (D, N, 1)


class GPDynamics(nn.Module):
    """The GP layer with its likelihood, taking and returning latents in the batch layout `(B, D)`."""

    def __init__(self, dims: int, num_inducing: int = 40):
        super().__init__()
        self.dims = dims
        self.gp = LatentGP(dims, num_inducing)
        self.likelihood = gpytorch.likelihoods.GaussianLikelihood(batch_shape=torch.Size([dims]))
        for module in self.modules():  # constraint bounds are constants the constructor rebuilds; Positive's upper
            if isinstance(module, gpytorch.constraints.Interval):  # bound is inf, which checkpoints must not hold
                module._non_persistent_buffers_set.update(("lower_bound", "upper_bound"))

    def latent(self, h: torch.Tensor) -> gpytorch.distributions.MultivariateNormal:
        """q(f(h)): batch `[D]` of MVNs over the `B` inputs; `h` float `(B, D)`."""
        return self.gp(rearrange(h, "b d -> d b 1"))

    def predictive(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Marginals `(B, D)` at the current latents `h` `(B, D)`: the mean, the variance of f (the GP's variance
        over the output function space, which the trigger reads) and the predictive variance of h_{t+1} = that plus
        the likelihood's noise (what a new future is drawn from, as the official `likelihood(gp(h)).rsample()`)."""
        f = self.latent(h)
        mean = rearrange(f.mean, "d b -> b d")
        f_var = rearrange(f.variance, "d b -> b d")
        return mean, f_var, f_var + rearrange(self.likelihood.noise, "d 1 -> 1 d")

    def neg_elbo(self, f: gpytorch.distributions.MultivariateNormal, target: torch.Tensor) -> torch.Tensor:
        """-ELBO summed over the `D` GPs (official `-mll(...).sum()`); `target` `(B, D)`, num_data = B."""
        mll = gpytorch.mlls.VariationalELBO(self.likelihood, self.gp, num_data=target.shape[0])
        return -mll(f, rearrange(target, "b d -> d b")).sum()


def trigger(variance: torch.Tensor, threshold: float) -> torch.Tensor:
    """The paper's trigger switch (Sec. 3.3): bool `(B,)`, True where the GP's variance over the output function
    space (of f at the current latent, without the likelihood's noise), averaged over the latent dimensions, exceeds
    `threshold` (an ongoing action is ending: draw a new future from the GP); False keeps the LSTM's deterministic
    prediction. `variance` `(B, D)`."""
    return variance.mean(dim=1) > threshold
