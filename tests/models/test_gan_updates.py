"""The GAN base's update schemes on a model small enough to compute by hand: the simultaneous update (TGANv2's
`DiracUpdater`: G's gradient at the pre-update D, D's from the same pre-update fakes) against the alternation, and
fresh real batches per D update served by the data layer (BigGAN / DVD-GAN), exactly resumable."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from zoo.config import DataConfig
from zoo.datasets.datamodule import VideoDataModule
from zoo.errors import ZooError
from zoo.models.base import VideoSpec
from zoo.models.gan import GANModel


@dataclass
class ToyConfig:
    n_dis: int = 1
    simultaneous_update: bool = False
    fresh_real_batches: bool = False


class ToyGAN(GANModel):
    """fake = a * 1, D(x) = w * mean(x); G loss -D(fake), D loss D(fake) - D(real); plain SGD with lr 1, so one step
    is `a += w` (G) and `w -= a - mean(real)` (D), each at the weights its gradient was taken at."""

    config_class = ToyConfig

    def __init__(self, config: ToyConfig, a: float = 0.3, w: float = 0.7):
        super().__init__(config, VideoSpec(1, 1, 1, 0))
        self.generator = nn.Linear(1, 1, bias=False)
        self.discriminator = nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            self.generator.weight.fill_(a)
            self.discriminator.weight.fill_(w)
        self.real_means: list[float] = []  # mean real pixel each D update saw
        self.real_batches: list[torch.Tensor] = []

    def sample(self, n, labels=None, generator=None, frames=None):
        return self.generator.weight.expand(n, 1, 1, 1, 1)

    def configure_optimizers(self):
        return [torch.optim.SGD(self.generator.parameters(), lr=1.0),
                torch.optim.SGD(self.discriminator.parameters(), lr=1.0)]

    def draw_fakes(self, batch):
        return self.generator(torch.ones(1, 1))

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator(x.reshape(-1, 1).mean(0, keepdim=True))

    def discriminator_loss(self, batch, step, fakes=None):
        real = batch["video"]
        self.real_means.append(float(real.mean()))
        self.real_batches.append(real.detach().clone())
        fake = (fakes if fakes is not None else self.draw_fakes(batch)).detach()
        loss = (self.score(fake) - self.score(real)).sum()
        return loss, {"d_loss": loss}

    def generator_loss(self, batch, fakes=None):
        loss = -self.score(fakes if fakes is not None else self.draw_fakes(batch)).sum()
        return loss, {"g_loss": loss}


def one_step(model: ToyGAN, real: torch.Tensor) -> tuple[float, float]:
    loader = DataLoader([{"video": real}], batch_size=None)  # one batch, as is
    trainer = pl.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, train_dataloaders=loader)
    return float(model.generator.weight), float(model.discriminator.weight)


def test_simultaneous_update_takes_g_gradient_at_the_pre_update_discriminator():
    a0, w0, real = 0.3, 0.7, torch.full((1, 1, 1, 1, 1), 0.5)
    a1, w1 = one_step(ToyGAN(ToyConfig(simultaneous_update=True), a0, w0), real)
    assert abs(a1 - (a0 + w0)) < 1e-6, "G's gradient must be -w0: taken at the D before this step's update"
    assert abs(w1 - (w0 - (a0 - 0.5))) < 1e-6, "D's gradient must use the pre-update fakes a0"
    # the alternation (D first, then G against the new D) is a different update
    a_alt, w_alt = one_step(ToyGAN(ToyConfig(), a0, w0), real)
    assert abs(w_alt - w1) < 1e-6 and abs(a_alt - (a0 + w_alt)) < 1e-6 and abs(a_alt - a1) > 0.1


def shapes_data(batch_size: int) -> VideoDataModule:
    config = DataConfig(name="shapes", frames=2, resolution=8, num_videos=32, num_workers=0)
    return VideoDataModule(config, batch_size=batch_size, seed=3)


def fit_steps(model: ToyGAN, steps: int, batch_size: int = 2) -> ToyGAN:
    last = model.iteration + steps

    class Count(pl.Callback):  # the zoo's step counting (Lightning's max_steps counts optimizer steps)
        def on_train_batch_end(self, trainer, pl_module, *args):
            pl_module.iteration += 1
            trainer.should_stop = pl_module.iteration >= last

    trainer = pl.Trainer(max_steps=-1, max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[Count()])
    trainer.fit(model, datamodule=shapes_data(batch_size))
    return model


def test_fresh_real_batch_for_every_discriminator_update():
    """With fresh_real_batches, the data layer loads n_dis batches a step and each D update sees its own, distinct
    clips; without, both D updates of a step see the same batch."""
    fresh = fit_steps(ToyGAN(ToyConfig(n_dis=2, fresh_real_batches=True)), steps=2)
    assert fresh.real_batches_per_step == 2
    assert [len(b) for b in fresh.real_batches] == [2, 2, 2, 2], "each D update: batch_size clips"
    for b in range(4):
        for c in range(b):
            assert not torch.equal(fresh.real_batches[b], fresh.real_batches[c]), "every D update: new clips"
    reused = fit_steps(ToyGAN(ToyConfig(n_dis=2)), steps=1)
    assert torch.equal(reused.real_batches[0], reused.real_batches[1])


def test_fresh_real_batches_resume_exactly():
    """A run resumed at step 1 serves the same two real batches at step 1 as the straight run."""
    straight = fit_steps(ToyGAN(ToyConfig(n_dis=2, fresh_real_batches=True)), steps=2)
    resumed = ToyGAN(ToyConfig(n_dis=2, fresh_real_batches=True))
    resumed.iteration = 1  # what a checkpoint of step 1 restores; the sampler skips the consumed batches
    fit_steps(resumed, steps=1)
    assert all(torch.equal(x, y) for x, y in zip(resumed.real_batches, straight.real_batches[2:]))


def test_too_few_videos_for_the_fresh_batches_is_a_one_line_error():
    with pytest.raises(ZooError, match="fresh_real_batches"):
        fit_steps(ToyGAN(ToyConfig(n_dis=2, fresh_real_batches=True)), steps=1, batch_size=20)  # 40 > 32 videos
