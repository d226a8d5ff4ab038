"""StyleGAN-V's training step as the official loop runs it (universome/stylegan-v `src/training/loss.py`,
`training_loop.py`): the lazy R1 phase touches every discriminator parameter, so Adam's state advances for all of them.

A one-step float64 transplant against the official loop (docs/models/stylegan_v.md) found the zoo's losses, gradients,
Adam settings and EMA equal to ~1e-14, except one thing: the official R1 objective is
`(D_out_real["image_logits"] * 0 + loss_Dr1).mean().mul(gain)` (loss.py:173), so parameters the input gradient does not
depend on (D's output bias) get a zero gradient and Adam steps them: its step count and second moments move on at
every R1 phase. Recomputed here by hand from Adam's update rule, no official code.
"""

from __future__ import annotations

import math

import torch

from zoo.models.base import VideoSpec
from zoo.models.stylegan_v import StyleGANV, StyleGANVConfig

torch.set_num_threads(1)

TINY = dict(z_dim=16, w_dim=16, channel_base=256, channel_max=32, motion_z_dim=16, motion_v_dim=16, motion_kernel=3,
            motion_z_distance=4, time_enc_dim=8, min_period=4, max_period=64, max_num_frames=64,
            time_gap_embed_dim=8, sample_frames=8, max_distance=8, augment=False)


def model_and_batch():
    torch.manual_seed(0)
    model = StyleGANV(StyleGANVConfig(**TINY), VideoSpec(3, 3, 32, 0)).double()
    model.randn = lambda *shape, generator=None: torch.randn(*shape, dtype=torch.float64)  # float64 noise too
    fake_times = model.fake_times
    model.fake_times = lambda *args: fake_times(*args).double()
    batch = {"video": torch.rand(4, 3, 3, 32, 32, dtype=torch.float64) * 2 - 1,
             "times": torch.tensor([[0.0, 1.0, 2.0], [3.0, 5.0, 7.0], [1.0, 4.0, 9.0], [0.0, 2.0, 8.0]])}
    return model, batch


def test_r1_phase_gives_every_discriminator_parameter_a_gradient():
    """Official loss.py:173 adds `image_logits * 0`: the output bias, which the penalty cannot reach, gets an exact
    zero gradient instead of none."""
    model, batch = model_and_batch()
    loss, logs = model.r1_loss(batch)
    model.discriminator.zero_grad(set_to_none=True)
    loss.backward()
    missing = [name for name, p in model.discriminator.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}: Adam would skip them at the R1 step"
    assert model.discriminator.out.bias.grad.abs().max() == 0
    c = model.config
    torch.testing.assert_close(loss, logs["r1"] * c.r1_gamma / 2 * c.r1_interval)  # the value is unchanged


def test_adam_steps_the_output_bias_at_the_r1_phase_too():
    """Dmain, Dreg (R1), Dmain with the zoo's D optimizer: D's output bias follows Adam (beta1 = 0) with three steps,
    the middle one with a zero gradient: v = b2^2 (1 - b2) g1^2 + (1 - b2) g3^2, bias-corrected by 1 - b2^3."""
    model, batch = model_and_batch()
    _, d_opt = model.configure_optimizers()
    (lr,), ((b1, b2),) = [g["lr"] for g in d_opt.param_groups], [g["betas"] for g in d_opt.param_groups]
    assert b1 == 0 and math.isclose(lr, 0.0025 * 16 / 17) and math.isclose(b2, 0.99 ** (16 / 17))
    bias = model.discriminator.out.bias
    start = bias.detach().clone()
    grads = []
    for phase in ("main", "r1", "main"):
        loss, _ = model.discriminator_loss(batch, 0) if phase == "main" else model.r1_loss(batch)
        d_opt.zero_grad(set_to_none=True)
        loss.backward()
        grads.append(bias.grad.detach().clone() if bias.grad is not None else None)
        d_opt.step()
    g1, g3 = grads[0], grads[2]
    step1 = lr * g1 / (g1.abs() + 1e-8)  # m_hat = g1, v_hat = g1^2
    v3 = b2 * b2 * (1 - b2) * g1.square() + (1 - b2) * g3.square()
    step3 = lr * g3 / ((v3 / (1 - b2**3)).sqrt() + 1e-8)
    torch.testing.assert_close(bias.detach(), start - step1 - step3, rtol=0, atol=1e-12)
    assert all(d_opt.state[p]["step"] == 3 for p in model.discriminator.parameters())
