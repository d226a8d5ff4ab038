"""StyleGAN-V's values against their closed forms, computed here by hand: the acyclic positional encoding (Sec. 3.1),
the G EMA half-life schedule with its ramp-up, ADA's adjustment of p, the lazy-regularization compensation of the
optimizers, and the non-saturating D and G losses from the network outputs (StyleGAN2-ADA's `training_loop.py` and
`loss.py`, as the official `universome/stylegan-v` runs them)."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from zoo.models.base import VideoSpec
from zoo.models.stylegan_v import AlignedTimeEncoder, StyleGANV, StyleGANVConfig

torch.set_num_threads(1)

TINY = dict(z_dim=8, w_dim=8, mapping_layers=1, channel_base=128, channel_max=8, motion_z_dim=4, motion_v_dim=4,
            motion_kernel=3, motion_z_distance=4, time_enc_dim=3, min_period=4, max_period=64, max_num_frames=16,
            time_gap_embed_dim=4, d_mapping_layers=1, sample_frames=4, max_distance=8)


def tiny_model(dtype=torch.float64, **changes) -> StyleGANV:
    torch.manual_seed(0)
    return StyleGANV(StyleGANVConfig(**{**TINY, **changes}), VideoSpec(3, 3, 32, 0)).to(dtype)


def attach_trainer(model: StyleGANV) -> None:
    """A real single-process Trainer: `update_generator_ema` reads `trainer.world_size`."""
    model.trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                               enable_progress_bar=False, enable_model_summary=False)


# -- the acyclic positional encoding ----------------------------------------------------------------------------------


def sinusoids(time: float, periods: list[float], scales: list[float], shifts: list[float]) -> torch.Tensor:
    """[sin(2 pi s_i t / P_i + phi_i)]_i ++ [cos(...)]_i, in float64."""
    raw = torch.tensor([2 * math.pi * s * time / p + phi for p, s, phi in zip(periods, scales, shifts)],
                       dtype=torch.float64)
    return torch.cat([raw.sin(), raw.cos()])


def test_positional_encoding_values_follow_the_papers_formula():
    """With min period 4, max 64 and 3 sinusoids the periods are 4, 16, 64 (log-linearly spaced); the code predicts
    scale = tanh(W_p u) + 1 and phase = (W_phi u) * 64 / P from the left motion code u_l, and between the steps
    t_l = 8 and t_r = 12 v(t) = pe(t) - lerp(pe(t_l), pe(t_r), a) + lerp(al(u_l), al(u_r), a)."""
    encoder = AlignedTimeEncoder(motion_dim=2, dim=3, min_period=4, max_period=64).double()
    with torch.no_grad():
        encoder.periods.weight.copy_(torch.tensor([[0.3, 0.0], [0.0, -0.5], [0.2, 0.2]]))
        encoder.phases.weight.copy_(torch.tensor([[0.1, 0.0], [0.0, 0.2], [-0.3, 0.1]]))
        encoder.aligners.weight.copy_(torch.arange(12, dtype=torch.float64).reshape(6, 2) / 10)
    u_left, u_right = torch.tensor([[1.0, 2.0]], dtype=torch.float64), torch.tensor([[-1.0, 0.5]], dtype=torch.float64)
    periods = [64.0, 16.0, 4.0]  # the code orders the sinusoids by increasing frequency
    w_p, w_phi, w_al = (layer(u_left)[0].tolist() for layer in (encoder.periods, encoder.phases, encoder.aligners))
    scales = [math.tanh(x) + 1 for x in w_p]
    shifts = [x * 64 / p for x, p in zip(w_phi, periods)]
    aligned_right = encoder.aligners(u_right)[0]
    for t in (8.0, 9.0, 10.5, 11.75):
        a = (t - 8) / 4
        expected = (sinusoids(t, periods, scales, shifts)
                    - ((1 - a) * sinusoids(8, periods, scales, shifts) + a * sinusoids(12, periods, scales, shifts))
                    + (1 - a) * torch.tensor(w_al, dtype=torch.float64) + a * aligned_right)
        got = encoder(torch.tensor([t], dtype=torch.float64), torch.tensor([8.0], dtype=torch.float64),
                      torch.tensor([12.0], dtype=torch.float64), u_left, u_right,
                      torch.tensor([[a]], dtype=torch.float64))[0]
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)  # frequencies stored in float32 (official)


def test_positional_encoding_without_predicted_modulation_is_the_plain_sinusoids():
    """Zero weights: scale 1, phase 0, no aligner, so v(t) = sin/cos(2 pi t / P) minus their chord between the steps;
    written out for P = 4, 16, 64 at t = 1 (t_l = 0, t_r = 4, a = 1/4)."""
    encoder = AlignedTimeEncoder(motion_dim=2, dim=3, min_period=4, max_period=64).double()
    for layer in (encoder.periods, encoder.phases, encoder.aligners):
        torch.nn.init.zeros_(layer.weight)
    u = torch.zeros(1, 2, dtype=torch.float64)
    got = encoder(torch.tensor([1.0], dtype=torch.float64), torch.tensor([0.0], dtype=torch.float64),
                  torch.tensor([4.0], dtype=torch.float64), u, u, torch.tensor([[0.25]], dtype=torch.float64))[0]
    angles = [2 * math.pi / 64, 2 * math.pi / 16, 2 * math.pi / 4]  # t = 1
    chord = [0.75 * 0 + 0.25 * math.sin(4 * w) for w in angles], [0.75 * 1 + 0.25 * math.cos(4 * w) for w in angles]
    expected = [math.sin(w) - c for w, c in zip(angles, chord[0])] + [math.cos(w) - c for w, c in zip(angles, chord[1])]
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-6)


# -- G EMA: StyleGAN2-ADA's half-life schedule with ramp-up -----------------------------------------------------------


def ema_beta(config: StyleGANVConfig, iteration: int, batch: int, frames: int) -> float:
    """beta = 0.5 ** (batch / half-life); half-life = ema_kimg * 1000, ramped up to at most ema_rampup times the
    images seen so far, counted as the official training loop counts `cur_nimg`: before the step's increment and in
    frames, iteration * batch * frames."""
    half_life = config.ema_kimg * 1000
    if config.ema_rampup:
        half_life = min(half_life, iteration * batch * frames * config.ema_rampup)
    return 0.5 ** (batch / max(half_life, 1e-8))


@pytest.mark.parametrize("iteration, expect_ramp", [(3, True), (999, False)])
def test_generator_ema_lerps_towards_the_weights_with_the_half_life_beta(iteration, expect_ramp):
    """ema_kimg 0.1 (a 100-image half-life), ramp-up 0.05, batch 8 of 3-frame clips: at step 3 the ramp-up gives a
    3 * 8 * 3 * 0.05 = 3.6-image half-life (beta = 0.5^(8/3.6)); at step 999 the configured one (beta = 0.5^0.08)."""
    model = tiny_model(ema_kimg=0.1, ema_rampup=0.05, augment=False)
    assert model.spec.frames == 3
    attach_trainer(model)
    model.iteration, model.batch_size = iteration, 8
    with torch.no_grad():
        for p in model.generator.parameters():
            p.add_(torch.randn_like(p))
    before = [p.detach().clone() for p in model.generator_ema.module.parameters()]
    weights = [p.detach().clone() for p in model.generator.parameters()]
    model.update_generator_ema()
    beta = ema_beta(model.config, iteration, 8, model.spec.frames)
    assert (beta == pytest.approx(0.5 ** (8 / 3.6))) if expect_ramp else (beta == pytest.approx(0.5 ** (8 / 100)))
    after = list(model.generator_ema.module.parameters())
    assert any(not torch.equal(b, w) for b, w in zip(before, weights)), "EMA and G must differ before the update"
    for b, w, a in zip(before, weights, after):
        torch.testing.assert_close(a.detach(), beta * b + (1 - beta) * w, rtol=1e-12, atol=1e-12)


def test_generator_ema_without_ramp_up_uses_the_configured_half_life_from_step_0():
    model = tiny_model(ema_kimg=0.02, ema_rampup=0.0, augment=False)
    attach_trainer(model)
    model.iteration, model.batch_size = 0, 4
    with torch.no_grad():
        for p in model.generator.parameters():
            p.add_(1.0)
    before = [p.detach().clone() for p in model.generator_ema.module.parameters()]
    model.update_generator_ema()
    beta = 0.5 ** (4 / 20)
    for b, w, a in zip(before, model.generator.parameters(), model.generator_ema.module.parameters()):
        torch.testing.assert_close(a, beta * b + (1 - beta) * w, rtol=1e-12, atol=1e-12)


# -- ADA: p moves by sign(E[sign D(real)] - target) * batch * interval / (ada_kimg * 1000) -----------------------------


@pytest.mark.parametrize("signs, start, expected_p", [
    ((6.0, 8.0), 0.1, 0.1 + 8 * 4 / 500),   # E[sign] = 0.75 > 0.6: more augmentation
    ((2.0, 8.0), 0.1, 0.1 - 8 * 4 / 500),   # 0.25 < 0.6: less
    ((-8.0, 8.0), 0.01, 0.0),               # never below 0
])
def test_ada_adjusts_p_every_interval_by_the_closed_form(signs, start, expected_p):
    model = tiny_model(ada_target=0.6, ada_interval=4, ada_kimg=0.5)
    attach_trainer(model)
    model.batch_size = 8
    model.augment.p.fill_(start)
    model.ada_signs.copy_(torch.tensor(signs))
    model.iteration = 1  # (1 + 1) % 4 != 0: no adjustment, the statistics keep accumulating
    model.update_generator_ema()
    assert float(model.augment.p) == pytest.approx(start) and model.ada_signs.tolist() == list(signs)
    model.iteration = 3  # the 4th step: adjust, then reset the statistics
    model.update_generator_ema()
    assert float(model.augment.p) == pytest.approx(expected_p, abs=1e-9)
    assert model.ada_signs.tolist() == [0.0, 0.0]


# -- lazy regularization: lr and betas compensated by interval / (interval + 1) --------------------------------------


def test_optimizers_are_compensated_for_lazy_regularization():
    """StyleGAN2 Appendix B: lr * c and beta ** c with c = 4/5 for G (g_reg_interval 4), 16/17 for D (r1 16)."""
    model = tiny_model(lr=0.0025, beta1=0.5, beta2=0.99, g_reg_interval=4, r1_interval=16)
    g, d = model.configure_optimizers()
    for optimizer, c in ((g, 4 / 5), (d, 16 / 17)):
        group = optimizer.param_groups[0]
        assert group["lr"] == pytest.approx(0.0025 * c)
        assert group["betas"] == pytest.approx((0.5**c, 0.99**c))
    assert {id(p) for p in g.param_groups[0]["params"]} == {id(p) for p in model.generator.parameters()}


# -- the discriminator's readout: projection on the time-gap conditioning ---------------------------------------------


def test_discriminator_output_is_the_scaled_projection_on_the_time_gap_code():
    """Official `DiscriminatorEpilogue` with a mapping: (out(x) * cmap).sum(1) / sqrt(cmap_dim)."""
    model = tiny_model(mbstd_group_size=1)
    d = model.discriminator
    video = torch.rand(2, 3, 3, 32, 32, dtype=torch.float64) * 2 - 1
    times = torch.tensor([[0.0, 2.0, 4.0], [1.0, 2.0, 9.0]], dtype=torch.float64)
    outputs = []
    hook = d.out.register_forward_hook(lambda module, inputs, out: outputs.append(out))
    logits = d(video, times)
    hook.remove()
    cmap = d.mapping(None, d.time_gaps(times))
    assert cmap.shape == outputs[0].shape and cmap.shape[1] > 1
    expected = (outputs[0] * cmap).sum(dim=1) / math.sqrt(cmap.shape[1])
    torch.testing.assert_close(logits, expected, rtol=1e-12, atol=1e-12)


# -- the non-saturating losses from the network outputs ----------------------------------------------------------------


def batch_of() -> dict:
    """Four sparse real clips; the model draws its noise in float32, so the loss tests run in float32."""
    torch.manual_seed(1)
    video = torch.rand(4, 3, 3, 32, 32) * 2 - 1
    times = torch.tensor([[0.0, 1.0, 2.0], [0.0, 2.0, 4.0], [1.0, 3.0, 5.0], [0.0, 4.0, 8.0]])
    return {"video": video, "times": times, "video_length": torch.tensor([16, 16, 16, 16]),
            "label": torch.zeros(4, dtype=torch.long)}


def test_discriminator_loss_is_softplus_of_minus_real_plus_softplus_of_fake():
    """-log sigmoid(D(x)) - log(1 - sigmoid(D(G(z)))) = softplus(-D(x)) + softplus(D(G(z))), batch means; the ADA
    statistics gain sum(sign D(x)) and the clip count."""
    model = tiny_model(torch.float32, augment=False)
    batch = batch_of()
    torch.manual_seed(5)
    loss, logs = model.discriminator_loss(batch, 0)
    torch.manual_seed(5)  # the same draws: fake times, content and motion noise
    fake, fake_t = model.generate(batch)
    real_logits = model.discriminator(batch["video"], batch["times"])
    fake_logits = model.discriminator(fake, fake_t)
    expected = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(logs["d_loss"], expected, rtol=1e-6, atol=1e-7)
    assert model.ada_signs.tolist() == [float(real_logits.detach().sign().sum()), 4.0]


def test_generator_loss_is_softplus_of_minus_fake():
    model = tiny_model(torch.float32, augment=False)
    batch = batch_of()
    torch.manual_seed(6)
    loss, _ = model.generator_loss(batch)
    torch.manual_seed(6)
    fake, fake_t = model.generate(batch)
    expected = F.softplus(-model.discriminator(fake, fake_t)).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-7)
