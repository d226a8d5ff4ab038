"""StyleGAN-V: the contract, the continuous-time generator, the time-gap-conditioned sparse discriminator, the
plain-PyTorch StyleGAN2 layers against direct computations, sparse clips from the data layer, resume and DDP."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import REPO
from tests.models.contract import ModelContract
from tests.models.ddp import assert_identical_ranks, run_ddp_fit
from tests.models.distances import fvd_shapes_distance
from zoo.config import resolve_config
from zoo.datasets import build_dataset
from zoo.frame_sampling import GAP_PALETTE, sparse_frame_times
from zoo.models.base import VideoSpec
from zoo.models.layers.stylegan import MinibatchStd, conv2d_resample, modulated_conv2d, setup_filter
from zoo.models.stylegan_v import StyleGANV, StyleGANVConfig
from zoo.models.video_augment import VideoAugment
from zoo.registry import MODELS
from zoo.training import fit

torch.set_num_threads(1)

TINY = dict(z_dim=16, w_dim=16, channel_base=256, channel_max=32, motion_z_dim=16, motion_v_dim=16, motion_kernel=3,
            motion_z_distance=4, time_enc_dim=8, min_period=4, max_period=64, max_num_frames=64,
            time_gap_embed_dim=8, d_mapping_layers=2, sample_frames=8, max_distance=8)


def tiny_model(frames: int = 3, **changes) -> StyleGANV:
    torch.manual_seed(0)
    return StyleGANV(StyleGANVConfig(**{**TINY, **changes}), VideoSpec(3, frames, 32, 0))


class TestStyleGANV(ModelContract):
    model_key = "stylegan_v"

    def check_forward(self, model, batch):
        video, times = batch["video"], batch["times"]
        b = video.shape[0]
        assert video.shape[2] == 3 and times.shape == (b, 3), "sparse training clips: 3 frames and their times"
        assert model.discriminator(video, times).shape == (b,)
        fake, fake_t = model.generate(batch)
        assert fake.shape == video.shape and fake_t.shape == times.shape

    def test_sample_shape_dtype_range(self):
        """Trained on 3 sparse frames, it renders `sample_frames` (8 in tiny.yaml) by default, any count on request."""
        model, _ = self.build()
        videos = model.sample(3, generator=torch.Generator().manual_seed(0))
        assert videos.shape == (3, 3, model.config.sample_frames, 32, 32)
        assert torch.isfinite(videos).all() and videos.min() >= -1 and videos.max() <= 1
        assert model.sample(2, frames=5).shape[2] == 5


# -- the generator in continuous time ----------------------------------------------------------------------------------


def test_time_encoding_is_stitched_at_motion_code_steps_and_not_periodic():
    """At t = k * motion_z_distance the sinusoids cancel exactly: v(t) = aligner(u_k) (Sec. 3.1); between steps the
    encoding moves, and it does not repeat over the training span."""
    model = tiny_model().double()
    motion = model.generator.motion
    d = model.config.motion_z_distance
    t = torch.arange(0, 64, dtype=torch.float64)[None]  # the training span: max_num_frames = 64
    z = torch.randn(1, motion.num_codes(t), model.config.motion_z_dim, dtype=torch.float64)
    v = motion(t, z)[0]  # (64, dim)
    u = motion.conv(z.transpose(1, 2)).transpose(1, 2)[0]  # motion codes (steps, v_dim)
    aligners = motion.encoder.aligners(u)
    for k in range(64 // d):
        torch.testing.assert_close(v[k * d], aligners[k], rtol=0, atol=1e-12)
    assert not torch.allclose(v[1], aligners[0]), "between steps the sinusoids must contribute"
    distances = torch.cdist(v, v) + torch.eye(64, dtype=torch.float64) * 1e9
    assert distances.min() > 1e-3, "two times of the span share an encoding: the encoding is periodic"


def test_frames_at_fractional_times_lie_between_their_neighbours():
    model = tiny_model().double()
    g = torch.Generator().manual_seed(3)
    frames = model.sample_at(2, [5.0, 5.5, 6.0], generator=g)
    left, middle, right = frames[:, :, 0], frames[:, :, 1], frames[:, :, 2]
    assert (middle - (left + right) / 2).norm() < 0.5 * (right - left).norm()
    near = model.sample_at(2, [5.0, 5.001], generator=torch.Generator().manual_seed(3))
    assert (near[:, :, 1] - near[:, :, 0]).abs().max() < 1e-2 * (right - left).abs().max(), "not continuous in t"


def test_same_noise_whatever_the_times_sampled():
    model = tiny_model()
    dense = model.sample_at(2, torch.arange(8.0), generator=torch.Generator().manual_seed(1))
    sparse = model.sample_at(2, [2.0, 7.0], generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(sparse, dense[:, :, [2, 7]])


def test_far_beyond_the_training_length_frames_stay_finite_and_moving():
    model = tiny_model()  # max_num_frames 64, trained on gaps <= 8
    video = model.sample(2, frames=300, generator=torch.Generator().manual_seed(0))
    assert video.shape[2] == 300 and torch.isfinite(video).all()
    late = video[:, :, 250:]
    assert late.std() > 1e-3 and (late[:, :, 1:] - late[:, :, :-1]).abs().amax() > 1e-4


# -- the discriminator ------------------------------------------------------------------------------------------------


def test_discriminator_output_depends_on_the_time_gaps_alone():
    model = tiny_model()
    video = torch.rand(2, 3, 3, 32, 32) * 2 - 1
    a = model.discriminator(video, torch.tensor([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]]))
    b = model.discriminator(video, torch.tensor([[0.0, 4.0, 8.0], [0.0, 4.0, 8.0]]))
    shifted = model.discriminator(video, torch.tensor([[10.0, 11.0, 12.0], [10.0, 11.0, 12.0]]))
    assert not torch.allclose(a, b), "D ignores the time gaps"
    torch.testing.assert_close(a, shifted), "D must see gaps, not absolute times"


def test_discriminator_concatenates_the_frames_of_one_clip():
    """Changing one frame of clip 0 changes only clip 0's logit (minibatch-std disabled by a group of 1)."""
    model = tiny_model(mbstd_group_size=1)
    video, t = torch.rand(2, 3, 3, 32, 32), torch.tensor([[0.0, 1.0, 2.0]] * 2)
    base = model.discriminator(video, t)
    video[0, :, 2] += 0.5
    changed = model.discriminator(video, t)
    assert changed[0] != base[0] and changed[1] == base[1]


