"""Video diffusion's schedule, samplers and loss wiring against the paper's formulas computed here in float64
(issue 19: mutation survivors). Ho et al. 2022, Sec. 2; Kingma et al. 2021 for the limited cosine log-SNR.
"""

import math

import pytest
import torch

from zoo.models.base import VideoSpec
from zoo.models.video_diffusion import VideoDiffusion, VideoDiffusionConfig
from zoo.models.video_diffusion import schedule as S

TINY = dict(base_channels=8, channel_mults=(1, 2), blocks_per_level=1, attention_resolutions=(8,), head_dim=8,
            emb_dim=32, emb_layers=2, norm_groups=4, sampling_steps=2)


def _log_snr_by_hand(t: float, lo: float = -20.0, hi: float = 20.0) -> float:
    b = math.atan(math.exp(-hi / 2))
    a = math.atan(math.exp(-lo / 2)) - b
    return -2 * math.log(math.tan(a * t + b))


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_limited_cosine_log_snr_and_its_inverse_by_hand():
    for lo, hi in [(-20.0, 20.0), (-10.0, 8.0)]:
        schedule = S.CosineLogSNR(lo, hi) if (lo, hi) != (-20.0, 20.0) else S.CosineLogSNR()
        ts = [0.0, 0.1, 0.37, 0.5, 0.9, 1.0]
        got = schedule.log_snr(torch.tensor(ts, dtype=torch.float64))
        for t, value in zip(ts, got.tolist()):
            assert value == pytest.approx(_log_snr_by_hand(t, lo, hi), rel=1e-12, abs=1e-9), (lo, hi, t)
        assert got[0].item() == pytest.approx(hi, abs=1e-9) and got[-1].item() == pytest.approx(lo, abs=1e-9)
        back = schedule.time(torch.tensor([_log_snr_by_hand(t, lo, hi) for t in ts], dtype=torch.float64))
        torch.testing.assert_close(back, torch.tensor(ts, dtype=torch.float64), rtol=0, atol=1e-12)
    single = S.CosineLogSNR().log_snr(torch.tensor([1e-4], dtype=torch.float32))
    assert single.dtype == torch.float32  # computed in float64, returned in the input's dtype
    assert single.item() == pytest.approx(_log_snr_by_hand(1e-4), rel=1e-6)
    assert S.CosineLogSNR().time(torch.tensor([0.0], dtype=torch.float32)).dtype == torch.float32


def test_alpha_sigma_and_the_parameterizations_by_hand():
    log_snr = torch.tensor([-3.0, 0.5], dtype=torch.float64)
    alpha, sigma = S.alpha_sigma(log_snr)
    for i, lam in enumerate(log_snr.tolist()):
        assert alpha[i].item() == pytest.approx(math.sqrt(_sig(lam)), rel=1e-12)
        assert sigma[i].item() == pytest.approx(math.sqrt(_sig(-lam)), rel=1e-12)
    x = torch.tensor([[0.2, -0.7], [0.9, 0.1]], dtype=torch.float64)
    eps = torch.tensor([[1.5, -0.3], [-1.1, 0.4]], dtype=torch.float64)
    a = alpha[:, None]
    s = sigma[:, None]
    z = a * x + s * eps
    v = a * eps - s * x
    torch.testing.assert_close(S.diffuse(x, eps, log_snr), z)
    torch.testing.assert_close(S.v_from_x_eps(x, eps, log_snr), v)
    torch.testing.assert_close(S.x_from_z_v(z, v, log_snr), a * z - s * v)
    torch.testing.assert_close(S.eps_from_z_v(z, v, log_snr), s * z + a * v)
    torch.testing.assert_close(S.x_from_z_eps(z, eps, log_snr), (z - s * eps) / a)
    torch.testing.assert_close(S.eps_from_z_x(z, x, log_snr), (z - a * x) / s)
    assert S.diffuse(x.float(), eps.float(), log_snr).dtype == torch.float32, "per-example factors take x's dtype"
    with pytest.raises(ValueError, match=r"^prediction must be one of \('eps', 'v'\), got 'x'$"):
        S.training_target(x, eps, log_snr, "x")
    with pytest.raises(ValueError, match=r"^prediction must be one of \('eps', 'v'\), got 'x'$"):
        S.predict_x(z, v, log_snr, "x")


