"""DVD-GAN: the contract, and one test per distinctive mechanism (separable attention axes, D_S frame sampling, D_T
pooling, frame-wise class-conditional BN, 2 D steps per G step, EMA sampling, truncation, unconditional mode)."""

from __future__ import annotations

import pytest
import torch
from pytorch_lightning.callbacks import Callback

from tests.models.contract import ModelContract
from tests.models.distances import fvd_shapes_distance
from zoo.models.base import VideoSpec
from zoo.models.dvdgan import DVDGAN, DVDGANConfig
from zoo.models.layers.biggan import FrameConditionalBatchNorm
from zoo.models.layers.separable_attention import AxisSelfAttention, JointSelfAttention, SeparableAttention

TINY = DVDGANConfig(dim_z=16, dim_class=8, g_ch=4, d_ch=4, k_frames=4)


class TestDVDGAN(ModelContract):
    model_key = "dvdgan"

    def check_forward(self, model, batch):
        video, labels = batch["video"], batch["label"]
        b = video.shape[0]
        spatial, temporal = model.discriminate(video, labels)
        assert spatial.shape == (b,) and temporal.shape == (b,)
        assert model.generator(torch.randn(b, model.config.dim_z), labels).shape == video.shape


# -- separable attention -------------------------------------------------------------------------------------------


def _active(layer: AxisSelfAttention) -> AxisSelfAttention:
    with torch.no_grad():
        layer.gamma.fill_(1.0)  # the residual gain starts at 0 (identity); open it so the attention path counts
    return layer.double()


def _input_gradient(module, x: torch.Tensor, position: tuple[int, int, int]) -> torch.Tensor:
    """|d out[0, :, t, h, w] / d x| summed over channels: `(T, H, W)`, nonzero where the output position looks."""
    x = x.clone().requires_grad_(True)
    t, h, w = position
    module(x)[0, :, t, h, w].sum().backward()
    return x.grad[0].abs().sum(0)


@pytest.mark.parametrize("axis", ["h", "w", "t"])
def test_each_attention_layer_mixes_only_along_its_axis(axis):
    torch.manual_seed(0)
    layer = _active(AxisSelfAttention(16, axis))
    x = torch.randn(2, 16, 3, 4, 5, dtype=torch.float64)
    position = (1, 2, 3)
    grad = _input_gradient(layer, x, position)  # (T, H, W)
    reach = grad != 0
    expected = torch.zeros_like(reach)
    t, h, w = position
    if axis == "t":
        expected[:, h, w] = True
    elif axis == "h":
        expected[t, :, w] = True
    else:
        expected[t, h, :] = True
    # exactly zero off the axis, nonzero everywhere along it (the position itself included)
    assert torch.equal(reach, expected), f"{axis}-attention reaches {reach.nonzero().tolist()}"


def test_separable_attention_is_h_then_w_then_t_and_reaches_every_position():
    torch.manual_seed(0)
    attention = SeparableAttention(16)
    assert [layer.axis for layer in attention.layers] == ["h", "w", "t"]
    for layer in attention.layers:
        _active(layer)
    x = torch.randn(2, 16, 3, 4, 5, dtype=torch.float64)
    grad = _input_gradient(attention, x, (1, 2, 3))
    assert (grad != 0).all(), "after H, W and T attention every input position must influence every output"
    # and no mixing across clips of the batch
    x = x.clone().requires_grad_(True)
    attention(x)[0].sum().backward()
    assert (x.grad[1] == 0).all()


def test_joint_attention_reaches_every_position_in_one_layer():
    torch.manual_seed(0)
    grad = _input_gradient(_active(JointSelfAttention(16)), torch.randn(1, 16, 2, 3, 3, dtype=torch.float64),
                           (0, 0, 0))
    assert (grad != 0).all()


# -- discriminators ------------------------------------------------------------------------------------------------


def test_spatial_discriminator_sees_exactly_k_frames_drawn_differently_per_clip():
    torch.manual_seed(0)
    model = DVDGAN(TINY, VideoSpec(3, 8, 32, 9))
    d_s = model.spatial_discriminator
    seen = []
    hook = d_s.blocks.register_forward_hook(lambda module, inputs, out: seen.append(inputs[0].detach().clone()))
    b = 6
    # every frame of every clip is a constant image holding its (clip, frame) id, so the frames D_S sees are readable
    ids = torch.arange(b * 8, dtype=torch.float32).reshape(b, 1, 8, 1, 1)
    videos = ids.expand(b, 3, 8, 32, 32) / 100
    d_s(videos, torch.zeros(b, dtype=torch.long))
    hook.remove()
    frames = seen[0]  # (B * k, C, H, W)
    assert frames.shape == (b * 4, 3, 32, 32), "D_S must see k = 4 full-resolution frames per clip"
    picked = (frames[:, 0, 0, 0] * 100).round().long().reshape(b, 4)  # (B, k) ids
    for clip in range(b):
        frames_of_clip = picked[clip] - clip * 8
        assert ((frames_of_clip >= 0) & (frames_of_clip < 8)).all(), "D_S mixed frames of different clips"
        assert len(set(frames_of_clip.tolist())) == 4, "the k frames of a clip must be distinct"
    choices = {tuple(sorted((picked[clip] - clip * 8).tolist())) for clip in range(b)}
    assert len(choices) > 1, "every clip got the same frames: the draw must differ per clip"