def test_r1_equals_a_direct_autograd_computation():
    model = tiny_model().double()
    model.augment = None
    real = torch.rand(2, 3, 3, 32, 32, dtype=torch.float64) * 2 - 1
    times = torch.tensor([[0.0, 2.0, 4.0], [1.0, 3.0, 9.0]], dtype=torch.float64)
    loss, logs = model.r1_loss({"video": real, "times": times, "label": torch.zeros(2)})
    x = real.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.discriminator(x, times).sum(), x)
    per_frame = grad.square().sum(dim=(1, 3, 4))  # (B, k): squared norm of each frame's gradient
    expected = per_frame.mean(dim=1).mean()  # official: averaged over a clip's frames, then over clips
    torch.testing.assert_close(logs["r1"], expected)
    c = model.config
    torch.testing.assert_close(loss, expected * c.r1_gamma / 2 * c.r1_interval)


# -- plain-PyTorch StyleGAN2 layers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("up", [1, 2])
def test_modulated_conv_equals_a_per_sample_reference_convolution(fused, up):
    torch.manual_seed(0)
    x, weight = torch.randn(3, 4, 6, 6, dtype=torch.float64), torch.randn(5, 4, 3, 3, dtype=torch.float64)
    styles, f = torch.randn(3, 4, dtype=torch.float64), setup_filter().double()
    out = modulated_conv2d(x, weight, styles, up=up, padding=1, resample_filter=f, fused=fused)
    for i in range(3):  # one sample at a time: modulate, demodulate, then the plain (resampling) convolution
        w = weight * styles[i].reshape(1, 4, 1, 1)
        w = w / (w.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8).sqrt()
        expected = conv2d_resample(x[i : i + 1], w, f, up=up, padding=1)
        torch.testing.assert_close(out[i : i + 1], expected, rtol=1e-10, atol=1e-10)


