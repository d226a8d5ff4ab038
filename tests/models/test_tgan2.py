"""TGANv2: the contract, the subsampling layers, per-level discriminator routing, the loss, the training discipline
(n_dis, toggles), exact resume, DDP and a slow learning check."""

from __future__ import annotations

import csv

import pytest
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import Callback

from tests.conftest import REPO
from tests.models.contract import ModelContract
from tests.models.ddp import assert_identical_ranks, run_ddp_fit
from tests.models.distances import trained_vs_untrained
from zoo.config import resolve_config
from zoo.errors import ZooError
from zoo.models.base import VideoSpec
from zoo.models.layers.resblocks import chainer_downsample
from zoo.models.losses import zero_centred_gradient_penalty_sum
from zoo.models.tgan2 import Subsample, TGANv2, TGANv2Config
from zoo.training import fit

TINY = dict(z_dim=16, clstm_channels=8, ch=4, channel_multipliers=[4, 2, 1, 1], dis_channels=2)


def tiny_model(frames=8, resolution=16, num_classes=0, **overrides) -> TGANv2:
    torch.manual_seed(0)
    return TGANv2(TGANv2Config(**{**TINY, **overrides}), VideoSpec(3, frames, resolution, num_classes))


def tiny_config(run_dir, *sets: str):
    base = [f"train.run_dir={run_dir}", "train.sample_every=0", "train.checkpoint_every=1000", "data.num_workers=0"]
    return resolve_config("tgan2", "shapes", TGANv2Config, [REPO / "experiments/tgan2/tiny.yaml"], base + list(sets))