def test_spatial_score_is_the_sum_of_per_frame_scores():
    torch.manual_seed(0)
    model = DVDGAN(TINY, VideoSpec(3, 8, 32, 9)).eval()
    d_s = model.spatial_discriminator
    videos, labels = torch.randn(2, 3, 8, 32, 32), torch.tensor([1, 4])
    index = d_s.select_frames(videos)
    d_s.select_frames = lambda v: index  # replay the draw to score the frames one by one
    total = d_s(videos, labels)
    frames = videos[torch.arange(2)[:, None], :, index]  # (B, k, C, H, W)
    per_frame = torch.stack([d_s.head(d_s.blocks(frames[:, j]), labels) for j in range(4)], dim=1)
    torch.testing.assert_close(total, per_frame.sum(1))


def test_temporal_discriminator_input_is_the_2x2_pooled_clip():
    torch.manual_seed(0)
    model = DVDGAN(TINY, VideoSpec(3, 8, 32, 9))
    d_t = model.temporal_discriminator
    seen = []
    hook = d_t.blocks3d.register_forward_hook(lambda module, inputs, out: seen.append(inputs[0].detach()))
    videos = torch.randn(2, 3, 8, 32, 32)
    d_t(videos, torch.tensor([0, 1]))
    hook.remove()
    expected = videos.reshape(2, 3, 8, 16, 2, 16, 2).mean(dim=(4, 6))  # every frame, every 2x2 pixel block averaged
    torch.testing.assert_close(seen[0], expected)
    # its first residual blocks are 3-D, the rest 2-D
    convs = [m for m in d_t.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))]
    kinds = ["3d" if isinstance(m, torch.nn.Conv3d) else "2d" for m in convs]
    assert kinds[: 3 * 2] == ["3d"] * 6 and set(kinds[6:]) == {"2d"}  # 2 blocks x (conv, conv, shortcut)


# -- generator -----------------------------------------------------------------------------------------------------


def test_class_conditional_bn_changes_output_when_only_the_label_changes():
    torch.manual_seed(0)
    model = DVDGAN(TINY, VideoSpec(3, 8, 32, 9)).eval()
    z = torch.randn(2, 16)
    a = model.generator(z, torch.tensor([0, 0]))
    b = model.generator(z, torch.tensor([5, 5]))
    assert not torch.allclose(a, b)
    # in the BN layer itself: same features, different conditioning vector (only the label part differs)
    bn = FrameConditionalBatchNorm(4, 3, 10).eval()
    x = torch.randn(2, 4, 3, 5, 5)
    c1, c2 = torch.zeros(2, 10), torch.zeros(2, 10)
    c2[:, -1] = 1.0
    assert not torch.allclose(bn(x, c1), bn(x, c2))


def test_batchnorm_statistics_are_per_frame():
    torch.manual_seed(0)
    bn = FrameConditionalBatchNorm(4, 3, 6).train()
    scale = torch.tensor([1.0, 10.0, 100.0])[None, None, :, None, None]
    offset = torch.tensor([0.0, 5.0, -30.0])[None, None, :, None, None]
    x = torch.randn(5, 4, 3, 6, 6) * scale + offset  # each frame its own mean and spread
    y = bn(x, torch.zeros(5, 6))  # zero conditioning: gain 1, bias 0, pure normalisation
    for t in range(3):
        frame = y[:, :, t]
        torch.testing.assert_close(frame.mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-5, rtol=0)
        torch.testing.assert_close(frame.var(dim=(0, 2, 3), unbiased=False), torch.ones(4), atol=1e-3, rtol=0)
    # running statistics are kept per (channel, frame): one momentum-0.1 step from (0, 1)
    torch.testing.assert_close(bn.running_mean, 0.1 * x.mean(dim=(0, 3, 4)))
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * x.var(dim=(0, 3, 4), unbiased=True))


