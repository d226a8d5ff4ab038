"""One LightningDataModule for every model in the zoo."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from zoo.config import DataConfig
from zoo.datasets import build_dataset
from zoo.datasets.base import ItemKey, VideoDataset


class ResumableSampler(Sampler[tuple[int, int]]):
    """Shuffled, rank-sharded training sampler that can restart in the middle of an epoch.

    Epoch `e` is a permutation seeded by `(seed, e)`, split across ranks like `DistributedSampler` (rank r takes
    positions r, r + W, ...; the tail is dropped so every rank sees the same number of items). Each item is
    yielded as `(index, draw_seed)` with a draw seed unique to (seed, epoch, position), so a dataset's random choices
    (clip start) depend on nothing else. `__iter__` asks `progress()` for `(epoch, batches already consumed in
    it)` and skips those, so a resumed run sees exactly the data the uninterrupted run would have seen.

    Args:
        length: dataset size.
        batch_size: items per rank per step.
        seed: data-order seed.
        rank, world_size: this process's place among the DDP ranks.
        progress: returns `(epoch, batches consumed in that epoch)`; default `(0, 0)`.
    """

    def __init__(
        self,
        length: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        progress: Callable[[], tuple[int, int]] | None = None,
    ):
        self.length, self.batch_size, self.seed = length, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.progress = progress or (lambda: (0, 0))
        self.batches_per_epoch = length // (batch_size * world_size)
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"dataset of {length} items is smaller than one global batch ({batch_size} x {world_size} ranks)"
            )

    def __len__(self) -> int:
        return self.batches_per_epoch * self.batch_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, consumed = self.progress()
        order = np.random.default_rng([self.seed, epoch]).permutation(self.length)
        per_epoch = len(self)
        base = epoch * per_epoch * self.world_size
        for k in range(consumed * self.batch_size, per_epoch):
            position = k * self.world_size + self.rank
            yield int(order[position]), base + position


class WithImageFrames(Dataset):
    """Adds `image_frames`: K single frames from other, randomly chosen videos (joint image-video training,
    Ho et al. 2022, Sec. 3.2). float `[C, K, H, W]` in [-1, 1]."""

    def __init__(self, dataset: VideoDataset, count: int, seed: int):
        self.dataset, self.count, self.seed = dataset, count, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: ItemKey) -> dict[str, torch.Tensor]:
        item = self.dataset[key]
        index, draw = VideoDataset.split_key(key)
        rng = np.random.default_rng([self.seed, 7919, index if draw is None else draw])
        others = rng.choice(len(self.dataset) - 1, size=self.count, replace=len(self.dataset) - 1 < self.count)
        frames = []
        for other in others:
            other = int(other) + (other >= index)  # any video but this one
            clip = self.dataset[(other, int(rng.integers(2**31)))]["video"]
            frames.append(clip[:, int(rng.integers(clip.shape[1]))])
        item["image_frames"] = torch.stack(frames, dim=1)
        return item


class VideoDataModule(pl.LightningDataModule):
    """Training (and evaluation) loaders for any registered dataset, DDP-aware and exactly resumable.

    Args:
        config: the data section of the experiment.
        batch_size: videos per rank per step.
        seed: data-order seed (the experiment seed).
    """

    def __init__(self, config: DataConfig, batch_size: int, seed: int = 0):
        super().__init__()
        self.config, self.batch_size, self.seed = config, batch_size, seed
        self._dataset: VideoDataset | None = None

    @property
    def dataset(self) -> VideoDataset:
        """The training dataset (built on first use; building is cheap, readers open lazily in workers)."""
        if self._dataset is None:
            self._dataset = build_dataset(self.config.name, self.config)
        return self._dataset

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    def _progress(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 0
        model = trainer.lightning_module
        epoch = trainer.current_epoch
        sampler_batches = len(self.dataset) // (self.batch_size * trainer.world_size)
        return epoch, max(0, getattr(model, "iteration", 0) - epoch * sampler_batches)

    def train_dataloader(self) -> DataLoader:
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        dataset: Dataset = self.dataset
        if self.config.extra_frames > 0:
            dataset = WithImageFrames(self.dataset, self.config.extra_frames, self.seed)
        sampler = ResumableSampler(len(self.dataset), self.batch_size, self.seed, rank, world, self._progress)
        workers = self.config.num_workers
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=False,  # the sampler re-reads progress each epoch; workers are cheap to start
            drop_last=True,
        )

    def real_batch(self, n: int) -> dict[str, torch.Tensor]:
        """The first `n` evaluation clips, stacked (for sample grids)."""
        items = [self.dataset[i] for i in range(min(n, len(self.dataset)))]
        return {k: torch.stack([item[k] for item in items]) for k in ("video", "label")}