def expected_levels(batch, frames, resolution, levels, subsample_batch, subsample_frame=True):
    """(videos, frames, resolution) of level l, written out from the paper's description."""
    return [
        (-(-batch // 2**level) if subsample_batch else batch,
         frames // 2**level if subsample_frame else frames,
         resolution // 2 ** (levels - 1 - level))
        for level in range(levels)
    ]


def record_discriminator_inputs(model: TGANv2) -> dict[int, list[tuple[int, ...]]]:
    seen: dict[int, list[tuple[int, ...]]] = {}
    for level, net in enumerate(model.discriminator.levels):
        net.register_forward_pre_hook(lambda m, args, level=level: seen.setdefault(level, []).append(args[0].shape))
    return seen


class TestTGANv2(ModelContract):
    model_key = "tgan2"

    def check_forward(self, model, batch):
        b, _, t, r, _ = batch["video"].shape
        model.train()
        seen = record_discriminator_inputs(model)
        model.discriminator_loss(batch, 0)
        for level, (n, frames, res) in enumerate(expected_levels(b, t, r, 4, False)):
            assert seen[level] == [(n, 3, frames, res, res)] * 2, level  # real, then fake


# -- subsampling layers -------------------------------------------------------------------------------------------


def test_subsample_layer_halves_batch_and_frames_from_a_random_offset_in_training():
    layer = Subsample(batch=2, frame=2).train()
    n, t = 6, 8
    h = torch.arange(n * t, dtype=torch.float32).view(n, t, 1, 1, 1)  # value = 8 n + t
    labels = torch.arange(n)
    offsets = set()
    for seed in range(20):
        torch.manual_seed(seed)
        out, out_labels = layer(h, labels)
        assert out.shape == (3, 4, 1, 1, 1)
        assert out_labels.tolist() == [0, 2, 4]
        values = out.flatten(1)  # (3 videos, 4 frames)
        offset = int(values[0, 0])
        assert offset in (0, 1)
        expected = torch.tensor([[8 * v + offset + 2 * k for k in range(4)] for v in (0, 2, 4)], dtype=torch.float32)
        torch.testing.assert_close(values, expected)
        offsets.add(offset)
    assert offsets == {0, 1}, "the frame offset must be random"


def test_subsample_layer_is_identity_at_inference():
    layer = Subsample(batch=2, frame=2).eval()
    h, labels = torch.randn(5, 8, 2, 3, 3), torch.arange(5)
    out, out_labels = layer(h, labels)
    assert torch.equal(out, h) and torch.equal(out_labels, labels)


def test_generator_levels_are_the_subsampled_frames_of_the_dense_levels():
    """With per-frame BatchNorm frozen (eval statistics), each level's frames must be exactly the frames the dense
    (unsubsampled) levels render at offsets o, o + 2, ... (level 1), and so on: the subsampling layer really
    selects frames of the ConvLSTM's sequence, the same for every level below."""
    model = tiny_model(subsample_batch=True)
    gen = model.generator.train()
    for m in gen.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
    z = torch.rand(4, 16) * 2 - 1
    gen.subsample.frame, gen.subsample.batch = 1, 1
    dense, _ = gen(z, None, 8)
    gen.subsample.frame, gen.subsample.batch = 2, 2
    first_offsets = set()
    for seed in range(12):
        torch.manual_seed(seed)
        sparse, _ = gen(z, None, 8)
        torch.testing.assert_close(sparse[0], dense[0])
        offset = 0
        for level in range(1, 4):
            step = 2**level  # videos and frames kept: every 2^l-th, from the offsets drawn so far
            candidates = [offset + k * step // 2 for k in (0, 1)]  # nested: this level refines the last offset
            match = [s for s in candidates
                     if sparse[level].shape == dense[level][::step, :, s::step].shape
                     and torch.allclose(sparse[level], dense[level][::step, :, s::step], atol=1e-6)]
            assert match, f"level {level} is not a subsampled copy of the dense level (seed {seed})"
            offset = match[0]
            if level == 1:
                first_offsets.add(offset)
    assert first_offsets == {0, 1}, "the frame offset must vary between steps"


def test_subsampling_is_training_only_and_inference_renders_densely():
    model = tiny_model(subsample_batch=True)
    model.train()
    levels, _ = model.fakes(8, None)
    assert [tuple(v.shape) for v in levels] == [(n, 3, t, r, r) for n, t, r in expected_levels(8, 8, 16, 4, True)]
    for n in (1, 3, 8):  # any batch size, all frames, last level only
        assert model.sample(n).shape == (n, 3, 8, 16, 16)
    assert model.training, "sample() must restore the training mode"


# -- real clips per level -----------------------------------------------------------------------------------------


def test_real_levels_subsample_frames_per_clip_and_pool_space():
    model = tiny_model(subsample_batch=True)
    b, t, r = 16, 8, 16
    clip = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1, 1)
    time = torch.arange(t, dtype=torch.float32).view(1, 1, t, 1, 1)
    pixels = torch.rand(1, 3, 1, r, r)
    video = 100 * clip + time + pixels  # frame index readable from the mean over a pooled pixel
    torch.manual_seed(0)
    levels, labels = model.real_levels(video, torch.arange(b))
    offsets_seen = set()
    for level, x in enumerate(levels):
        step, pool = 2**level, 2 ** (3 - level)
        assert x.shape == (-(-b // step), 3, t // step, r // pool, r // pool)
        assert labels[level].tolist() == list(range(0, b, step))
        pooled = F.avg_pool2d(pixels[0, :, 0], pool) if pool > 1 else pixels[0, :, 0]
        for i, source in enumerate(range(0, b, step)):
            frames = (x[i] - pooled[:, None] - 100 * source).mean((0, 2, 3)).round().long().tolist()
            assert frames == list(range(frames[0], t, step)), (level, frames)
            assert 0 <= frames[0] < step
            offsets_seen.add((level, frames[0]))
    assert {o for lv, o in offsets_seen if lv == 1} == {0, 1}, "clips must get their own random offsets"


# -- discriminator routing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("subsample_batch", [False, True])
def test_each_level_discriminator_sees_its_level_tiny(subsample_batch):
    model = tiny_model(subsample_batch=subsample_batch).train()
    seen = record_discriminator_inputs(model)
    batch = {"video": torch.rand(8, 3, 8, 16, 16) * 2 - 1, "label": torch.zeros(8, dtype=torch.long)}
    model.discriminator_loss(batch, 0)
    model.generator_loss(batch)
    for level, (n, t, r) in enumerate(expected_levels(8, 8, 16, 4, subsample_batch)):
        assert seen[level] == [(n, 3, t, r, r)] * 3, level  # D step: real, fake; G step: fake


@pytest.mark.parametrize("subsample_batch", [False, True])
def test_each_level_discriminator_sees_its_level_default_config(subsample_batch):
    """The paper's networks (192x192, 16 frames, 4 levels: 24^2 x 16, 48^2 x 8, 96^2 x 4, 192^2 x 2), on the meta
    device: shapes propagate without computing anything."""
    with torch.device("meta"):
        model = TGANv2(TGANv2Config(subsample_batch=subsample_batch), VideoSpec(3, 16, 192, 0))
    model.train()
    seen = record_discriminator_inputs(model)
    batch = {"video": torch.empty(32, 3, 16, 192, 192, device="meta"), "label": torch.zeros(32, dtype=torch.long)}
    model.discriminator_loss(batch, 0)
    model.generator_loss(batch)
    expected = expected_levels(32, 16, 192, 4, subsample_batch)
    assert [r for _, _, r in expected] == [24, 48, 96, 192] and [t for _, t, _ in expected] == [16, 8, 4, 2]
    for level, (n, t, r) in enumerate(expected):
        assert seen[level] == [(n, 3, t, r, r)] * 3, level
    assert model.generator.base == 3  # the official t_size for 192x256 UCF-101


def test_per_level_scores_enter_the_loss_once_each():
    model = tiny_model().train()
    batch = {"video": torch.rand(4, 3, 8, 16, 16) * 2 - 1, "label": torch.zeros(4, dtype=torch.long)}
    torch.manual_seed(3)
    loss, logs = model.generator_loss(batch)
    torch.manual_seed(3)
    fakes, _ = model.fakes(4, None)
    scores = torch.cat([d(x) for d, x in zip(model.discriminator.levels, fakes)])
    assert scores.shape == (16,)
    torch.testing.assert_close(loss, F.softplus(-scores).mean())


# -- loss ---------------------------------------------------------------------------------------------------------


def test_gradient_penalty_equals_a_direct_autograd_computation():
    model = tiny_model(gp_weight=10.0).train()
    batch = {"video": torch.rand(4, 3, 8, 16, 16) * 2 - 1, "label": torch.zeros(4, dtype=torch.long)}
    torch.manual_seed(7)
    loss, logs = model.discriminator_loss(batch, 0)
    torch.manual_seed(7)  # the same real offsets as inside the loss
    reals, _ = model.real_levels(batch["video"], None)
    direct = 0.0
    for net, x in zip(model.discriminator.levels, reals):
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(net(x).sum(), x)
        direct += sum(grad[i].pow(2).sum() for i in range(len(x)))  # per clip, summed over the batch (official)
    torch.testing.assert_close(logs["gp"], direct, rtol=1e-5, atol=0)
    torch.testing.assert_close(loss, logs["d_loss"] + 10.0 * direct, rtol=1e-5, atol=0)
    assert logs["gp"] > 0


def test_penalty_function_sums_over_inputs_and_batch():
    x1, x2 = torch.randn(3, 4, requires_grad=True), torch.randn(2, 5, requires_grad=True)
    w1, w2 = torch.randn(4), torch.randn(5)
    logits = [(x1**2) @ w1, x2 @ w2]
    expected = (2 * x1 * w1).pow(2).sum() + 2 * w2.pow(2).sum()  # d/dx of sum: 2 x w and w, squared, summed
    torch.testing.assert_close(zero_centred_gradient_penalty_sum(logits, [x1, x2]), expected)


def test_chainer_downsample_pads_odd_axes_with_zeros():
    x = torch.tensor([1.0, 2.0, 3.0]).view(1, 1, 3, 1, 1)
    out = chainer_downsample(x)  # axis 3 -> pad 1, kernel 2: [0+1, 2+3] / 2; axes of 1 -> [0, v, 0]
    assert out.shape == (1, 1, 2, 3, 3)
    torch.testing.assert_close(out[0, 0, :, 1, 1], torch.tensor([0.5, 2.5]))
    assert out[0, 0, :, 0].abs().sum() == 0 and out[0, 0, :, :, 2].abs().sum() == 0
    assert chainer_downsample(torch.ones(1, 1, 4, 6, 2)).shape == (1, 1, 2, 3, 1)


def test_learning_rate_decays_linearly_to_zero_as_chainer_linear_shift():
    model = TGANv2(TGANv2Config(**TINY), VideoSpec(3, 8, 16, 0))
    assert model.learning_rate(0) == 1e-4
    assert model.learning_rate(50_000) == pytest.approx(5e-5)
    assert model.learning_rate(100_000) == 0.0 and model.learning_rate(120_000) == 0.0
    constant = TGANv2(TGANv2Config(**TINY, lr_decay_start=None), VideoSpec(3, 8, 16, 0))
    assert constant.learning_rate(90_000) == 1e-4


# -- training discipline ------------------------------------------------------------------------------------------


class CountSteps(Callback):
    def __init__(self):
        self.counts = {"g": 0, "d": 0}

    def on_train_start(self, trainer, pl_module):
        g, d = trainer.optimizers
        g.register_step_post_hook(lambda *_: self.counts.__setitem__("g", self.counts["g"] + 1))
        d.register_step_post_hook(lambda *_: self.counts.__setitem__("d", self.counts["d"] + 1))


@pytest.mark.parametrize("n_dis", [1, 3])
def test_n_dis_discriminator_steps_per_training_step(tmp_path, n_dis):
    counter = CountSteps()
    fit(tiny_config(tmp_path, "train.max_steps=2", f"model.n_dis={n_dis}"), extra_callbacks=[counter])
    assert counter.counts == {"g": 2, "d": 2 * n_dis}


class GradientPhases(Callback):
    """Records, for every gradient that reaches a parameter, which loss was being back-propagated."""

    def __init__(self):
        self.phase, self.hits = None, []

    def on_train_start(self, trainer, model):
        for name in ("discriminator_loss", "generator_loss"):
            original = getattr(model, name)

            def wrapped(*args, _original=original, _phase=name[0], **kwargs):
                self.phase = _phase
                return _original(*args, **kwargs)

            setattr(model, name, wrapped)
        for net, tag in ((model.discriminator, "D"), (model.generator, "G")):
            for p in net.parameters():
                p.register_hook(lambda grad, tag=tag: self.hits.append((self.phase, tag)))


def test_generator_step_gives_no_gradient_to_the_discriminator(tmp_path):
    phases = GradientPhases()
    fit(tiny_config(tmp_path, "train.max_steps=2", "model.gp_weight=10.0"), extra_callbacks=[phases])
    assert ("d", "D") in phases.hits and ("g", "G") in phases.hits
    assert ("g", "D") not in phases.hits, "the G step must not compute gradients for D"
    assert ("d", "G") not in phases.hits, "the D step must not compute gradients for G"


def test_resume_is_exact(tmp_path):
    sets = ["data.num_videos=20", "model.subsample_batch=true", "model.n_dis=2"]
    straight = fit(tiny_config(tmp_path / "straight", "train.max_steps=6", *sets)).model
    fit(tiny_config(tmp_path / "resumed", "train.max_steps=3", *sets))
    resumed = fit(tiny_config(tmp_path / "resumed", "train.max_steps=6", *sets), resume=True).model
    assert straight.iteration == resumed.iteration == 6
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs between straight and resumed training"
    fresh = fit(tiny_config(tmp_path / "short", "train.max_steps=3", *sets)).model
    assert any(not torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), resumed.state_dict().values()))


def test_two_process_gloo_ddp(tmp_path):
    weights, local, run_dir = run_ddp_fit("tgan2", tmp_path, 3, "--set", "model.gp_weight=10.0")
    assert_identical_ranks(weights)
    assert local[0][0]["d_loss"] != local[1][0]["d_loss"], "ranks must see different data and noise"
    with open(run_dir / "metrics.csv") as f:
        logged = list(csv.DictReader(f))
    for step in range(3):
        for key in ("d_loss", "g_loss", "gp"):
            expected = (local[0][step][key] + local[1][step][key]) / 2
            assert float(logged[step][f"train/{key}"]) == pytest.approx(expected, rel=1e-5), (step, key)


# -- variants and errors ------------------------------------------------------------------------------------------


def test_recurrent_generator_samples_any_length_and_longer_samples_extend_shorter_ones():
    model = tiny_model()
    short = model.sample(2, generator=torch.Generator().manual_seed(0))
    long = model.sample(2, generator=torch.Generator().manual_seed(0), frames=20)
    assert long.shape == (2, 3, 20, 16, 16)
    torch.testing.assert_close(long[:, :, :8], short)
    assert not torch.allclose(long[:, :, 0], long[:, :, -1])


def test_class_conditional_generator_and_discriminator_use_labels():
    model = tiny_model(num_classes=5, class_conditional=True, subsample_batch=True)
    g = torch.Generator
    a = model.sample(2, labels=torch.tensor([0, 0]), generator=g().manual_seed(0))
    b = model.sample(2, labels=torch.tensor([3, 3]), generator=g().manual_seed(0))
    torch.testing.assert_close(a, b)  # gammas start at 1 and betas at 0 for every class (official init)
    with torch.no_grad():
        for norm in model.generator.modules():  # move the class tables off their initialization, as training does
            if hasattr(norm, "gammas"):
                norm.gammas.weight.normal_()
    a = model.sample(2, labels=torch.tensor([0, 0]), generator=g().manual_seed(0))
    b = model.sample(2, labels=torch.tensor([3, 3]), generator=g().manual_seed(0))
    assert not torch.allclose(a, b), "labels must change the video (conditional BatchNorm)"
    model.train()
    batch = {"video": torch.rand(4, 3, 8, 16, 16) * 2 - 1, "label": torch.tensor([0, 1, 2, 3])}
    loss, _ = model.discriminator_loss(batch, 0)
    assert torch.isfinite(loss)
    video = torch.rand(2, 3, 1, 16, 16)
    d = model.discriminator.levels[-1]
    assert not torch.allclose(d(video, torch.tensor([0, 0])), d(video, torch.tensor([4, 4])))
    with pytest.raises(ZooError, match="label -1"):
        model.discriminator_loss({**batch, "label": torch.full((4,), -1)}, 0)
    with pytest.raises(ValueError, match="labelled"):
        TGANv2(TGANv2Config(**TINY, class_conditional=True), VideoSpec(3, 8, 16, 0))


@pytest.mark.parametrize("sets,match", [
    (["model.levels=9"], "model.levels"),
    (["model.gp_weight=-1"], "gp_weight"),
    (["model.n_dis=0"], "n_dis"),
    (["model.lr_decay_start=200000"], "lr_decay_start"),
])
def test_out_of_range_config_is_a_one_line_error(tmp_path, sets, match):
    with pytest.raises(ZooError, match=match):
        tiny_config(tmp_path, *sets)


def test_resolution_and_frames_that_do_not_fit_the_levels_are_zoo_errors(tmp_path):
    for sets, match in ((["data.resolution=24"], "divisible by 16"), (["data.frames=6"], "frames divisible by 8")):
        with pytest.raises(ZooError, match=match):
            fit(tiny_config(tmp_path, *sets, "train.max_steps=1"))


# -- learning ------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_tgan2_learns_shapes(tmp_path):
    """Trained briefly on `shapes` (experiments/tgan2/shapes.yaml), dense samples get much closer to real clips."""
    d_initial, d_trained = trained_vs_untrained("tgan2", TGANv2Config, tmp_path)
    assert d_trained < 0.5 * d_initial, (d_initial, d_trained)


def test_residual_blocks_take_a_spectrally_normalized_convolution():
    from torch import nn
    from torch.nn.utils.parametrizations import spectral_norm

    from zoo.models.layers.resblocks import DisBlock3d, UpResBlock2d

    def sn(cls):
        return lambda *args, **kwargs: spectral_norm(cls(*args, **kwargs))

    torch.manual_seed(0)
    up = UpResBlock2d(4, 3, conv=sn(nn.Conv2d))
    assert up(torch.randn(2, 4, 5, 5)).shape == (2, 3, 10, 10)
    down = DisBlock3d(3, 5, conv=sn(nn.Conv3d)).train()
    for _ in range(20):  # power iterations converge during training-mode forwards
        down(torch.randn(2, 3, 4, 6, 6))
    sigma = float(torch.linalg.matrix_norm(down.c2.weight.detach().flatten(1), ord=2))
    assert sigma == pytest.approx(1.0, abs=0.05)
