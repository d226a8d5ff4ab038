"""Video diffusion (Ho et al. 2022): the model contract, the network's factorization, the schedule, the samplers,
reconstruction guidance, and (slow) a learning check on `shapes`."""

import dataclasses
import math

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from tests.models.contract import ModelContract
from tests.models.distances import fvd_shapes_distance
from zoo.models.base import VideoSpec
from zoo.models.video_diffusion import VideoDiffusion, VideoDiffusionConfig
from zoo.models.video_diffusion import schedule as S
from zoo.models.video_diffusion.unet3d import RelativePositionBias, SpatialAttention, TemporalAttention, UNet3D

TINY = dict(
    base_channels=8, channel_mults=(1, 2), blocks_per_level=1, attention_resolutions=(8,), head_dim=8, emb_dim=32,
    emb_layers=2, norm_groups=4, sampling_steps=2,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see tests/conftest.py


def tiny_model(frames=8, resolution=16, num_classes=0, **overrides) -> VideoDiffusion:
    torch.manual_seed(0)
    return VideoDiffusion(VideoDiffusionConfig(**{**TINY, **overrides}), VideoSpec(3, frames, resolution, num_classes))


def randomize(net: nn.Module) -> nn.Module:
    """Undo the zero initializations (residual outputs, position biases) so every path of the network is live."""
    torch.manual_seed(1)
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.reset_parameters()
        if isinstance(m, RelativePositionBias):
            nn.init.normal_(m.table.weight)
    return net.eval()


class TestVideoDiffusion(ModelContract):
    model_key = "video_diffusion"

    def check_forward(self, model, batch):
        video = batch["video"]
        b, c, t, h, w = video.shape
        assert batch["image_frames"].shape == (b, c, 2, h, w), "tiny.yaml trains jointly on 2 image frames"
        x, video_frames = model.joint_clip(batch)
        assert x.shape == (b, c, t + 2, h, w) and video_frames == t
        out = model.unet(x, torch.rand(b), video_frames=video_frames)
        assert out.shape == x.shape
        loss = model.diffusion_loss(x, model.training_labels(batch), video_frames)
        assert loss.ndim == 0 and torch.isfinite(loss)


# -- the network -------------------------------------------------------------------------------------------------


def test_temporal_mask_isolates_appended_image_frames():
    """Joint training (Sec. 3.2): an appended image frame's output depends on that frame alone (gradient exactly
    zero w.r.t. every other frame), while a video frame's output depends on its neighbours but on no image frame."""
    net = randomize(UNet3D(3, 8, (1, 2), 1, (8, 16), resolution=16, head_dim=8, emb_dim=32, emb_layers=2, groups=4))
    video_frames, images = 5, 3
    x = torch.randn(1, 3, video_frames + images, 16, 16, requires_grad=True)
    level = torch.rand(1)

    def grad_per_frame(frame: int) -> torch.Tensor:
        (grad,) = torch.autograd.grad(net(x, level, video_frames=video_frames)[:, :, frame].square().sum(), x)
        return grad.abs().sum(dim=(0, 1, 3, 4))  # (T,)

    for frame in range(video_frames, video_frames + images):
        g = grad_per_frame(frame)
        others = [k for k in range(video_frames + images) if k != frame]
        assert torch.all(g[others] == 0), f"image frame {frame} sees other frames: {g.tolist()}"
        assert g[frame] > 0
    g = grad_per_frame(2)
    assert torch.all(g[:video_frames] > 0), f"a video frame must depend on every video frame: {g.tolist()}"
    assert torch.all(g[video_frames:] == 0), "a video frame must not see the appended images"
    # without the mask the same frames do mix: the test above is not vacuous
    (grad,) = torch.autograd.grad(net(x, level)[:, :, video_frames].square().sum(), x)
    assert grad[:, :, :video_frames].abs().sum() > 0


def test_relative_positions_are_shift_invariant():
    torch.manual_seed(0)
    attention = randomize(TemporalAttention(16, head_dim=8, groups=4, max_distance=32))
    x = torch.randn(2 * 6, 16, 4, 4)  # (B*T, C, H, W): the U-Net holds frames in the batch axis
    base = torch.arange(6)
    pattern = attention.attention_bias(base, None)
    torch.testing.assert_close(attention.attention_bias(base + 7, None), pattern, rtol=0, atol=0)
    torch.testing.assert_close(attention(x, base + 7), attention(x, base), rtol=0, atol=0)
    assert not torch.allclose(attention(x, 2 * base), attention(x, base)), "positions must matter"
    # the whole network: only differences of frame times matter
    net = randomize(UNet3D(3, 8, (1, 2), 1, (8,), resolution=16, head_dim=8, emb_dim=32, emb_layers=2, groups=4))
    z, level = torch.randn(1, 3, 6, 16, 16), torch.rand(1)
    torch.testing.assert_close(net(z, level, positions=base + 100), net(z, level, positions=base))


def test_paper_defaults_build_the_paper_network():
    config = VideoDiffusionConfig()
    assert (config.base_channels, config.channel_mults, config.blocks_per_level) == (256, (1, 2, 4, 8), 2)
    assert (config.attention_resolutions, config.head_dim, config.dropout) == ((8, 16, 32), 64, 0.1)
    assert (config.lr, config.beta1, config.beta2, config.ema_decay) == (3e-4, 0.9, 0.99, 0.9999)
    assert (config.prediction, config.gamma, config.logsnr_min, config.logsnr_max) == ("v", 0.1, -20.0, 20.0)
    with torch.device("meta"):  # shapes only: the full-size network is ~1B parameters
        net = UNet3D(3, resolution=64)
    attention = [m for m in net.modules() if isinstance(m, TemporalAttention)]
    # levels 64/32/16/8: attention at 32, 16, 8 (2 blocks down + 3 up each) and once in the middle
    assert len(attention) == 3 * (2 + 3) + 1
    assert {m.heads for m in attention} == {512 // 64, 1024 // 64, 2048 // 64}
    # every convolution acts within a frame (1x3x3 or 1x1x1 as 2-D convolutions over (B*T, C, H, W)): only temporal
    # attention mixes frames
    assert not any(isinstance(m, nn.Conv3d) for m in net.modules())
    assert {m.kernel_size for m in net.modules() if isinstance(m, nn.Conv2d)} == {(3, 3), (1, 1)}


# -- the schedule --------------------------------------------------------------------------------------------------


def test_schedule_identities():
    schedule = S.CosineLogSNR()
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    log_snr = schedule.log_snr(t)
    assert log_snr[0] == pytest.approx(20.0) and log_snr[-1] == pytest.approx(-20.0)
    assert torch.all(log_snr[1:] < log_snr[:-1]), "log-SNR must fall strictly with t"
    torch.testing.assert_close(schedule.time(log_snr), t)
    # the unclipped cosine schedule -2 log tan(pi t / 2) away from the limits
    middle = torch.tensor([0.3, 0.5, 0.7], dtype=torch.float64)
    torch.testing.assert_close(schedule.log_snr(middle), -2 * torch.log(torch.tan(math.pi * middle / 2)), atol=1e-3,
                               rtol=0)
    alpha, sigma = S.alpha_sigma(log_snr)
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(alpha))
    torch.testing.assert_close(torch.log(alpha**2 / sigma**2)[1:-1], log_snr[1:-1])


def test_parameterizations_round_trip():
    torch.manual_seed(0)
    x, eps = torch.rand(5, 3, 2, 4, 4) * 2 - 1, torch.randn(5, 3, 2, 4, 4)
    log_snr = torch.tensor([-8.0, -2.0, 0.0, 3.0, 12.0])
    z = S.diffuse(x, eps, log_snr)
    v = S.v_from_x_eps(x, eps, log_snr)
    torch.testing.assert_close(S.x_from_z_v(z, v, log_snr), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(S.eps_from_z_v(z, v, log_snr), eps, atol=1e-5, rtol=0)
    torch.testing.assert_close(S.eps_from_z_x(z, x, log_snr), eps, atol=1e-3, rtol=0)
    keep = log_snr > -5  # x from eps divides by alpha: fine where alpha is not tiny
    torch.testing.assert_close(S.x_from_z_eps(z, eps, log_snr)[keep], x[keep], atol=1e-4, rtol=0)
    for prediction, target in (("eps", eps), ("v", v)):
        torch.testing.assert_close(S.training_target(x, eps, log_snr, prediction), target)
        torch.testing.assert_close(S.predict_x(z, target, log_snr, prediction)[keep], x[keep], atol=1e-4, rtol=0)


def test_ancestral_step_with_the_true_x_keeps_the_forward_marginal():
    """With gamma = 0 the step samples q(z_s | z_t, x), so z_s ~ q(z_s | x) = N(alpha_s x, sigma_s^2) exactly."""
    g = torch.Generator().manual_seed(0)
    x = torch.full((200_000,), 0.6)
    log_t, log_s = torch.tensor([-1.5]), torch.tensor([2.0])
    z_t = S.diffuse(x, torch.randn(x.shape, generator=g), log_t)
    z_s = S.ancestral_step(z_t, x, log_t, log_s, torch.randn(x.shape, generator=g), gamma=0.0)
    alpha_s, sigma_s = S.alpha_sigma(log_s)
    assert z_s.mean().item() == pytest.approx(alpha_s.item() * 0.6, abs=5e-3)
    assert z_s.std().item() == pytest.approx(sigma_s.item(), rel=1e-2)
    # gamma = 1 uses the larger forward variance sigma^2_{t|s}
    wider = S.ancestral_step(z_t, x, log_t, log_s, torch.randn(x.shape, generator=g), gamma=1.0)
    assert wider.std() > z_s.std() * 1.05


def test_ddim_step_with_the_true_x_follows_the_noise():
    x, eps = torch.rand(2, 3, 2, 4, 4), torch.randn(2, 3, 2, 4, 4)
    log_t, log_s = torch.tensor([-3.0, 0.0]), torch.tensor([1.0, 6.0])
    z_s = S.ddim_step(S.diffuse(x, eps, log_t), x, log_t, log_s)
    torch.testing.assert_close(z_s, S.diffuse(x, eps, log_s))


def test_ddim_sampling_is_deterministic():
    model = tiny_model(sampler="ddim", sampling_steps=3)
    randomize(model.ema.module)
    a = model.sample(2, generator=torch.Generator().manual_seed(3))
    b = model.sample(2, generator=torch.Generator().manual_seed(3))
    c = model.sample(2, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)
    # DDIM draws only the initial noise: the same z_1 gives the same sample whatever comes after it in the generator
    g = torch.Generator().manual_seed(3)
    with model.evaluating():
        d, _ = model.generate(2, 8, generator=g)
    torch.testing.assert_close(a, d, rtol=0, atol=0)


def test_classifier_free_guidance_uses_the_labels():
    model = tiny_model(num_classes=9, class_conditional=True, guidance_weight=2.0)
    randomize(model.ema.module)
    a = model.sample(2, labels=torch.tensor([0, 0]), generator=torch.Generator().manual_seed(0))
    b = model.sample(2, labels=torch.tensor([4, 4]), generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(a, b), "the class must change the sample"
    labels = model.training_labels({"label": torch.tensor([3, -1] * 500)})
    assert (labels[1::2] == 9).all(), "unlabelled clips train the null class"
    assert 0.05 < (labels[::2] == 9).float().mean() < 0.15, "p_uncond = 0.1 of labelled clips train the null class"


# -- reconstruction guidance -----------------------------------------------------------------------------------------


def test_extension_returns_longer_videos_that_start_with_the_short_sample():
    model = tiny_model()
    randomize(model.ema.module)
    short = model.sample(2, generator=torch.Generator().manual_seed(0))
    long = model.sample(2, generator=torch.Generator().manual_seed(0), frames=13)
    assert long.shape == (2, 3, 13, 16, 16) and long.min() >= -1 and long.max() <= 1
    torch.testing.assert_close(long[:, :, :8], short, rtol=0, atol=0)
    context = torch.rand(2, 3, 3, 16, 16) * 2 - 1
    predicted = model.predict_frames(context, 10, generator=torch.Generator().manual_seed(0))
    assert predicted.shape == (2, 3, 10, 16, 16)
    torch.testing.assert_close(predicted[:, :, :3], context, rtol=0, atol=0)


def _reconstruction_errors(model, weights, steps_kept=1):
    context = torch.rand(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(9)) * 2 - 1
    errors = []
    for w in weights:
        with model.evaluating():
            video, error = model.generate(2, 8, generator=torch.Generator().manual_seed(1), context=context,
                                          reconstruction_weight=w)
        torch.testing.assert_close(video[:, :, :4], context, rtol=0, atol=0)
        errors.append(error[-steps_kept:].mean().item())
    return errors


def test_reconstruction_guidance_pulls_the_model_towards_the_context():
    """With a denoiser that mixes frames strongly (x_hat = the temporal mean of z), the guided frames are pushed to
    make the context's reconstruction right: its error falls as w_r grows (in the range before overshooting)."""
    model = tiny_model(sampling_steps=8, sample_with_ema=False)
    model.predict_clean = lambda net, z, log_snr, labels: z.mean(dim=2, keepdim=True).expand_as(z)
    errors = _reconstruction_errors(model, (0.0, 0.3, 1.0, 3.0))
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.97 * errors[0], errors


def test_reconstruction_guidance_through_the_unet():
    model = tiny_model(sampling_steps=4, attention_resolutions=(8, 16))
    randomize(model.ema.module)
    errors = _reconstruction_errors(model, (0.0, 1.0, 3.0))
    assert all(a > b for a, b in zip(errors, errors[1:])), errors


# -- learning --------------------------------------------------------------------------------------------------------


def held_out_loss(model: VideoDiffusion, videos: torch.Tensor) -> float:
    """The diffusion loss on fixed clips, at fixed noise levels (a grid over t) and fixed noise."""
    g = torch.Generator().manual_seed(0)
    t = torch.linspace(0.05, 0.95, len(videos))
    eps = torch.randn(videos.shape, generator=g)
    log_snr = model.schedule.log_snr(t)
    with model.evaluating():
        out = model.network_output(model.sampling_network, S.diffuse(videos, eps, log_snr), log_snr, None)
    return F.mse_loss(out, S.training_target(videos, eps, log_snr, model.config.prediction)).item()


@pytest.mark.slow
def test_learns_shapes(tmp_path):
    """A short run on `shapes`: the held-out denoising loss falls well below its value at initialization, and samples
    get much closer to real clips (fvd_shapes) than the untrained model's."""
    from tests.conftest import REPO
    from zoo.config import resolve_config
    from zoo.datasets import build_dataset
    from zoo.training import fit

    steps = 300
    config = resolve_config(
        "video_diffusion", "shapes", VideoDiffusionConfig, [REPO / "experiments/video_diffusion/tiny.yaml"],
        [f"train.run_dir={tmp_path}", f"train.max_steps={steps}", f"train.checkpoint_every={steps}",
         "train.batch_size=8", "train.log_every=25", "data.num_videos=512", "data.extra_frames=0",
         "model.base_channels=16", "model.emb_dim=64", "model.lr=1e-3", "model.ema_decay=0.98",
         "model.sampler=ddim", "model.sampling_steps=16", "model.dropout=0.0"],
    )
    torch.manual_seed(0)
    initial = VideoDiffusion(config.model, VideoSpec(3, 8, 16, 9))
    result = fit(config)

    held_out = build_dataset("shapes", dataclasses.replace(config.data, seed=config.data.seed + 1))  # unseen videos
    real = torch.stack([held_out[i]["video"] for i in range(64)])
    before, after = held_out_loss(initial, real), held_out_loss(result.model, real)
    assert after < 0.5 * before, f"held-out denoising loss {before:.3f} -> {after:.3f}"

    fvd_before = fvd_shapes_distance(real, initial.sample(64, generator=torch.Generator().manual_seed(0)))
    fvd_after = fvd_shapes_distance(real, result.model.sample(64, generator=torch.Generator().manual_seed(0)))
    assert fvd_after < 0.5 * fvd_before, f"fvd_shapes to real clips: init {fvd_before:.1f}, trained {fvd_after:.1f}"


def test_unet_runs_under_bf16_autocast():
    """The U-Net under bf16 autocast (what the module enables on GPU; exercised here on CPU) stays close to fp32."""
    config = VideoDiffusionConfig(base_channels=8, channel_mults=(1, 2), blocks_per_level=1,
                                  attention_resolutions=(8,), head_dim=8, emb_dim=32, emb_layers=2, norm_groups=4)
    model = VideoDiffusion(config, VideoSpec(3, 4, 16, 0)).eval()
    x = torch.randn(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    log_snr = torch.tensor([0.0, 2.0])
    with torch.no_grad():
        full = model.network_output(model.unet, x, log_snr, None)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model.network_output(model.unet, x, log_snr, None)
    assert torch.isfinite(half).all()
    assert (half.float() - full).abs().max() < 0.1 * full.abs().max() + 0.05


def test_temporal_attention_matches_explicit_bias_attention_and_trains_the_bias():
    """The fused path carries the relative-position bias inside q.k; it must equal softmax(q.k / sqrt(d) + bias) v
    written out by hand, mask included, with the same gradient reaching the bias table."""
    from zoo.models.video_diffusion.unet3d import temporal_mask

    torch.manual_seed(0)
    b, t, c, h, w = 2, 5, 32, 3, 2
    attention = TemporalAttention(c, head_dim=16, groups=8, max_distance=3)
    with torch.no_grad():
        attention.position_bias.table.weight.normal_()
        attention.out.weight.normal_(std=0.1)
    x = torch.randn(b * t, c, h, w)
    positions = torch.arange(t)
    allowed = temporal_mask(t, 3, x.device)

    def by_hand():
        qkv = attention.qkv(attention.norm(x)).reshape(b, t, 3, 2, 16, h, w)  # (b, t, three, heads, d, h, w)
        q, k, v = qkv.permute(2, 0, 5, 6, 3, 1, 4).unbind(0)  # each (b, h, w, heads, t, d)
        relative = (positions[None, :] - positions[:, None]).clamp(-3, 3) + 3
        bias = attention.position_bias.table.weight[relative].permute(2, 0, 1)  # (heads, t, t)
        scores = q @ k.transpose(-1, -2) / 4.0 + bias
        scores = scores.masked_fill(~allowed, float("-inf"))
        y = (scores.softmax(-1) @ v).permute(0, 4, 3, 5, 1, 2).reshape(b * t, c, h, w)
        return x + attention.out(y)

    expected, got = by_hand(), attention(x, positions, allowed)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    table = attention.position_bias.table.weight
    (grad_expected,) = torch.autograd.grad(expected.square().sum(), table)
    (grad_got,) = torch.autograd.grad(got.square().sum(), table)
    assert grad_expected.abs().max() > 1e-3  # the bias matters to the output
    torch.testing.assert_close(grad_got, grad_expected, atol=1e-4, rtol=1e-4)



def test_spatial_attention_matches_explicit_attention_with_gradients():
    """Spatial attention's q/k/v come from three products on channels-last rows; output and gradients (input and
    every weight) must equal softmax(q.k / sqrt(d)) v over each frame's pixels written out by hand, in float64."""
    torch.manual_seed(0)
    n, c, h, w, heads, d = 3, 32, 4, 5, 2, 16
    attention = randomize(SpatialAttention(c, head_dim=d, groups=8)).double()
    x = torch.randn(n, c, h, w, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()

    def by_hand(x):
        qkv = attention.qkv(attention.norm(x)).reshape(n, 3, heads, d, h * w)  # (frames, three, heads, d, pixels)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # each (frames, heads, pixels, d)
        y = ((q @ k.transpose(-1, -2)) / math.sqrt(d)).softmax(-1) @ v
        return x + attention.out(y.transpose(-1, -2).reshape(n, c, h, w))

    got, expected = attention(x), by_hand(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)
    grad = torch.randn_like(expected)
    params = [x, *attention.parameters()]
    for ours, ref in zip(torch.autograd.grad(got, params, grad), torch.autograd.grad(expected, params, grad)):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)



@pytest.mark.parametrize("class_conditional", [False, True])
def test_labels_are_refused_by_an_unconditional_model_on_labelled_data(class_conditional):
    """On labelled data (9 classes) an unconditional model must refuse labels, never silently ignore them: its
    `label_classes` is 0 (what `zoo sample --labels` checks); a class-conditional one takes the data's classes."""
    from zoo.errors import ZooError

    config = VideoDiffusionConfig(base_channels=8, channel_mults=(1,), blocks_per_level=1, attention_resolutions=(),
                                  head_dim=8, emb_dim=16, emb_layers=1, norm_groups=4, sampling_steps=1,
                                  class_conditional=class_conditional)
    model = VideoDiffusion(config, VideoSpec(3, 2, 8, 9))
    labels = torch.tensor([1, 2])
    if class_conditional:
        assert model.label_classes == 9
        assert model.sample(2, labels=labels, generator=torch.Generator().manual_seed(0)).shape[0] == 2
    else:
        assert model.label_classes == 0
        with pytest.raises(ZooError, match="unconditional"):
            model.sample(2, labels=labels, generator=torch.Generator().manual_seed(0))


# -- EMA --------------------------------------------------------------------------------------------------------------


class WeightRecorder(pl.Callback):
    """The U-Net's weights after every training step (the EMA update happens inside the optimizer step)."""

    def __init__(self):
        self.weights: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, model, *args):
        self.weights.append({k: v.detach().clone() for k, v in model.unet.state_dict().items()})


def test_ema_follows_the_warmup_formula_every_step(tmp_path):
    """After each update the EMA is d_n * EMA + (1 - d_n) * weights with d_n = min(decay, (1 + n) / (10 + n)),
    computed here from the recorded weights (the first update copies)."""
    from tests.conftest import REPO
    from zoo.config import resolve_config
    from zoo.training import fit

    sets = [f"train.run_dir={tmp_path}", "train.max_steps=4", "train.checkpoint_every=1000", "model.ema_decay=0.5"]
    config = resolve_config("video_diffusion", "shapes", VideoDiffusionConfig,
                            [REPO / "experiments/video_diffusion/tiny.yaml"], sets)
    recorder = WeightRecorder()
    model = fit(config, extra_callbacks=[recorder]).model
    assert int(model.ema.averaged.n_averaged) == 4
    expected = dict(recorder.weights[0])
    for n, weights in enumerate(recorder.weights[1:], start=1):
        d = min(0.5, (1 + n) / (10 + n))  # 0.18, 0.25, 0.31: the warm-up, below the configured 0.5
        expected = {k: d * expected[k] + (1 - d) * w if w.is_floating_point() else w for k, w in weights.items()}
    ema = model.ema.module.state_dict()
    for name, value in expected.items():
        torch.testing.assert_close(ema[name], value, msg=name)
    assert any(not torch.equal(ema[k], recorder.weights[-1][k]) for k in ema), "the EMA must lag the weights"


def test_sampling_uses_the_ema_weights():
    model = tiny_model(sampler="ddim", sampling_steps=2)
    randomize(model.ema.module)
    a = model.sample(2, generator=torch.Generator().manual_seed(0))
    randomize(model.unet)  # the trained weights change, the EMA does not: same samples
    torch.manual_seed(5)
    for p in model.unet.parameters():
        p.data.add_(torch.randn_like(p))
    torch.testing.assert_close(model.sample(2, generator=torch.Generator().manual_seed(0)), a, rtol=0, atol=0)
    for p in model.ema.module.parameters():  # the EMA changes: different samples
        p.data.add_(0.1 * torch.randn_like(p))
    assert not torch.equal(model.sample(2, generator=torch.Generator().manual_seed(0)), a)
    model.config.sample_with_ema = False  # and without the EMA, sampling follows the trained weights
    b = model.sample(2, generator=torch.Generator().manual_seed(0))
    model.unet.load_state_dict(model.ema.module.state_dict())
    assert not torch.equal(model.sample(2, generator=torch.Generator().manual_seed(0)), b)


@pytest.mark.parametrize("init_scale,updates", [(2.0**100, 0), (2.0**4, 3)])
def test_ema_skips_the_updates_a_mixed_precision_scaler_skipped(init_scale, updates):
    """16-bit mixed precision (CPU autocast + a real GradScaler): a scale of 2^100 overflows every gradient, so the
    scaler skips each update (the weights stay put) and the EMA must not average; a small scale updates normally."""
    from pytorch_lightning.plugins.precision import MixedPrecision

    from zoo.config import DataConfig
    from zoo.datasets.datamodule import VideoDataModule

    model = tiny_model()
    initial = {k: v.clone() for k, v in model.unet.state_dict().items()}
    datamodule = VideoDataModule(DataConfig(frames=8, resolution=16, num_videos=16, num_workers=0), 2)
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
    trainer = pl.Trainer(accelerator="cpu", max_steps=3, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         plugins=[MixedPrecision("16-mixed", "cpu", scaler)])
    trainer.fit(model, datamodule=datamodule)
    changed = any(not torch.equal(initial[k], v) for k, v in model.unet.state_dict().items() if "weight" in k)
    assert changed == (updates > 0)
    assert int(model.ema.averaged.n_averaged) == updates
