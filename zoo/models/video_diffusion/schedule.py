"""Continuous-time Gaussian diffusion for Video Diffusion Models (Ho et al. 2022, Sec. 2), kept apart from the network.

The forward process is q(z_t | x) = N(alpha_t x, sigma_t^2 I) with alpha_t^2 = sigmoid(lambda_t),
sigma_t^2 = sigmoid(-lambda_t) (variance preserving), and lambda_t = log(alpha_t^2 / sigma_t^2) the log
signal-to-noise ratio. The schedule is the cosine schedule written in log-SNR, lambda(t) = -2 log tan(pi t / 2),
limited to [lambda_min, lambda_max] = [-20, 20]: as in Kingma et al. 2021 (VDM) and the Google diffusion code the
limits are built in, lambda(t) = -2 log tan(a t + b) with b = arctan(exp(-lambda_max / 2)),
a = arctan(exp(-lambda_min / 2)) - b, so lambda(0) = 20, lambda(1) = -20 and lambda is strictly decreasing.

The network predicts epsilon or v = alpha eps - sigma x (Salimans & Ho 2022; the paper's Sec. 2 "v-parameterization");
both are turned into an estimate x_hat of the clean data here. Samplers (Sec. 2, "Sampling"):

* ancestral: z_s = mu_{s|t}(z_t, x_hat) + sqrt((sigma~^2_{s|t})^(1-gamma) (sigma^2_{t|s})^gamma) eps, with
  sigma~^2_{s|t} = (1 - e^{lambda_t - lambda_s}) sigma_s^2 and sigma^2_{t|s} = (1 - e^{lambda_t - lambda_s}) sigma_t^2:
  the log-variance interpolation gamma of Nichol & Dhariwal 2021 (paper default 0.1);
* DDIM (Song et al. 2021): z_s = alpha_s x_hat + sigma_s eps_hat, deterministic given the initial noise.

Both run with any number of uniformly spaced steps in t. Everything here is a pure function of tensors; the model
(`module.py`) supplies `denoise(z, log_snr) -> x_hat`, which is where classifier-free and reconstruction guidance live.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

PREDICTIONS = ("eps", "v")
SAMPLERS = ("ancestral", "ddim")


@dataclass(frozen=True)
class CosineLogSNR:
    """The cosine noise schedule in log-SNR, lambda(t) for t in [0, 1], limited to [logsnr_min, logsnr_max]."""

    logsnr_min: float = -20.0  # lambda(1): the noisiest level
    logsnr_max: float = 20.0  # lambda(0): the cleanest level

    @property
    def _b(self) -> float:
        return math.atan(math.exp(-0.5 * self.logsnr_max))

    @property
    def _a(self) -> float:
        return math.atan(math.exp(-0.5 * self.logsnr_min)) - self._b

    def log_snr(self, t: torch.Tensor) -> torch.Tensor:
        """lambda(t) = -2 log tan(a t + b), float `[...]` for t in [0, 1]."""
        return -2.0 * torch.log(torch.tan(self._a * t.double() + self._b)).to(t.dtype)

    def time(self, log_snr: torch.Tensor) -> torch.Tensor:
        """The inverse, t(lambda) = (arctan(exp(-lambda / 2)) - b) / a."""
        return ((torch.atan(torch.exp(-0.5 * log_snr.double())) - self._b) / self._a).to(log_snr.dtype)


def alpha_sigma(log_snr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """alpha = sqrt(sigmoid(lambda)), sigma = sqrt(sigmoid(-lambda)), so alpha^2 + sigma^2 = 1."""
    return torch.sigmoid(log_snr).sqrt(), torch.sigmoid(-log_snr).sqrt()


def _bcast(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-example `[B]` values -> `[B, 1, 1, ...]` to broadcast against `like` `[B, ...]`."""
    return x.reshape(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def diffuse(x: torch.Tensor, eps: torch.Tensor, log_snr: torch.Tensor) -> torch.Tensor:
    """z_t = alpha_t x + sigma_t eps. x, eps: `[B, ...]`; log_snr: `[B]`."""
    alpha, sigma = alpha_sigma(log_snr)
    return _bcast(alpha, x) * x + _bcast(sigma, x) * eps


def v_from_x_eps(x: torch.Tensor, eps: torch.Tensor, log_snr: torch.Tensor) -> torch.Tensor:
    """v = alpha eps - sigma x (the v-prediction target)."""
    alpha, sigma = alpha_sigma(log_snr)
    return _bcast(alpha, x) * eps - _bcast(sigma, x) * x


def x_from_z_v(z: torch.Tensor, v: torch.Tensor, log_snr: torch.Tensor) -> torch.Tensor:
    """x = alpha z - sigma v."""
    alpha, sigma = alpha_sigma(log_snr)
    return _bcast(alpha, z) * z - _bcast(sigma, z) * v


def eps_from_z_v(z: torch.Tensor, v: torch.Tensor, log_snr: torch.Tensor) -> torch.Tensor:
    """eps = sigma z + alpha v."""
    alpha, sigma = alpha_sigma(log_snr)
    return _bcast(sigma, z) * z + _bcast(alpha, z) * v


def x_from_z_eps(z: torch.Tensor, eps: torch.Tensor, log_snr: torch.Tensor) -> torch.Tensor:
    """x = (z - sigma eps) / alpha (ill-conditioned as alpha -> 0: why v-prediction is the default)."""
    alpha, sigma = alpha_sigma(log_snr)
    return (z - _bcast(sigma, z) * eps) / _bcast(alpha, z)


def eps_from_z_x(z: torch.Tensor, x: torch.Tensor, log_snr: torch.Tensor) -> torch.Tensor:
    """eps = (z - alpha x) / sigma."""
    alpha, sigma = alpha_sigma(log_snr)
    return (z - _bcast(alpha, z) * x) / _bcast(sigma, z)


def training_target(x: torch.Tensor, eps: torch.Tensor, log_snr: torch.Tensor, prediction: str) -> torch.Tensor:
    """What the network regresses: eps, or v = alpha eps - sigma x."""
    if prediction == "eps":
        return eps
    if prediction == "v":
        return v_from_x_eps(x, eps, log_snr)
    raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")


def predict_x(z: torch.Tensor, output: torch.Tensor, log_snr: torch.Tensor, prediction: str) -> torch.Tensor:
    """The clean-data estimate x_hat from the network's output (eps or v) at noisy input z."""
    if prediction == "eps":
        return x_from_z_eps(z, output, log_snr)
    if prediction == "v":
        return x_from_z_v(z, output, log_snr)
    raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")


def ancestral_step(
    z: torch.Tensor, x_hat: torch.Tensor, log_snr_t: torch.Tensor, log_snr_s: torch.Tensor, noise: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """One step z_t -> z_s (s < t, lambda_s > lambda_t) of the paper's ancestral sampler.

    mu = e^{lambda_t - lambda_s} (alpha_s / alpha_t) z_t + (1 - e^{lambda_t - lambda_s}) alpha_s x_hat, and the
    variance interpolates log sigma~^2_{s|t} (the posterior's, gamma = 0) and log sigma^2_{t|s} (gamma = 1).

    Args:
        z: float `[B, ...]`, z_t.
        x_hat: float `[B, ...]`, the estimate of x at (z_t, lambda_t).
        log_snr_t, log_snr_s: float `[B]`.
        noise: standard normal, like z.
        gamma: log-variance interpolation weight in [0, 1].
    """
    alpha_t, _ = alpha_sigma(log_snr_t)
    alpha_s, sigma_s = alpha_sigma(log_snr_s)
    _, sigma_t = alpha_sigma(log_snr_t)
    ratio = torch.exp(log_snr_t - log_snr_s)  # e^{lambda_t - lambda_s} in (0, 1]
    one_minus = -torch.expm1(log_snr_t - log_snr_s)  # 1 - ratio, exact for tiny steps
    mean = _bcast(ratio * alpha_s / alpha_t, z) * z + _bcast(one_minus * alpha_s, z) * x_hat
    log_var_posterior = torch.log(one_minus) + 2 * torch.log(sigma_s)  # sigma~^2_{s|t}
    log_var_forward = torch.log(one_minus) + 2 * torch.log(sigma_t)  # sigma^2_{t|s}
    std = torch.exp(0.5 * ((1 - gamma) * log_var_posterior + gamma * log_var_forward))
    return mean + _bcast(std, z) * noise


def ddim_step(z: torch.Tensor, x_hat: torch.Tensor, log_snr_t: torch.Tensor, log_snr_s: torch.Tensor) -> torch.Tensor:
    """One deterministic DDIM step z_t -> z_s = alpha_s x_hat + sigma_s eps_hat, eps_hat consistent with x_hat."""
    eps_hat = eps_from_z_x(z, x_hat, log_snr_t)
    alpha_s, sigma_s = alpha_sigma(log_snr_s)
    return _bcast(alpha_s, z) * x_hat + _bcast(sigma_s, z) * eps_hat


def sample_loop(
    denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    z: torch.Tensor,
    schedule: CosineLogSNR,
    steps: int,
    sampler: str = "ancestral",
    gamma: float = 0.1,
    noise: Callable[[], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Run a sampler from pure noise `z` (at t = 1) to t = 0 in `steps` uniform steps.

    Args:
        denoise: `(z_t [B, ...], log_snr [B]) -> x_hat [B, ...]`, the model's clean-data estimate (clipped and
            guided by the caller as it likes).
        z: float `[B, ...]`, standard normal noise: z_1.
        schedule: the log-SNR schedule.
        steps: number of network evaluations, >= 1.
        sampler: "ancestral" (stochastic, needs `noise`) or "ddim" (deterministic).
        gamma: ancestral sampler's log-variance interpolation.
        noise: draws a fresh standard normal tensor like `z` (ancestral sampler only).

    Returns:
        The final clean-data estimate x_hat at t = 0's last step, float `[B, ...]`.
    """
    if steps < 1:
        raise ValueError(f"sampling steps must be >= 1, got {steps}")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if sampler == "ancestral" and noise is None:
        raise ValueError("the ancestral sampler needs a noise source")
    times = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64, device=z.device)
    log_snrs = schedule.log_snr(times).to(torch.float32)
    ones = torch.ones(z.shape[0], device=z.device)
    x_hat = z
    for i in range(steps):
        log_snr_t, log_snr_s = log_snrs[i] * ones, log_snrs[i + 1] * ones
        x_hat = denoise(z, log_snr_t)
        if i == steps - 1:  # s = 0: lambda_s = lambda_max, z_0 is x_hat up to sigma_0 ~ 5e-5; return x_hat itself
            break
        if sampler == "ddim":
            z = ddim_step(z, x_hat, log_snr_t, log_snr_s)
        else:
            z = ancestral_step(z, x_hat, log_snr_t, log_snr_s, noise(), gamma)
    return x_hat
