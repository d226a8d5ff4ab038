"""MoCoGAN's Adam steps as the PyTorch 0.x Adam the official code (`sergeytulyakov/mocogan`, 2017) ran on:
eps is added to sqrt(v) before the bias correction, p -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps), with
weight decay added to the gradient. A one-step float64 transplant against the official loop (docs/models/mocogan.md)
found everything else equal to ~1e-15; today's `torch.optim.Adam` (eps after the bias correction) moved parameters
with small gradients by up to 1.4e-4 after one step. Recomputed here by hand, no official code."""

import math

import torch

from zoo.models.base import VideoSpec
from zoo.models.mocogan import MoCoGAN, MoCoGANConfig


def test_two_adam_steps_follow_the_pytorch_0x_formula():
    torch.manual_seed(0)
    model = MoCoGAN(MoCoGANConfig(ngf=4, ndf=4), VideoSpec(3, 8, 32, 0)).double()
    optimizers = model.configure_optimizers()
    c = model.config
    lr, (b1, b2), wd, eps = c.lr, (c.beta1, c.beta2), c.weight_decay, 1e-8
    for optimizer in optimizers:
        params = [p for g in optimizer.param_groups for p in g["params"]]
        start = [p.detach().clone() for p in params]
        m = [torch.zeros_like(p) for p in params]
        v = [torch.zeros_like(p) for p in params]
        expected = [p.clone() for p in start]
        for t, scale in ((1, 1e-8), (2, 3e-8)):  # gradients near eps, where the two formulas differ most
            grads = [scale * torch.randn_like(p) for p in params]
            for i, (p, g) in enumerate(zip(params, grads)):
                p.grad = g.clone()
                g = g + wd * expected[i]
                m[i] = b1 * m[i] + (1 - b1) * g
                v[i] = b2 * v[i] + (1 - b2) * g * g
                step = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
                expected[i] = expected[i] - step * m[i] / (v[i].sqrt() + eps)
            optimizer.step()
        for p, e, s in zip(params, expected, start):
            torch.testing.assert_close(p.detach(), e, rtol=0, atol=1e-15)
            assert (p.detach() - s).abs().max() > 0
