"""Tests for the silent bugs of issue 19 that survived the suite: each checks its behaviour against an independent
expectation (a direct computation by hand, or a property that fails when the mechanism is removed).

- `evaluate.build_metric` must pass the preset's covariance convention (fvd2048_16f: /N) to FVD;
- the EMA must keep averaging after its first copy (closed form after k updates);
- MoCoGAN's motion GRU must be driven by its per-step noise (and be a GRU step of the previous state);
- the diffusion training step must hand the joint-training mask to the U-Net's temporal attention.
"""

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see tests/conftest.py


# -- build_metric and the preset's covariance convention -------------------------------------------------------------


def _frechet_by_hand(a: np.ndarray, b: np.ndarray, ddof: int) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 sqrtm(S_a S_b)), covariances by np.cov (independent of zoo's code)."""
    sa, sb = np.cov(a, rowvar=False, ddof=ddof), np.cov(b, rowvar=False, ddof=ddof)
    covmean = scipy.linalg.sqrtm(sa @ sb).real
    return float(np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(sa + sb - 2 * covmean))


@pytest.mark.parametrize("preset_name,ddof", [("fvd2048_16f", 0), ("fvd2048_128f_subsample8f", 0),
                                              ("fvd2048_16f_tf", 1)])
def test_build_metric_uses_the_presets_covariance(preset_name, ddof):
    from zoo.evaluation.protocol import build_metric
    from zoo.metrics.presets import PRESETS

    rng = np.random.default_rng(0)
    real = rng.normal(size=(12, 4))  # few rows: /N and /(N-1) differ by ~9%, far beyond the tolerance
    fake = rng.normal(0.3, 1.5, size=(12, 4))
    metric = build_metric(PRESETS[preset_name], extractor=None)
    metric.update(features=torch.from_numpy(real), real=True)
    metric.update(features=torch.from_numpy(fake))
    expected = _frechet_by_hand(real, fake, ddof)
    other = _frechet_by_hand(real, fake, 1 - ddof)
    assert abs(expected - other) > 1e-2 * expected  # the two conventions are distinguishable here
    assert float(metric.compute()) == pytest.approx(expected, rel=1e-8)


# -- EMA --------------------------------------------------------------------------------------------------------------


def test_ema_after_k_updates_is_the_closed_form_average():
    """First update copies; each later one does ema = d * ema + (1 - d) * w. Checked per step with weights set by
    hand (a parameter and a buffer), against the recursion computed here in float64."""
    from zoo.models.ema import EMA

    net = nn.BatchNorm1d(3)  # a weight parameter and a running_mean buffer (both are averaged)
    decay = 0.9
    ema = EMA(net, decay)
    values = [1.0, 5.0, -2.0, 3.0, 0.5]
    expected = None
    for v in values:
        with torch.no_grad():
            net.weight.fill_(v)
            net.running_mean.fill_(2 * v)
        ema.update(net)
        expected = v if expected is None else decay * expected + (1 - decay) * v
        assert ema.module.weight.detach().double() == pytest.approx(torch.full((3,), expected, dtype=torch.float64))
        assert ema.module.running_mean.double() == pytest.approx(torch.full((3,), 2 * expected, dtype=torch.float64))
    # by hand: 1 -> 0.9*1 + 0.1*5 = 1.4 -> 1.26 - 0.2 = 1.06 -> 0.954 + 0.3 = 1.254 -> 1.1286 + 0.05 = 1.1786
    assert expected == pytest.approx(1.1786)


# -- MoCoGAN motion -------------------------------------------------------------------------------------------------


def _gru_step(cell: nn.GRUCell, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One GRU step written out (Cho et al. 2014, PyTorch's gate layout r, z, n)."""
    gi = x @ cell.weight_ih.T + cell.bias_ih
    gh = h @ cell.weight_hh.T + cell.bias_hh
    i_r, i_z, i_n = gi.chunk(3, dim=1)
    h_r, h_z, h_n = gh.chunk(3, dim=1)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h


def _scripted_noise(content, h0, steps):
    """A `noise(*shape)` for `MotionContentGenerator.codes` returning content, the initial state, then each step's."""
    draws = iter([content, h0, *steps])
    return lambda *shape: next(draws)


def test_mocogan_motion_codes_are_gru_steps_driven_by_fresh_noise():
    from zoo.models.base import VideoSpec
    from zoo.models.mocogan import MoCoGAN, MoCoGANConfig

    torch.manual_seed(0)
    model = MoCoGAN(MoCoGANConfig(ngf=4, ndf=4), VideoSpec(3, 4, 16, 0)).eval()
    gen, c = model.generator, model.config
    n, frames = 2, 4
    content, h0 = torch.randn(n, c.dim_z_content), torch.randn(n, c.dim_z_motion)
    steps_a = [torch.randn(n, c.dim_z_motion) for _ in range(frames)]
    steps_b = [torch.randn(n, c.dim_z_motion) for _ in range(frames)]
    categories = torch.zeros(n, dtype=torch.long) if gen.num_categories else None  # the official random z_A
    motion_from = c.dim_z_content + gen.num_categories  # codes are [z_C, z_A, z_M(t)]
    with torch.no_grad():
        codes_a = gen.codes(_scripted_noise(content, h0, steps_a), n, frames, categories)
        codes_b = gen.codes(_scripted_noise(content, h0, steps_b), n, frames, categories)
        # the motion part equals the GRU recursion on the scripted noise, computed by hand
        h, expected = h0, []
        for eps in steps_a:
            h = _gru_step(gen.recurrent, eps, h)
            expected.append(h)
        torch.testing.assert_close(codes_a[..., motion_from:], torch.stack(expected, 1), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(codes_a[..., :c.dim_z_content], codes_b[..., :c.dim_z_content], rtol=0, atol=0)
        # same content code and initial state, different motion noise: the videos move differently
        video_a, video_b = gen.render(codes_a), gen.render(codes_b)
    motion_a, motion_b = video_a.diff(dim=2), video_b.diff(dim=2)  # (n, C, T-1, H, W) frame-to-frame changes
    assert (motion_a - motion_b).abs().amax() > 1e-3


# -- diffusion: the joint-training mask reaches the U-Net ------------------------------------------------------------


def test_diffusion_training_step_masks_image_frames_in_temporal_attention():
    """With image frames appended (data.extra_frames > 0), every TemporalAttention call during `training_step` gets
    the mask: the first T frames see each other, each image frame sees only itself (Ho et al. 2022, Sec. 3.2)."""
    from zoo.models.base import VideoSpec
    from zoo.models.video_diffusion import VideoDiffusion, VideoDiffusionConfig
    from zoo.models.video_diffusion.unet3d import TemporalAttention

    torch.manual_seed(0)
    config = VideoDiffusionConfig(base_channels=8, channel_mults=(1, 2), blocks_per_level=1, attention_resolutions=(8,),
                                  head_dim=8, emb_dim=32, emb_layers=2, norm_groups=4, sampling_steps=2)
    model = VideoDiffusion(config, VideoSpec(3, 4, 16, 0))
    video_frames, images = 4, 2
    batch = {"video": torch.rand(2, 3, video_frames, 16, 16) * 2 - 1,
             "image_frames": torch.rand(2, 3, images, 16, 16) * 2 - 1}
    expected = torch.zeros(video_frames + images, video_frames + images, dtype=torch.bool)
    expected[:video_frames, :video_frames] = True
    for i in range(video_frames, video_frames + images):
        expected[i, i] = True

    seen = []

    def record(module, args, kwargs):
        allowed = kwargs.get("allowed", args[2] if len(args) > 2 else None)
        seen.append(None if allowed is None else allowed.clone())

    attentions = [m for m in model.unet.modules() if isinstance(m, TemporalAttention)]
    assert attentions
    handles = [m.register_forward_pre_hook(record, with_kwargs=True) for m in attentions]
    try:
        with warnings.catch_warnings():  # self.log without a trainer warns; the step itself is the real one
            warnings.simplefilter("ignore")
            loss = model.training_step(batch, 0)
    finally:
        for h in handles:
            h.remove()
    assert torch.isfinite(loss)
    assert len(seen) >= len(attentions)
    for allowed in seen:
        assert allowed is not None, "a temporal attention ran without the joint-training mask"
        assert torch.equal(allowed.cpu(), expected)


def test_ema_decay_range_and_frozen_copy():
    """decay in [0, 1): 0 (copy every step) is valid, 1 (never move) and above are refused; the copy takes no grad."""
    from zoo.models.ema import EMA

    net = nn.Linear(2, 2)
    assert EMA(net, 0.0).decay == 0.0
    for bad in (1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=rf"EMA decay must be in \[0, 1\), got {bad}"):
            EMA(net, bad)
    ema = EMA(net, 0.5)
    assert ema.decay == 0.5
    assert not any(p.requires_grad for p in ema.parameters())
    x = torch.randn(3, 2)
    torch.testing.assert_close(ema(x), net(x))  # the first copy, called like the network
    torch.testing.assert_close(ema(input=x), net(x))  # keyword arguments reach the network too
