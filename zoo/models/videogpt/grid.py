"""Sample grids for the two VideoGPT stages, which need the real clips that the default grid only shows.

The trainer's grid callback (`zoo.training.SampleGrid`) puts real clips next to `model.sample(n)`. A VQ-VAE is not
generative, so its grid should show reconstructions of those real clips; a frame-conditioned prior needs the real
clips' first frames. Lightning lets a model's `configure_callbacks` replace a trainer callback by returning an
instance of a subclass of its type; `replace_sample_grid` builds that subclass from the type it finds on the trainer
(so that models never import the training module, which imports them).
"""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from zoo.video_io import side_by_side, write_video

Render = Callable[[dict[str, torch.Tensor], torch.Generator], torch.Tensor]


def replace_sample_grid(trainer: pl.Trainer | None, render: Render) -> list[Callback]:
    """A grid callback that shows `render(real_batch, generator)` next to the real clips, replacing the trainer's.

    Args:
        trainer: the trainer the model is attached to (None or no grid callback: nothing to replace).
        render: maps the real batch (`video` `[n, C, T, H, W]` in [-1, 1], `label` `[n]`) and a seeded generator to
            videos `[n, C, T, H, W]` in [-1, 1].

    Returns:
        `[callback]` for `configure_callbacks`, or `[]`.
    """
    existing = [cb for cb in (trainer.callbacks if trainer is not None else []) if type(cb).__name__ == "SampleGrid"]
    if not existing:
        return []
    original = existing[0]

    class RenderedSampleGrid(type(original)):
        def write(self, trainer: pl.Trainer, model) -> None:
            if not trainer.is_global_zero:
                return
            real = trainer.datamodule.real_batch(self.count)
            generator = torch.Generator().manual_seed(self.seed)  # the same noise at every step, as the default grid
            with model.evaluating():
                fake = render({k: v.to(model.device) for k, v in real.items()}, generator)
            write_video(side_by_side(real["video"], fake.cpu()), self.dir / f"step={model.iteration:07d}.gif")

    return [RenderedSampleGrid(original.every, original.count, original.dir, original.seed)]
