"""Learning-rate schedules against their closed forms at step 0 and later steps. VideoGPT's prior: cosine annealing
to 0 over `cosine_steps` (default: the run's max_steps), lr_t = lr * (1 + cos(pi * min(t, T) / T)) / 2.

Already checked by value elsewhere: TGANv2's linear decay (test_tgan2.py), DVD-GAN's EMA start
(test_dvdgan.py), the diffusion EMA warm-up (test_video_diffusion.py), the VQ-VAE codebook EMA (test_videogpt.py),
StyleGAN-V's EMA, ADA and lazy-regularization compensation (test_stylegan_v_by_hand.py)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from tests.conftest import REPO
from zoo.config import resolve_config
from zoo.models.base import VideoSpec
from zoo.models.videogpt.gpt import VideoGPT, VideoGPTConfig
from zoo.models.videogpt.vqvae import VQVAEConfig
from zoo.training import fit


@pytest.fixture(scope="module")
def vqvae_ckpt(tmp_path_factory) -> str:
    run_dir = tmp_path_factory.mktemp("schedules-vqvae")
    sets = ["train.max_steps=1", "train.checkpoint_every=1", "train.sample_every=0", "train.batch_size=4",
            f"train.run_dir={run_dir}"]
    fit(resolve_config("videogpt_vqvae", "shapes", VQVAEConfig, [REPO / "experiments/videogpt_vqvae/tiny.yaml"], sets))
    return str(run_dir / "checkpoints" / "last.ckpt")


def prior(vqvae_ckpt: str, max_steps: int, **changes) -> VideoGPT:
    config = resolve_config("videogpt", "shapes", VideoGPTConfig, [REPO / "experiments/videogpt/tiny.yaml"], []).model
    model = VideoGPT(dataclasses.replace(config, vqvae_ckpt=vqvae_ckpt, **changes), VideoSpec(3, 8, 32, 9))
    model.experiment = {"train": {"max_steps": max_steps}}
    return model


def learning_rates(model: VideoGPT, steps: list[int]) -> list[float]:
    """The scheduler's learning rate after `t` scheduler steps (Lightning steps it once per optimizer step)."""
    config = model.configure_optimizers()
    optimizer, schedule = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["interval"] == "step"
    rates, done = [], 0
    for t in steps:
        for _ in range(t - done):
            optimizer.step()
            schedule.step()
        done = t
        rates.append(optimizer.param_groups[0]["lr"])
    return rates


def cosine(lr: float, t: int, total: int) -> float:
    return lr * (1 + math.cos(math.pi * min(t, total) / total)) / 2


@pytest.mark.parametrize("cosine_steps, max_steps", [(8, 1000), (0, 8)])
def test_videogpt_prior_lr_is_cosine_annealed_to_zero(vqvae_ckpt, cosine_steps, max_steps):
    model = prior(vqvae_ckpt, max_steps, lr=0.003, cosine_steps=cosine_steps)
    steps = [0, 1, 2, 4, 6, 8, 11]
    expected = [cosine(0.003, t, 8) for t in steps]  # 3e-3, ..., 1.5e-3 at the half, 0 from step 8 on
    assert learning_rates(model, steps) == pytest.approx(expected, abs=1e-12)
    assert expected[3] == pytest.approx(0.0015) and expected[-1] == 0.0
