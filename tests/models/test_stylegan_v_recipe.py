"""StyleGAN-V's training recipe against the official run (universome/stylegan-v): kimg counted in frames, the EMA and
ADA schedules of a fresh run, the 2-layer time-gap mapping network, x-flipped data, the augmentations' exact form."""

from __future__ import annotations

import math

import torch

from zoo.config import resolve_config
from zoo.models.base import VideoSpec
from zoo.models.stylegan_v import StyleGANV, StyleGANVConfig, training_steps_for_kimg
from zoo.models.video_augment import VideoAugment, reflect_shift

torch.set_num_threads(1)

TINY = dict(z_dim=16, w_dim=16, channel_base=256, channel_max=32, motion_z_dim=16, motion_v_dim=16, motion_kernel=3,
            motion_z_distance=4, time_enc_dim=8, min_period=4, max_period=64, max_num_frames=64,
            time_gap_embed_dim=8, sample_frames=8, max_distance=8)


def ucf101():
    return resolve_config("stylegan_v", "ucf101", StyleGANVConfig)


def test_training_length_counts_frames_as_the_official_loop():
    """25,000 kimg at batch 64 with 3 frames a clip: the official loop stops at cur_nimg >= 25e6 with
    cur_nimg += 64 * 3 a step, i.e. after 130,209 steps; the ucf101 recipe trains exactly that long."""
    assert training_steps_for_kimg(25_000, 64, 3) == 130_209
    steps, nimg = 0, 0
    while nimg < 25_000 * 1000:  # the official loop, literally
        nimg += 64 * 3
        steps += 1
    assert steps == 130_209
    config = ucf101()
    assert config.train.max_steps == training_steps_for_kimg(25_000, config.train.batch_size, config.data.frames)


def test_ucf101_recipe_is_the_official_run():
    config = ucf101()
    assert config.model.d_mapping_layers == 2, "official train.py: D_kwargs.mapping_kwargs.num_layers = 2"
    assert config.data.hflip, "configs/training/base.yaml: mirror: true"
    assert config.model.ema_rampup == 0 and config.model.ada_kimg == 100, "a fresh official run: no ramp-up, ada 100"
    assert math.isclose(config.model.ema_kimg, 64 * 10 / 32 / 1)  # spec.ema = mb * 10 / 32 (kimg)


def test_default_discriminator_maps_time_gaps_with_two_layers():
    model = StyleGANV(StyleGANVConfig(**TINY), VideoSpec(3, 3, 32, 0))
    assert len(model.discriminator.mapping.layers) == 2


def test_ema_decay_follows_the_official_closed_form():
    """beta = 0.5 ** (B / min(ema_kimg * 1000, cur_nimg * ema_rampup)), cur_nimg = step * B * frames (frames, before
    this step's increment); without ramp-up beta = 0.5 ** (B / (ema_kimg * 1000)) at every step."""
    batch, frames = 64, 3
    ramped = StyleGANV(StyleGANVConfig(**TINY, ema_kimg=20.0, ema_rampup=0.05), VideoSpec(3, frames, 32, 0))
    for step in (0, 1, 10, 1000, 10_000):
        ramped.iteration = step
        half_life = min(20_000, step * batch * frames * 0.05)
        assert math.isclose(ramped.ema_beta(batch), 0.5 ** (batch / max(half_life, 1e-8)), rel_tol=1e-12)
    assert ramped.frames_seen(10, batch) == 10 * batch * frames
    plain = StyleGANV(StyleGANVConfig(**TINY, ema_kimg=20.0), VideoSpec(3, frames, 32, 0))
    plain.iteration = 0
    assert math.isclose(plain.ema_beta(batch), 0.5 ** (batch / 20_000), rel_tol=1e-12)


def test_generator_times_respect_max_num_frames():
    """Official: the generator's clip length is min(video length, max_num_frames), so times stay below it."""
    model = StyleGANV(StyleGANVConfig(**TINY), VideoSpec(3, 3, 32, 0))
    torch.manual_seed(0)
    t = model.fake_times(torch.zeros(64, 3), torch.full((64,), 10_000.0))
    assert t.max() <= model.config.max_num_frames - 1


def test_contrast_scales_about_zero_and_translation_reflects():
    """Official `augment.py`: contrast `scale3d(c, c, c)` about 0 (a grey clip's value is scaled; about its own
    mean it would not change), and the integer translation's border is filled by reflection (no wrap-around)."""
    augment = VideoAugment(translate=0.0, brightness=0.0, contrast=0.5, saturation=0.0)
    torch.manual_seed(1)
    out = augment(torch.full((4, 3, 2, 8, 8), 0.5), 1.0)  # p = 1: every clip's contrast changes
    scale = out.flatten(1) / 0.5
    assert torch.allclose(scale, scale[:, :1].expand_as(scale)) and (scale[:, 0] - 1).abs().min() > 1e-3
    clip = torch.arange(5.0).reshape(1, 1, 1, 5).expand(1, 2, 1, 5)
    shifted = reflect_shift(clip, 0, 2)
    assert shifted[0, 0, 0].tolist() == [2.0, 1.0, 0.0, 1.0, 2.0]
    assert torch.equal(reflect_shift(clip, 0, -1)[0, 0, 0], torch.tensor([1.0, 2.0, 3.0, 4.0, 3.0]))