def _ancestral_by_hand(z, x_hat, lt, ls, noise, gamma):
    at, st = math.sqrt(_sig(lt)), math.sqrt(_sig(-lt))
    as_, ss = math.sqrt(_sig(ls)), math.sqrt(_sig(-ls))
    r = math.exp(lt - ls)
    mean = r * as_ / at * z + (1 - r) * as_ * x_hat
    var = ((1 - r) * ss**2) ** (1 - gamma) * ((1 - r) * st**2) ** gamma
    return mean + math.sqrt(var) * noise


def test_ancestral_and_ddim_steps_by_hand():
    z = torch.tensor([[0.3, -1.2], [0.8, 0.05]], dtype=torch.float64)
    x_hat = torch.tensor([[0.5, -0.5], [-0.9, 0.2]], dtype=torch.float64)
    noise = torch.tensor([[1.0, -0.4], [0.7, 2.0]], dtype=torch.float64)
    lt, ls = torch.tensor([-2.0, 1.0], dtype=torch.float64), torch.tensor([0.5, 4.0], dtype=torch.float64)
    for gamma in (0.0, 0.1, 1.0):
        got = S.ancestral_step(z, x_hat, lt, ls, noise, gamma)
        for b in range(2):
            for k in range(2):
                expected = _ancestral_by_hand(z[b, k].item(), x_hat[b, k].item(), lt[b].item(), ls[b].item(),
                                              noise[b, k].item(), gamma)
                assert got[b, k].item() == pytest.approx(expected, rel=1e-10), (gamma, b, k)
    got = S.ddim_step(z, x_hat, lt, ls)
    for b in range(2):
        at, st = math.sqrt(_sig(lt[b].item())), math.sqrt(_sig(-lt[b].item()))
        as_, ss = math.sqrt(_sig(ls[b].item())), math.sqrt(_sig(-ls[b].item()))
        eps_hat = (z[b] - at * x_hat[b]) / st
        torch.testing.assert_close(got[b], as_ * x_hat[b] + ss * eps_hat)