def test_up_convolution_equals_zero_insertion_then_filter_then_convolution():
    """The transposed-convolution fast path equals the reference's slow path: 2x zero-insertion, padding (3, 2), the
    FIR filter with gain 4, then a valid convolution with the spatially flipped weights."""
    torch.manual_seed(0)
    x, w, f = torch.randn(1, 2, 5, 5, dtype=torch.float64), torch.randn(3, 2, 3, 3, dtype=torch.float64), setup_filter()
    fast = conv2d_resample(x, w, f.double(), up=2, padding=1)
    up = torch.zeros(1, 2, 10, 10, dtype=torch.float64)
    up[:, :, ::2, ::2] = x
    blurred = F.conv2d(F.pad(up, (3, 2, 3, 2)), (4 * f.double())[None, None].expand(2, 1, 4, 4), groups=2)
    assert fast.shape == (1, 3, 10, 10)
    torch.testing.assert_close(fast, F.conv2d(blurred, w.flip([2, 3])), rtol=1e-10, atol=1e-10)


def test_fir_filter_keeps_constant_images_and_halves_resolution():
    f = setup_filter()
    assert torch.allclose(f.sum(), torch.tensor(1.0)) and torch.allclose(f, f.flip(0).flip(1))
    ones = torch.ones(1, 1, 8, 8)
    down = conv2d_resample(ones, torch.ones(1, 1, 1, 1), f, down=2)
    assert down.shape == (1, 1, 4, 4) and torch.allclose(down[:, :, 1:-1, 1:-1], torch.ones(1, 1, 2, 2))


def test_minibatch_std_appends_the_group_standard_deviation():
    x = torch.randn(4, 2, 3, 3, dtype=torch.float64)
    out = MinibatchStd(group_size=4)(x)
    expected = x.std(dim=0, unbiased=False).mean()
    assert out.shape == (4, 3, 3, 3) and torch.allclose(out[:, 2], expected.expand(4, 3, 3), atol=1e-6)


# -- video-consistent augmentation -----------------------------------------------------------------------------------


def test_augmentation_is_identical_across_frames_and_differs_between_clips():
    torch.manual_seed(0)
    frame = torch.rand(1, 3, 1, 16, 16) * 2 - 1
    video = frame.expand(6, 3, 4, 16, 16).contiguous()  # six clips, each one still frame shown 4 times
    out = VideoAugment()(video, p=1.0)
    for k in range(1, 4):
        torch.testing.assert_close(out[:, :, k], out[:, :, 0], rtol=0, atol=0)
    assert any(not torch.allclose(out[0], out[i]) for i in range(1, 6)), "every clip got the same augmentation"
    torch.testing.assert_close(VideoAugment()(video, p=0.0), video)


def test_augmentation_is_differentiable():
    video = (torch.rand(2, 3, 3, 8, 8) * 2 - 1).requires_grad_(True)
    VideoAugment()(video, p=1.0).sum().backward()
    assert video.grad is not None and video.grad.abs().sum() > 0


# -- sparse clips in the data layer ----------------------------------------------------------------------------------


def test_sparse_frame_times_follow_the_official_palette():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(500):
        times = sparse_frame_times(3, 32, 100, rng)
        gap = times[-1] - times[0]
        assert gap in GAP_PALETTE and 2 <= gap <= 32 and times[0] >= 0 and times[-1] <= 99
        assert times[0] < times[1] < times[2] and all(float(t).is_integer() for t in times)
        seen.add(gap)
    assert seen == {2, 4, 8, 16, 32}
    short = [sparse_frame_times(3, 32, 5, rng) for _ in range(50)]
    assert all(t[-1] - t[0] in (2, 4) and t[-1] <= 4 for t in short)
    assert not float(sparse_frame_times(3, 32, 100, rng, fractional=True)[0]).is_integer()