def test_truncation_bounds_the_latents_and_changes_samples():
    model = DVDGAN(TINY, VideoSpec(3, 8, 32, 9))
    z = model.latents(256, truncation=0.5, generator=torch.Generator().manual_seed(0))
    assert z.abs().max() <= 0.5
    assert z.abs().max() > 0.4, "truncated values are redrawn, not clamped to zero"
    labels = torch.tensor([1, 2])
    a = model.sample(2, labels=labels, generator=torch.Generator().manual_seed(0), truncation=0.5)
    b = model.sample(2, labels=labels, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(a, b)


def test_unconditional_mode_has_no_embedding_and_no_projection():
    model = DVDGAN(TINY, VideoSpec(3, 8, 32, 0))
    assert model.generator.embed is None
    assert model.spatial_discriminator.head.embed is None and model.temporal_discriminator.head.embed is None
    assert model.sample(2).shape == (2, 3, 8, 32, 32)
    with pytest.raises(Exception, match="without labels"):
        model.sample(2, labels=torch.tensor([0, 1]))
    off = DVDGAN(DVDGANConfig(**{**TINY.__dict__, "class_conditional": False}), VideoSpec(3, 8, 32, 9))
    assert off.generator.embed is None and off.num_classes == 0


def test_v1_layout_has_one_gru_and_joint_attention_at_4x4():
    v1 = DVDGAN(DVDGANConfig(**{**TINY.__dict__, "rnn_per_group": False}), VideoSpec(3, 8, 32, 0))
    v2 = DVDGAN(TINY, VideoSpec(3, 8, 32, 0))
    grus = [type(g).__name__ for g in v1.generator.grus]
    assert grus == ["ConvGRUCell", "Identity", "Identity"] and v1.generator.first_attention is not None
    assert [type(g).__name__ for g in v2.generator.grus] == ["ConvGRUCell"] * 3
    assert v2.generator.grus[0].activation is torch.relu
    assert v1.sample(2).shape == (2, 3, 8, 32, 32)


@pytest.mark.parametrize("change,match", [
    ({"k_frames": 9}, "k_frames"), ({"gru_activation": "gelu"}, "gru_activation"),
    ({"temporal_3d_blocks": 5}, "temporal_3d_blocks"), ({"d_lr": 0.0}, "d_lr"), ({"ema_decay": 1.0}, "ema_decay"),
])
def test_bad_config_values_are_reported(change, match):
    with pytest.raises(ValueError, match=match):
        DVDGAN(DVDGANConfig(**{**TINY.__dict__, **change}), VideoSpec(3, 8, 32, 9))


# -- training discipline -------------------------------------------------------------------------------------------


class StepRecorder(Callback):
    """Records every optimizer step: which optimizer, and D's gradients at that moment."""

    def __init__(self):
        self.steps: list[tuple[str, list[torch.Tensor | None]]] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        kind = "G" if getattr(optimizer, "_optimizer", optimizer) is trainer.optimizers[0] else "D"
        d_params = [*pl_module.spatial_discriminator.parameters(), *pl_module.temporal_discriminator.parameters()]
        g_grads = [p.grad for p in pl_module.generator.parameters()]
        self.steps.append((kind, [None if p.grad is None else p.grad.clone() for p in d_params],
                           any(g is not None and g.abs().sum() > 0 for g in g_grads)))


def _fit_recording(tmp_path, steps: int = 2):
    from zoo.training import fit

    contract = TestDVDGAN()
    config = contract.config(tmp_path, f"train.max_steps={steps}", "train.checkpoint_every=1000")
    recorder = StepRecorder()
    result = fit(config, extra_callbacks=[recorder])
    return recorder, result


def test_two_d_steps_per_g_step_and_no_d_gradient_in_the_g_step(tmp_path):
    recorder, result = _fit_recording(tmp_path, steps=2)
    assert [kind for kind, _, _ in recorder.steps] == ["D", "D", "G"] * 2
    for i in range(0, 6, 3):
        last_d = recorder.steps[i + 1][1]
        at_g = recorder.steps[i + 2][1]
        assert all(g is not None for g in last_d), "the D step must give every D parameter a gradient"
        for before, after in zip(last_d, at_g):
            assert torch.equal(before, after), "the G step changed D's gradients"
        assert recorder.steps[i + 2][2], "the G step must give G gradients"


def test_sampling_uses_the_ema_generator():
    torch.manual_seed(0)
    model = DVDGAN(TINY, VideoSpec(3, 8, 32, 9))
    model.update_generator_ema()  # step 0 < ema_start: the EMA copies G
    a = model.sample(2, labels=torch.tensor([0, 1]), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in model.generator.parameters():
            p.add_(torch.randn_like(p))  # G moves; sampling must not see it
    b = model.sample(2, labels=torch.tensor([0, 1]), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    with torch.no_grad():
        for p in model.generator_ema.module.parameters():
            p.mul_(0.5)
    c = model.sample(2, labels=torch.tensor([0, 1]), generator=torch.Generator().manual_seed(0))
    assert not torch.equal(a, c), "samples must come from the EMA weights"


def test_ema_copies_before_its_start_step_and_averages_after():
    model = DVDGAN(DVDGANConfig(**{**TINY.__dict__, "ema_start": 3, "ema_decay": 0.5}), VideoSpec(3, 8, 32, 9))
    p = next(model.generator.parameters())
    ema = next(model.generator_ema.module.parameters())
    for step in range(5):
        model.iteration = step
        before = ema.detach().clone()
        with torch.no_grad():
            p.add_(1.0)
        model.update_generator_ema()
        expected = p.detach() if step < 3 else 0.5 * before + 0.5 * p.detach()
        torch.testing.assert_close(ema.detach(), expected)


# -- resume and DDP (the patterns of tests/test_resume.py and tests/test_ddp.py) --------------------------------------


def test_resume_is_exact(tmp_path):
    from tests.test_resume import config
    from zoo.training import fit

    # 20 videos / batch 4 = 5 steps per epoch: the interruption lands mid-epoch and the run crosses an epoch; the
    # EMA starts averaging (tiny: ema_start 2) before the interruption
    straight = fit(config("dvdgan", tmp_path / "straight", 7)).model
    fit(config("dvdgan", tmp_path / "resumed", 3))
    resumed = fit(config("dvdgan", tmp_path / "resumed", 7), resume=True).model
    assert straight.iteration == resumed.iteration == 7
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs between straight and resumed training"
    fresh = fit(config("dvdgan", tmp_path / "short", 3)).model
    assert any(not torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), resumed.state_dict().values()))


def test_two_process_gloo_ddp(tmp_path):
    import csv

    from tests.models.ddp import assert_identical_ranks, run_ddp_fit

    weights, local, run_dir = run_ddp_fit("dvdgan", tmp_path, 2)
    assert_identical_ranks(weights)  # G, both Ds, the EMA and the spectral-norm vectors: one model on both ranks
    assert local[0][0]["d_loss"] != local[1][0]["d_loss"], "ranks must see different data and noise"
    with open(run_dir / "metrics.csv") as f:
        logged = list(csv.DictReader(f))
    for step in range(2):
        for key in ("d_loss", "g_loss", "d_temporal"):
            expected = (local[0][step][key] + local[1][step][key]) / 2
            assert float(logged[step][f"train/{key}"]) == pytest.approx(expected, rel=1e-5), (step, key)


def test_ema_generator_weights_keep_spectral_norm_one():
    """Averaging SN's power-iteration vectors shrinks them; the EMA must still divide by the true largest singular
    value (else its weights blow up and eval samples saturate)."""
    torch.manual_seed(0)
    model = DVDGAN(DVDGANConfig(**{**TINY.__dict__, "ema_start": 0, "ema_decay": 0.5}), VideoSpec(3, 8, 32, 9))
    model.update_generator_ema()
    for step in range(1, 4):
        model.iteration = step
        with torch.no_grad():
            for p in model.generator.parameters():
                p.copy_(torch.randn_like(p))  # unrelated weights: their power-iteration vectors point elsewhere
        model.generator(torch.randn(2, 16), torch.tensor([0, 1]))  # training-mode forward: G's u, v iterate
        model.update_generator_ema()
    ema = model.generator_ema.module.eval()
    for name in ("affine", "out_conv"):
        weight = getattr(ema, name).weight.flatten(1)  # the normalized weight as eval mode computes it
        assert torch.linalg.matrix_norm(weight, ord=2) == pytest.approx(1.0, abs=0.05), name


@pytest.mark.slow
def test_dvdgan_learns_shapes(tmp_path):
    """Briefly trained on `shapes`, EMA samples get much closer to real clips than the initial network's."""
    from zoo.config import resolve_config
    from zoo.datasets.datamodule import VideoDataModule
    from zoo.training import build_model, fit

    sets = [f"train.run_dir={tmp_path}", "train.sample_every=0", "train.checkpoint_every=1000"]
    config = resolve_config("dvdgan", "shapes", DVDGANConfig, sets=sets)
    datamodule = VideoDataModule(config.data, config.train.batch_size, config.train.seed)
    torch.manual_seed(config.train.seed)
    initial = build_model(config, datamodule)
    trained = fit(config).model.cpu()
    real = torch.stack([datamodule.dataset[i]["video"] for i in range(128)])
    labels = torch.tensor([datamodule.dataset[i]["label"] for i in range(128)])

    def seeded():
        return torch.Generator().manual_seed(0)

    d_initial = fvd_shapes_distance(real, initial.sample(128, labels=labels, generator=seeded()))
    d_trained = fvd_shapes_distance(real, trained.sample(128, labels=labels, generator=seeded()))
    assert d_trained < 0.5 * d_initial, (d_initial, d_trained)