class Denoiser:
    """A fixed, simple denoiser x_hat = 0.5 * tanh(z) + 0.01 lambda that records its calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, z, log_snr):
        self.calls.append((z.clone(), log_snr.clone()))
        return 0.5 * torch.tanh(z) + 0.01 * log_snr.view(-1, 1)


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_sample_loop_walks_uniform_times_from_one_to_zero(sampler):
    schedule = S.CosineLogSNR()
    z1 = torch.tensor([[0.4, -1.0, 2.0], [0.1, 0.3, -0.6]])
    noises = [torch.full_like(z1, 0.25 * (k + 1)) for k in range(3)]
    draws = iter(noises)
    denoise = Denoiser()
    out = S.sample_loop(denoise, z1, schedule, 3, sampler, gamma=0.3, noise=lambda: next(draws))
    lambdas = [_log_snr_by_hand(t) for t in (1.0, 2 / 3, 1 / 3, 0.0)]
    assert len(denoise.calls) == 3
    z = z1.double()
    for i, (z_seen, lam_seen) in enumerate(denoise.calls):
        assert lam_seen.shape == (2,) and lam_seen.dtype == torch.float32
        assert lam_seen.tolist() == pytest.approx([lambdas[i]] * 2, rel=1e-6)
        torch.testing.assert_close(z_seen.double(), z, rtol=1e-5, atol=1e-5)
        x_hat = 0.5 * torch.tanh(z) + 0.01 * lambdas[i]
        if i == 2:
            torch.testing.assert_close(out.double(), x_hat, rtol=1e-5, atol=1e-5)  # x_hat of the last step
            break
        if sampler == "ddim":
            expected = S.ddim_step(z, x_hat, torch.tensor([lambdas[i]] * 2, dtype=torch.float64),
                                   torch.tensor([lambdas[i + 1]] * 2, dtype=torch.float64))
        else:
            expected = torch.tensor([[_ancestral_by_hand(z[b, k].item(), x_hat[b, k].item(), lambdas[i],
                                                         lambdas[i + 1], noises[i][b, k].item(), 0.3)
                                      for k in range(3)] for b in range(2)], dtype=torch.float64)
        z = expected
    assert sampler == "ddim" or next(draws) is noises[2], "one fresh noise per step but the last"


def test_sample_loop_defaults_and_argument_errors():
    z1 = torch.tensor([[0.4, -1.0]])
    default, explicit = Denoiser(), Denoiser()
    draws_a, draws_b = iter([torch.full_like(z1, 0.5)]), iter([torch.full_like(z1, 0.5)])
    a = S.sample_loop(default, z1, S.CosineLogSNR(), 2, noise=lambda: next(draws_a))
    b = S.sample_loop(explicit, z1, S.CosineLogSNR(), 2, "ancestral", 0.1, noise=lambda: next(draws_b))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(default.calls[1][0], explicit.calls[1][0], rtol=0, atol=0)
    one = Denoiser()
    S.sample_loop(one, z1, S.CosineLogSNR(), 1, "ddim")
    assert len(one.calls) == 1 and one.calls[0][1].item() == pytest.approx(-20.0)
    with pytest.raises(ValueError, match=r"^sampling steps must be >= 1, got 0$"):
        S.sample_loop(Denoiser(), z1, S.CosineLogSNR(), 0, "ddim")
    with pytest.raises(ValueError, match=r"^sampler must be one of \('ancestral', 'ddim'\), got 'euler'$"):
        S.sample_loop(Denoiser(), z1, S.CosineLogSNR(), 2, "euler")
    with pytest.raises(ValueError, match=r"^the ancestral sampler needs a noise source$"):
        S.sample_loop(Denoiser(), z1, S.CosineLogSNR(), 2, "ancestral")


# -- the training loss --------------------------------------------------------------------------------------------


def _model(num_classes=0, **overrides):
    torch.manual_seed(0)
    model = VideoDiffusion(VideoDiffusionConfig(**{**TINY, **overrides}), VideoSpec(3, 4, 16, num_classes))
    for p in model.unet.parameters():  # undo the zero initialisations so the output depends on every input
        if p.dim() > 1:
            torch.nn.init.normal_(p, std=0.2)
    return model.eval()


@pytest.mark.parametrize("prediction", ["v", "eps"])
def test_diffusion_loss_is_the_mse_to_the_target_at_uniform_times(prediction):
    model = _model(prediction=prediction, logsnr_min=-12.0, logsnr_max=9.0)
    x = torch.rand(2, 3, 6, 16, 16) * 2 - 1  # 4 video frames + 2 image frames
    torch.manual_seed(5)
    loss = model.diffusion_loss(x, None, 4)
    torch.manual_seed(5)  # the same draws, by hand: t ~ U(0, 1) per clip, then eps
    t = torch.rand(2)
    eps = torch.randn(x.shape)
    lam = torch.tensor([_log_snr_by_hand(v, -12.0, 9.0) for v in t.tolist()])
    alpha, sigma = lam.sigmoid().sqrt().view(-1, 1, 1, 1, 1), (-lam).sigmoid().sqrt().view(-1, 1, 1, 1, 1)
    z = alpha * x + sigma * eps
    with torch.no_grad():
        out = model.unet(z, t, None, video_frames=4)  # the network is told the time t, not the log-SNR
    target = eps if prediction == "eps" else alpha * eps - sigma * x
    assert loss.item() == pytest.approx(((out - target) ** 2).mean().item(), rel=1e-4)
    with torch.no_grad():
        other = model.unet(z, t, None, video_frames=6)
    assert ((other - target) ** 2).mean().item() != pytest.approx(loss.item(), rel=1e-4), "the mask matters here"


def test_joint_clip_and_training_labels():
    video, images = torch.zeros(2, 3, 4, 16, 16), torch.ones(2, 3, 2, 16, 16, dtype=torch.float64)
    x, frames = VideoDiffusion.joint_clip({"video": video, "image_frames": images})
    assert frames == 4 and x.shape == (2, 3, 6, 16, 16) and x.dtype == torch.float32
    assert x[:, :, :4].eq(0).all() and x[:, :, 4:].eq(1).all()
    alone, frames = VideoDiffusion.joint_clip({"video": video})
    assert alone is video and frames == 4
    assert _model().training_labels({"label": torch.tensor([1, 2])}) is None
    labels = torch.tensor([0, -1, 3, 8])
    kept = _model(num_classes=9, class_conditional=True, p_uncond=0.0).training_labels({"label": labels})
    assert kept.tolist() == [0, 9, 3, 8] and labels.tolist() == [0, -1, 3, 8], "unlabelled -> null, input untouched"
    dropped = _model(num_classes=9, class_conditional=True, p_uncond=1.0).training_labels({"label": labels})
    assert dropped.tolist() == [9, 9, 9, 9]
    torch.manual_seed(0)
    half = _model(num_classes=9, class_conditional=True, p_uncond=0.5)
    drawn = half.training_labels({"label": torch.zeros(2000, dtype=torch.long)})
    assert 0.45 < (drawn == 9).float().mean().item() < 0.55


def test_classifier_free_guidance_by_hand():
    model = _model(num_classes=5, class_conditional=True, guidance_weight=1.5, prediction="v")
    z = torch.randn(2, 3, 4, 16, 16)
    lam = torch.tensor([-1.0, 2.0])
    labels = torch.tensor([1, 3])
    t = S.CosineLogSNR().time(lam)
    with torch.no_grad():
        cond = model.unet(z, t, labels)
        uncond = model.unet(z, t, torch.tensor([5, 5]))
        got = model.predict_clean(model.unet, z, lam, labels)
    v = 2.5 * cond - 1.5 * uncond
    alpha, sigma = lam.sigmoid().sqrt().view(-1, 1, 1, 1, 1), (-lam).sigmoid().sqrt().view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(got, alpha * z - sigma * v, rtol=1e-4, atol=1e-4)
    plain = _model(num_classes=5, class_conditional=True, guidance_weight=0.0, prediction="eps")
    with torch.no_grad():
        eps = plain.unet(z, t, labels)
        torch.testing.assert_close(plain.predict_clean(plain.unet, z, lam, labels), (z - sigma * eps) / alpha,
                                   rtol=1e-4, atol=1e-4)


def test_guidance_applies_only_to_class_conditional_models_for_every_nonzero_weight():
    z = torch.randn(3, 3, 4, 16, 16)  # 3 clips: the guided batch holds 6
    lam = torch.tensor([-1.0, 0.5, 2.0])
    t = S.CosineLogSNR().time(lam)
    alpha, sigma = lam.sigmoid().sqrt().view(-1, 1, 1, 1, 1), (-lam).sigmoid().sqrt().view(-1, 1, 1, 1, 1)
    one = _model(num_classes=5, class_conditional=True, guidance_weight=1.0, prediction="v")
    labels = torch.tensor([0, 4, 2])
    with torch.no_grad():
        v = 2.0 * one.unet(z, t, labels) - one.unet(z, t, torch.full((3,), 5))
        torch.testing.assert_close(one.predict_clean(one.unet, z, lam, labels), alpha * z - sigma * v,
                                   rtol=1e-4, atol=1e-4)
    unconditional = _model(guidance_weight=2.0, prediction="v")  # nothing to guide with: the plain prediction
    with torch.no_grad():
        v = unconditional.unet(z, t, None)
        torch.testing.assert_close(unconditional.predict_clean(unconditional.unet, z, lam, None),
                                   alpha * z - sigma * v, rtol=1e-4, atol=1e-4)


def test_training_step_conditions_on_the_batch_labels():
    model = _model(num_classes=5, class_conditional=True, p_uncond=0.0)
    batch = {"video": torch.rand(2, 3, 4, 16, 16) * 2 - 1, "label": torch.tensor([1, 3])}
    torch.manual_seed(7)
    with pytest.warns(Warning):  # self.log outside a Trainer warns; the step itself is the real one
        loss = model.training_step(batch, 0)
    torch.manual_seed(7)
    torch.rand(2)  # the step first draws which labels to drop (none, with p_uncond = 0)
    expected = model.diffusion_loss(batch["video"], torch.tensor([1, 3]), 4)
    torch.manual_seed(7)
    torch.rand(2)
    unlabelled = model.diffusion_loss(batch["video"], torch.tensor([5, 5]), 4)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert unlabelled.item() != pytest.approx(expected.item(), rel=1e-4)
    torch.manual_seed(7)  # diffusion_loss hands the labels to the network (by hand: the same draws, then the U-Net)
    torch.rand(2)
    t = torch.rand(2)
    eps = torch.randn(batch["video"].shape)
    lam = S.CosineLogSNR().log_snr(t)
    alpha, sigma = lam.sigmoid().sqrt().view(-1, 1, 1, 1, 1), (-lam).sigmoid().sqrt().view(-1, 1, 1, 1, 1)
    with torch.no_grad():
        out = model.unet(alpha * batch["video"] + sigma * eps, t, torch.tensor([1, 3]), video_frames=4)
    target = alpha * eps - sigma * batch["video"]
    assert expected.item() == pytest.approx(((out - target) ** 2).mean().item(), rel=1e-4)


def test_a_training_step_logs_the_loss_on_the_progress_bar(tmp_path):
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    model = _model()
    model.train()
    clips = [{"video": torch.rand(3, 4, 16, 16) * 2 - 1} for _ in range(2)]
    trainer = pl.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_model_summary=False, enable_progress_bar=False, default_root_dir=tmp_path)
    trainer.fit(model, DataLoader(clips, batch_size=2))
    assert "train/loss" in trainer.callback_metrics and "train/loss" in trainer.progress_bar_metrics
