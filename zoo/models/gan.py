"""What every GAN of the zoo shares: alternating discriminator and generator updates, and an EMA of the generator.

The step follows the usual recipe of the official GAN codebases (SNGAN / BigGAN / StyleGAN2 trainers): per training
step, `n_dis` discriminator updates, each with freshly drawn fakes, then one generator update with fresh fakes. Each
loss is computed *inside* its optimizer's toggle (Lightning's `toggle_optimizer` switches `requires_grad` off for the
parameters of every other optimizer), so the generator's backward pass flows through D's activations but never
accumulates gradients into D's weights, and vice versa.

Real batches. By default the data layer serves one real batch per training step and every discriminator update of
the step sees it. A model whose config sets `fresh_real_batches` (BigGAN / DVD-GAN, TGANv2 with n_dis > 1) asks the
data layer for `n_dis` batches per step (`real_batches_per_step`, read by `VideoDataModule`): the step's loaded batch
is then `n_dis` times larger, D update k sees chunk k, and the G update chunk 0 (G uses no real pixels, only labels).
The data stream stays a function of the step, so resume is exact.

Simultaneous update. With `simultaneous_update` in the config (TGANv2's official `DiracUpdater`), the first update of
a step computes G's gradient and D's gradient from the same fakes, both at the pre-update weights, and only then steps
both optimizers; the remaining `n_dis - 1` D updates follow as usual. A model offering it implements `draw_fakes`
and accepts `fakes=` in both losses.
"""

from __future__ import annotations

from collections.abc import Callable
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

    @property
    def real_batches_per_step(self) -> int:
        """Real batches the data layer serves per step: `n_dis` with `fresh_real_batches`, else 1."""
        return self.n_dis if getattr(self.config, "fresh_real_batches", False) else 1

    @property
    def simultaneous_update(self) -> bool:
        return bool(getattr(self.config, "simultaneous_update", False))

    # -- to implement -----------------------------------------------------------------------------------------------

    def discriminator_loss(self, batch: dict[str, torch.Tensor], step: int) -> tuple[torch.Tensor, Losses]:
        raise NotImplementedError

    def generator_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Losses]:
        raise NotImplementedError

    def draw_fakes(self, batch: dict[str, torch.Tensor]) -> Any:
        """Fakes for `batch` with the graph to G (simultaneous update only); both losses accept them as `fakes=`."""
        raise NotImplementedError(f"{type(self).__name__} does not implement the simultaneous update")

    # -- the shared step --------------------------------------------------------------------------------------------

    def optimize(self, optimizer, loss_fn: Callable[[], tuple[torch.Tensor, Losses]]) -> Losses:
        """One update of `optimizer`: the loss is computed and back-propagated while only its parameters train."""
        logs = self.backward_only(optimizer, loss_fn)
        optimizer.step()
        return logs

    def backward_only(self, optimizer, loss_fn: Callable[[], tuple[torch.Tensor, Losses]]) -> Losses:
        """`optimize` without the step: the gradient of `optimizer`'s parameters is left in `.grad`."""
        self.toggle_optimizer(optimizer)
        try:
            loss, logs = loss_fn()
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
        finally:
            self.untoggle_optimizer(optimizer)
        return {name: value.detach() for name, value in logs.items()}

    def discriminator_batches(self, batch: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """The real batch each of the `n_dis` discriminator updates sees: the step's batch every time, or, with
        `fresh_real_batches`, its `n_dis` equal chunks (the data layer loaded `n_dis` batches)."""
        chunks = self.real_batches_per_step
        if chunks == 1:
            return [batch] * self.n_dis
        size = len(batch["video"])
        if size % chunks:
            raise ValueError(f"a step's batch of {size} clips does not split into {chunks} real batches")
        per = size // chunks
        return [{k: v[i * per:(i + 1) * per] if isinstance(v, torch.Tensor) and len(v) == size else v
                 for k, v in batch.items()} for i in range(chunks)]

    def discriminator_update(self, batch: dict[str, torch.Tensor], optimizers: list, step: int) -> Losses:
        """One discriminator update (default: one optimizer, `discriminator_loss`)."""
        return self.optimize(optimizers[0], lambda: self.discriminator_loss(batch, step))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        g_optimizer, *d_optimizers = self.optimizers()
        d_batches = self.discriminator_batches(batch)
        logs: Losses = {}
        if self.simultaneous_update:
            logs.update(self.simultaneous_step(d_batches[0], g_optimizer, d_optimizers[0]))
            for step, d_batch in enumerate(d_batches[1:], start=1):
                logs.update(self.discriminator_update(d_batch, d_optimizers, step))
        else:
            for step, d_batch in enumerate(d_batches):
                logs.update(self.discriminator_update(d_batch, d_optimizers, step))
            logs.update(self.optimize(g_optimizer, lambda: self.generator_loss(d_batches[0])))
        self.update_generator_ema()
        self.log_losses(logs, prog_bar=self.progress_bar_losses)

    def simultaneous_step(self, batch: dict[str, torch.Tensor], g_optimizer, d_optimizer) -> Losses:
        """G's and D's gradients from the same fakes at the pre-update weights, then both steps (`DiracUpdater`)."""
        shared: dict[str, Any] = {}

        def generator_loss():
            shared["fakes"] = self.draw_fakes(batch)
            return self.generator_loss(batch, fakes=shared["fakes"])

        logs = self.backward_only(g_optimizer, generator_loss)
        logs.update(self.backward_only(d_optimizer, lambda: self.discriminator_loss(batch, 0, fakes=shared["fakes"])))
        g_optimizer.step()
        d_optimizer.step()
        return logs

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
