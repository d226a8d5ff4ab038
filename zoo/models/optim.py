"""Optimizer steps as older frameworks took them, where an official run depends on it."""

from __future__ import annotations

import math

import torch


def eps_before_bias_correction(eps: float):
    """Step pre-hook making `torch.optim.Adam` take the Adam step of Chainer (`chainer/optimizers/adam.py`, TGANv2's
    official optimizer) and of PyTorch before 1.5 (MoCoGAN's official code ran on 0.x): eps is added to sqrt(v) and
    the step scaled by lr sqrt(1 - beta2^t) / (1 - beta1^t), where today's PyTorch adds eps to the bias-corrected
    sqrt(v / (1 - beta2^t)). The two agree when PyTorch's eps at step t is eps / sqrt(1 - beta2^t), set here before
    every step (t from the optimizer state, so resumed runs agree too). The difference matters in the first steps for
    parameters whose gradient is near eps (at t = 1 the old effective eps is 1 / sqrt(1 - beta2) times today's: 3.2x
    at beta2 = 0.9, 31.6x at 0.999) and fades as beta2^t -> 0; the one-step transplants on the two models' pages
    measured it."""

    def hook(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        for group in optimizer.param_groups:
            state = next((optimizer.state[p] for p in group["params"] if "step" in optimizer.state.get(p, {})), None)
            t = 1 if state is None else int(state["step"]) + 1
            group["eps"] = eps / math.sqrt(1 - group["betas"][1] ** t)

    return hook
