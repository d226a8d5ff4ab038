"""DVG's paper-specific checks on the tiny config: every loss term recomputed by hand in the official loop order,
the three-phase step, the trigger choosing the path, predict's contract, refusals."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.models.vid2vid_synthetic import one_thread
from zoo.errors import ZooError
from zoo.models.base import VideoSpec
from zoo.models.dvg import DVG, DVGConfig

SPEC = VideoSpec(channels=3, frames=5, resolution=16)


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    yield from one_thread()


def tiny(**overrides) -> DVG:
    torch.manual_seed(0)
    config = DVGConfig(g_dim=6, nf=4, rnn_size=8, rnn_layers=2, num_inducing=5, n_past=3, n_future=2, **overrides)
    return DVG(config, SPEC)


def clips(b=2, t=5, seed=1) -> torch.Tensor:
    return torch.rand(b, 3, t, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_networks_shapes():
    model = tiny()
    x = clips()[:, :, 0]
    h, skips = model.encoder(x)
    assert h.shape == (2, 6) and [s.shape[1:] for s in skips] == [(4, 8, 8), (8, 4, 4)]
    assert model.decoder(h, skips).shape == (2, 3, 16, 16)
    state = model.frame_predictor.initial_state(2, x)
    h_next, state = model.frame_predictor(h, state)
    assert h_next.shape == (2, 6) and len(state) == 2 and h_next.abs().max() < 1


def test_joint_losses_by_hand():
    """The official `train_model` loop written out: encoder called on x_{t-1} and x_t at every step, skips from
    x_{t-1} while t < n_past then held, weights 1000 / 0.001 / 0.01 / 0.001 / 0.0001."""
    model = tiny()
    video = clips()
    x = model.training_frames(video)
    terms = model.joint_losses(x)
    torch.manual_seed(0)
    state = model.frame_predictor.initial_state(2, x[0])
    ae = pred = latent = gp_recon = neg_elbo = 0
    for t in range(1, 5):
        h, skips = model.encoder(x[t - 1])
        if t < 3:
            skip = skips
        h_target = model.encoder(x[t])[0]
        h_pred, state = model.frame_predictor(h, state)
        latent += ((h_pred - h_target) ** 2).mean()
        f = model.gp.gp(h.T[:, :, None])  # (D, B, 1)
        neg_elbo += model.gp.neg_elbo(f, h_target)
        pred += ((model.decoder(h_pred, skip) - x[t]) ** 2).mean()
        ae += ((model.decoder(h_target, skip) - x[t]) ** 2).mean()
        gp_recon += ((model.decoder(f.mean.T, skip) - x[t]) ** 2).mean()
    for name, value in dict(ae=ae, pred=pred, latent=latent, gp_recon=gp_recon, neg_elbo=neg_elbo).items():
        torch.testing.assert_close(terms[name], value, rtol=1e-5, atol=1e-6, msg=name)
    total = 1000 * ae + 0.001 * pred + 0.01 * latent + 0.001 * gp_recon + 0.0001 * neg_elbo
    torch.testing.assert_close(terms["loss"], total, rtol=1e-5, atol=1e-5)


def test_finetune_losses_by_hand():
    model = tiny()
    x = model.training_frames(clips())
    h = [model.encoder(frame)[0].detach() for frame in x]
    state = model.frame_predictor.initial_state(2, x[0])
    latent = 0
    for t in range(1, 5):
        h_pred, state = model.frame_predictor(h[t - 1], state)
        latent += F.mse_loss(h_pred, h[t])
    torch.testing.assert_close(model.finetune_lstm_loss(x), latent)
    gp = sum(model.gp.neg_elbo(model.gp.latent(h[t - 1]), h[t]) for t in range(1, 5))
    torch.testing.assert_close(model.finetune_gp_loss(x), gp)


def test_gp_learning_rate_schedule():
    model = tiny()
    rates = []
    for step in (0, 599, 600, 1199, 1200, 5000):
        model.iteration = step
        rates.append(model.gp_learning_rate())
    assert rates == pytest.approx([2e-3, 2e-3, 2e-4, 2e-4, 2e-5, 2e-5])


def test_trigger_picks_the_path():
    """Threshold above every variance: the LSTM path, no randomness (all futures equal the deterministic one);
    threshold 0: every step draws from the GP, mean + std * eps, so different noise gives different futures."""
    model = tiny().eval()
    ctx = clips(t=3)
    with torch.no_grad():
        lstm_only = tiny(trigger_threshold=1e9).eval()
        frames, fired = lstm_only.rollout(ctx, 2, torch.randn(2, 2, 6))
        assert not fired.any()
        again, _ = lstm_only.rollout(ctx, 2, torch.randn(2, 2, 6))
        torch.testing.assert_close(frames, again, rtol=0, atol=0)
        # by hand: the LSTM's prediction decoded with the skips of the last context input x_{T_c - 2}
        state = model.frame_predictor.initial_state(2, ctx)
        for t in range(1, 3):
            h, skips = model.encoder(ctx[:, :, t - 1])
            _, state = model.frame_predictor(h, state)
        h, _ = model.encoder(ctx[:, :, 2])
        h_pred, _ = model.frame_predictor(h, state)
        torch.testing.assert_close(frames[:, :, 3], model.decoder(h_pred, skips), rtol=0, atol=1e-6)
        gp_always = tiny(trigger_threshold=0.0).eval()
        noise = torch.randn(2, 2, 6)
        frames, fired = gp_always.rollout(ctx, 2, noise)
        assert fired.all()
        mean, _, var = gp_always.gp.predictive(h)
        torch.testing.assert_close(frames[:, :, 3], model.decoder(mean + var.sqrt() * noise[0], skips), rtol=0,
                                   atol=1e-6)


def test_predict_contract():
    model = tiny(trigger_threshold=0.0)
    ctx = clips(t=3)
    out = model.predict(ctx, horizon=4, n=3, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 3, 7, 16, 16) and out.dtype == torch.float32
    assert out.min() >= -1 and out.max() <= 1
    for s in range(3):
        torch.testing.assert_close(out[:, s, :, :3], ctx, rtol=0, atol=0)  # the context as given
    assert not torch.equal(out[:, 0, :, 3:], out[:, 1, :, 3:]), "triggered futures must differ across samples"
    same = model.predict(ctx, horizon=4, n=3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, same, rtol=0, atol=0)
    assert not torch.equal(out, model.predict(ctx, 4, 3, generator=torch.Generator().manual_seed(1)))
    assert model.can_predict
    assert model.predict(clips(t=1), horizon=2).shape == (2, 1, 3, 3, 16, 16)  # a single context frame


def test_predict_leaves_modes_and_global_rng_alone():
    model = tiny()
    model.train()
    rng = torch.get_rng_state()
    model.predict(clips(t=3), 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), rng) and all(m.training for m in model.modules())


def test_training_step_runs_the_three_phases():
    """One step changes every network; without finetune, the LSTM moves less (one update instead of two)."""
    import pytorch_lightning as pl

    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loader = torch.utils.data.DataLoader([{"video": clips()}], batch_size=None)
    trainer = pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, loader)
    after = model.state_dict()
    for prefix in ("encoder.", "decoder.", "frame_predictor.", "gp."):
        assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith(prefix)), prefix


def test_refusals():
    model = tiny()
    with pytest.raises(ZooError, match="video-prediction model"):
        model.sample(2)
    with pytest.raises(ZooError, match=r"\[B, 3, T_c >= 1, 16, 16\]"):
        model.predict(torch.zeros(2, 1, 3, 16, 16), 2)
    with pytest.raises(ZooError, match="horizon"):
        model.predict(clips(t=3), 0)
    with pytest.raises(ValueError, match="n_past \\+ n_future"):
        DVG(DVGConfig(n_past=5, n_future=10), SPEC)
    with pytest.raises(ValueError, match="power-of-two"):
        DVG(DVGConfig(n_past=2, n_future=2), VideoSpec(frames=5, resolution=24))
