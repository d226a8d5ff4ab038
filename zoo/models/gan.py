"""What every GAN of the zoo shares: alternating discriminator and generator updates, and an EMA of the generator.

The step follows the usual recipe of the official GAN codebases (SNGAN / BigGAN / StyleGAN2 trainers): per training
step, `n_dis` discriminator updates, each with freshly drawn fakes, then one generator update with fresh fakes. Each
loss is computed *inside* its optimizer's toggle (Lightning's `toggle_optimizer` switches `requires_grad` off for the
parameters of every other optimizer), so the generator's backward pass flows through D's activations but never
accumulates gradients into D's weights, and vice versa.

The data layer serves one real batch per training step; every discriminator update of that step sees it (BigGAN
instead splits a larger loaded batch into `n_dis` chunks; a model that wants that overrides `discriminator_batches`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
from torch import nn

from zoo.models.base import VideoGenerativeModel, VideoSpec
from zoo.models.ema import EMA

Losses = dict[str, torch.Tensor]


class GANModel(VideoGenerativeModel):
    """Base of the zoo's GANs: manual optimization with `n_dis` D steps per G step, losses inside the toggle, G EMA.

    Subclasses build `self.generator` (the network to average, if any) and their discriminator(s), call
    `self.init_generator_ema(...)` when the paper samples from averaged weights, return `[G optimizer, D optimizers...]`
    from `configure_optimizers`, and implement

    * `discriminator_loss(batch, step) -> (loss, logs)`: one D update's loss (fakes drawn inside, detached);
    * `generator_loss(batch) -> (loss, logs)`: the G update's loss (fresh fakes).

    Models with several discriminators on separate optimizers (MoCoGAN) override `discriminator_update` and call
    `optimize` once per optimizer. `self.n_dis` is read from the config field `n_dis` when the config has one.
    """

    ddp_find_unused_parameters = True  # a D step never reaches G's parameters and vice versa
    progress_bar_losses: ClassVar[tuple[str, ...]] = ("d_loss", "g_loss")  # logged names shown on the progress bar

    def __init__(self, config: Any, spec: VideoSpec):
        super().__init__(config, spec)
        self.automatic_optimization = False
        self.generator_ema: EMA | None = None
        self.ema_start = 0

    @property
    def n_dis(self) -> int:
        return int(getattr(self.config, "n_dis", 1))

    # -- to implement -----------------------------------------------------------------------------------------------

    def discriminator_loss(self, batch: dict[str, torch.Tensor], step: int) -> tuple[torch.Tensor, Losses]:
        raise NotImplementedError

    def generator_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Losses]:
        raise NotImplementedError

    # -- the shared step --------------------------------------------------------------------------------------------

    def optimize(self, optimizer, loss_fn: Callable[[], tuple[torch.Tensor, Losses]]) -> Losses:
        """One update of `optimizer`: the loss is computed and back-propagated while only its parameters train."""
        self.toggle_optimizer(optimizer)
        try:
            loss, logs = loss_fn()
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            optimizer.step()
        finally:
            self.untoggle_optimizer(optimizer)
        return {name: value.detach() for name, value in logs.items()}

    def discriminator_batches(self, batch: dict[str, torch.Tensor]) -> Iterable[dict[str, torch.Tensor]]:
        """The real batch each of the `n_dis` discriminator updates sees (default: the step's batch every time)."""
        return [batch] * self.n_dis

    def discriminator_update(self, batch: dict[str, torch.Tensor], optimizers: list, step: int) -> Losses:
        """One discriminator update (default: one optimizer, `discriminator_loss`)."""
        return self.optimize(optimizers[0], lambda: self.discriminator_loss(batch, step))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        g_optimizer, *d_optimizers = self.optimizers()
        logs: Losses = {}
        for step, d_batch in enumerate(self.discriminator_batches(batch)):
            logs.update(self.discriminator_update(d_batch, d_optimizers, step))
        logs.update(self.optimize(g_optimizer, lambda: self.generator_loss(batch)))
        self.update_generator_ema()
        self.log_losses(logs, prog_bar=self.progress_bar_losses)

    # -- generator EMA ------------------------------------------------------------------------------------------------

    def init_generator_ema(self, decay: float, start: int = 0) -> None:
        """Keep an EMA of `self.generator` (sampling uses it); before step `start` the EMA copies the weights."""
        self.generator_ema = EMA(self.generator, decay)
        self.ema_start = start

    @torch.no_grad()
    def update_generator_ema(self) -> None:
        if self.generator_ema is None:
            return
        if self.iteration < self.ema_start:
            self.generator_ema.averaged.n_averaged.zero_()  # the next update copies instead of averaging
        self.generator_ema.update(self.generator)

    @property
    def sampling_generator(self) -> nn.Module:
        """The network `sample()` uses: the EMA of G where the model keeps one, else G itself."""
        return self.generator_ema.module if self.generator_ema is not None else self.generator