def test_folder_dataset_decodes_only_the_sparse_frames(tmp_path, monkeypatch):
    """Each sparse training clip decodes exactly its 3 frames, and they equal the same frames of a dense read."""
    from tests.datasets.media import write
    from zoo.datasets import clips

    write(tmp_path / "v" / "a" / "x.avi", n=60, height=32, width=32, seed=1)
    common = dict(root=str(tmp_path / "v"), resolution=16, index_cache=str(tmp_path / "cache"), num_workers=0)
    sparse = build_dataset("folder", frames=3, sparse_max_distance=32, **common)
    decoded = []
    real_read = clips.read_frames
    monkeypatch.setattr(clips, "read_frames", lambda path, ids, *a, **k: decoded.append(list(ids)) or
                        real_read(path, ids, *a, **k))
    item = sparse.raw_item((0, 7))
    ids = [int(t) for t in item["times"]]
    assert decoded == [ids] and len(ids) == 3 and item["video_length"] == 60
    dense = build_dataset("folder", frames=60, **common)
    assert torch.equal(item["pixels"], dense.raw_item(0)["pixels"][ids])


def test_shapes_sparse_clips_render_the_frames_at_their_times():
    sparse = build_dataset("shapes", frames=3, sparse_max_distance=16, resolution=16)
    item = sparse.raw_item((2, 11))
    times = [int(t) for t in item["times"]]
    dense = build_dataset("shapes", frames=1, resolution=16)
    from zoo.datasets.shapes import render_clip

    full = render_clip(0, 2, times[-1] + 1, 16)["pixels"]
    assert torch.equal(item["pixels"], full[times])
    assert dense.raw_item(2)["pixels"].shape[0] == 1


# -- training: lazy R1, exact resume, DDP, learning ------------------------------------------------------------------


def experiment(run_dir, steps: int, *sets: str):
    tiny = REPO / "experiments" / "stylegan_v" / "tiny.yaml"
    return resolve_config("stylegan_v", "shapes", MODELS.get("stylegan_v").config_class, [tiny],
                          [f"train.run_dir={run_dir}", f"train.max_steps={steps}", "train.checkpoint_every=1000",
                           "data.num_videos=20", "data.num_workers=1", *sets])


def test_d_steps_per_training_step_include_lazy_r1(tmp_path):
    """One D update per step plus the R1 update every `r1_interval` steps (2 in tiny.yaml), one G update."""
    counts = {"g": 0, "d": 0}
    original = torch.optim.Adam.step

    def counting(self, *args, **kwargs):
        counts["g" if len(self.param_groups[0]["params"]) == n_generator else "d"] += 1
        return original(self, *args, **kwargs)

    n_generator = len(list(tiny_model().generator.parameters()))
    torch.optim.Adam.step = counting
    try:
        fit(experiment(tmp_path, 4))
    finally:
        torch.optim.Adam.step = original
    assert counts == {"g": 4, "d": 4 + 2}


def test_resume_is_exact(tmp_path):
    straight = fit(experiment(tmp_path / "straight", 6)).model
    fit(experiment(tmp_path / "resumed", 3))
    resumed = fit(experiment(tmp_path / "resumed", 6), resume=True).model
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs between straight and resumed training"
    fresh = fit(experiment(tmp_path / "short", 3)).model
    trained = {k for k, _ in fresh.named_parameters()}
    assert any(not torch.equal(v, resumed.state_dict()[k]) for k, v in fresh.state_dict().items() if k in trained)


def test_ddp_two_processes_keep_identical_weights(tmp_path):
    weights, local, _ = run_ddp_fit("stylegan_v", tmp_path, 2)
    assert_identical_ranks(weights)
    assert local[0][0]["g_loss"] != local[1][0]["g_loss"], "both ranks drew the same noise"


@pytest.mark.slow
def test_learns_shapes(tmp_path):
    """A short run on shapes (the shapes.yaml networks, fewer steps) moves samples towards real clips."""
    config = resolve_config("stylegan_v", "shapes", StyleGANVConfig, [],
                            [f"train.run_dir={tmp_path}", "train.max_steps=400", "train.sample_every=0",
                             "data.num_workers=0"])
    torch.manual_seed(0)
    result = fit(config)
    real = torch.stack([build_dataset("shapes", frames=16, resolution=32, seed=1)[i]["video"] for i in range(64)])
    g = torch.Generator().manual_seed(0)
    untrained = StyleGANV(config.model, result.model.spec)
    before = fvd_shapes_distance(real, untrained.sample(64, frames=16, generator=g))
    after = fvd_shapes_distance(real, result.model.sample(64, frames=16, generator=torch.Generator().manual_seed(0)))
    assert after < 0.5 * before, (before, after)
    assert math.isfinite(after)
