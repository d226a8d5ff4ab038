"""TGANv2's training recipe against the official code (pfnet-research/tgan2): the simultaneous update's plumbing (both
losses from one draw of fakes), the data augmentation and snapshots of the UCF-101 recipe, Adam stepped as Chainer's."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from zoo.config import resolve_config
from zoo.models.base import VideoSpec
from zoo.models.tgan2 import TGANv2, TGANv2Config

TINY = dict(z_dim=16, clstm_channels=8, ch=4, channel_multipliers=[4, 2, 1, 1], dis_channels=2)


def test_ucf101_recipe_is_the_official_run():
    config = resolve_config("tgan2", "ucf101", TGANv2Config)
    assert config.model.simultaneous_update and config.model.fresh_real_batches
    assert config.data.hflip and config.data.crop_jitter == 0.875, "UCF101Dataset: xflip=True, xmargin=4 of 32"
    assert config.train.checkpoint_every == 2000, "snapshot_interval 2000, all kept: the 82,000 selection is repeatable"
    readme = next(r for r in config.reference if r["value"] == 25.07)
    assert "82000" in readme["source"] and "2,000" in readme["source"]


def test_both_losses_of_a_simultaneous_update_use_the_same_fakes():
    """G's loss scores the shared fakes with the graph to G; D's loss scores the same fakes, detached."""
    torch.manual_seed(0)
    model = TGANv2(TGANv2Config(**TINY, gp_weight=0.0), VideoSpec(3, 8, 16, 0)).train()
    batch = {"video": torch.rand(4, 3, 8, 16, 16) * 2 - 1, "label": torch.zeros(4, dtype=torch.long)}
    fakes = model.draw_fakes(batch)
    g_loss, _ = model.generator_loss(batch, fakes=fakes)
    scores = torch.cat([d(x) for d, x in zip(model.discriminator.levels, fakes[0])])
    torch.testing.assert_close(g_loss, F.softplus(-scores).mean())
    torch.manual_seed(5)
    d_loss, _ = model.discriminator_loss(batch, 0, fakes=fakes)
    torch.manual_seed(5)  # the same real offsets
    reals, _ = model.real_levels(batch["video"], None)
    real_scores = torch.cat([d(x) for d, x in zip(model.discriminator.levels, reals)])
    torch.testing.assert_close(d_loss, F.softplus(-real_scores).mean() + F.softplus(scores).mean())
    generator_params = list(model.generator.parameters())
    grads = torch.autograd.grad(d_loss, generator_params, allow_unused=True)
    assert all(g is None for g in grads), "D's loss must not reach G (the fakes are detached)"


def test_adam_steps_as_the_official_chainer_adam():
    """The official optimizer is Chainer's Adam (chainer/optimizers/adam.py): eps is added to sqrt(v), then the step is
    scaled by alpha sqrt(1 - beta2^t) / (1 - beta1^t); PyTorch adds eps to sqrt(v / (1 - beta2^t)). Gradients near eps
    tell the two apart (the one-step transplant against the Chainer updater differed by 2.8e-5 after one step before
    `eps_before_bias_correction`). Recomputed by hand over three steps, the third after a resume from the optimizer
    state."""
    torch.manual_seed(0)
    config = TGANv2Config(**TINY, beta1=0.5)  # beta1 > 0 so both bias corrections count
    lr, (b1, b2), eps = config.lr, (config.beta1, config.beta2), config.eps
    model = TGANv2(config, VideoSpec(3, 8, 16, 0)).double()
    params = list(model.generator.parameters())
    optimizer = model.configure_optimizers()[0]
    expected = [p.detach().clone() for p in params]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    for t in (1, 2, 3):
        if t == 3:  # resume: a fresh optimizer from the saved state must continue at t = 3
            state = optimizer.state_dict()
            optimizer = model.configure_optimizers()[0]
            optimizer.load_state_dict(state)
        for i, p in enumerate(params):
            g = torch.randn_like(p) * eps * 3
            p.grad = g.clone()
            m[i] += (1 - b1) * (g - m[i])
            v[i] += (1 - b2) * (g * g - v[i])
            alpha_t = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
            expected[i] -= alpha_t * m[i] / (v[i].sqrt() + eps)
        optimizer.step()
        for p, e in zip(params, expected):
            torch.testing.assert_close(p.detach(), e, rtol=1e-12, atol=1e-15)
