"""Synthetic conditional batches in the format of the `shapes` data with `data.condition=segmentation` (video,
label, condition, flow_back, flow_back_valid, segmentation), for vid2vid tests that need no dataset: a square of one
class moving by a known whole-pixel step on a background class, so the true backward flow is exact."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from einops import rearrange
from torch.utils.data import DataLoader

from zoo.models.base import VideoSpec


def moving_squares(n: int, frames: int, size: int, classes: int = 3, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """`n` items: class 1 square (side size/4) moving (dx, dy) in {-1, 0, 1}^2 pixels a frame over class 0; frames
    are the class colours; flow_back is -(dx, dy) inside the square at frame k+1 and 0 elsewhere (valid everywhere but
    the pixels the square uncovers)."""
    g = torch.Generator().manual_seed(seed)
    colours = torch.tensor([[-0.8, -0.8, -0.8], [0.9, 0.2, -0.5], [0.1, 0.8, 0.3]])[:classes]
    side = max(2, size // 4)
    items = []
    for i in range(n):
        dx, dy = (int(v) for v in torch.randint(-1, 2, (2,), generator=g))
        margin = frames - 1  # the square stays inside the frame for any direction
        x0, y0 = (int(v) for v in torch.randint(margin, size - side - margin + 1, (2,), generator=g))
        seg = torch.zeros(frames, size, size, dtype=torch.long)
        for t in range(frames):
            seg[t, y0 + dy * t:y0 + dy * t + side, x0 + dx * t:x0 + dx * t + side] = 1
        video = rearrange(colours[seg], "t h w c -> c t h w")
        condition = rearrange(torch.nn.functional.one_hot(seg, classes).float(), "t h w c -> c t h w")
        flow = torch.zeros(2, frames - 1, size, size)
        inside = seg[1:] == 1
        flow[0][inside], flow[1][inside] = -float(dx), -float(dy)
        valid = ~((seg[:-1] == 1) & (seg[1:] == 0))
        items.append({"video": video, "label": torch.tensor(i % 2), "condition": condition, "flow_back": flow,
                      "flow_back_valid": valid, "segmentation": seg})
    return items


def spec_for(frames: int, size: int, classes: int = 3) -> VideoSpec:
    return VideoSpec(3, frames, size, 2, "segmentation", classes)


def loader(items, batch_size: int = 2, drop: tuple[str, ...] = ()) -> DataLoader:
    items = [{k: v for k, v in item.items() if k not in drop} for item in items]
    return DataLoader(items, batch_size=batch_size, shuffle=False)


def fit_steps(model: pl.LightningModule, data: DataLoader, steps: int) -> None:
    """`steps` training steps with a bare Trainer (no logger, no checkpoints); `model.iteration` counts them."""

    class Count(pl.Callback):  # Lightning's max_steps counts optimizer steps (vid2vid takes several per batch)
        def on_train_batch_end(self, trainer, pl_module, *args):
            pl_module.iteration += 1
            trainer.should_stop = pl_module.iteration >= steps

    trainer = pl.Trainer(max_epochs=1000, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[Count()])
    trainer.fit(model, data)


def one_thread():
    """Module fixture body: vid2vid's tiny networks are many small ops, which one intra-op thread runs several times
    faster than two on a shared CPU (thread hand-offs dominate); the previous setting is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
