"""One LightningDataModule for every model in the zoo."""

from __future__ import annotations

import atexit
import dataclasses
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from einops import rearrange
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from zoo.config import DataConfig
from zoo.datasets import build_dataset
from zoo.datasets.base import ItemKey, VideoDataset, to_video
from zoo.datasets.cliplist import ClipList, ClipListDataset, make_clip_list
from zoo.datasets.clips import read_failure_log
from zoo.datasets.transforms import draw_flip, flip_item
from zoo.errors import ZooError
from zoo.video_io import from_uint8

log = logging.getLogger(__name__)


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


class EpochReportingLoader(DataLoader):
    """A DataLoader that calls `on_epoch_end()` once the main process has received an epoch's last batch.

    Not when the sampler runs out: by then workers are still decoding the prefetched items, and their failures
    would be missed.
    """

    def __init__(self, *args, on_epoch_end: Callable[[], None], **kwargs):
        super().__init__(*args, **kwargs)
        self.on_epoch_end = on_epoch_end

    def __iter__(self) -> Iterator:
        yield from super().__iter__()
        self.on_epoch_end()


class RawItems(Dataset):
    """A dataset's raw items (`VideoDataset.raw_item`: clips as uint8) for loaders that convert whole batches.

    With `data.hflip`, a training key's clip is mirrored left-right with p = 0.5, one draw per clip from the data
    seed and the key's draw seed (`transforms.draw_flip`), so every dataset flips alike and a resumed run repeats the
    flips; its spatial keys (segmentation, flows, masks, keypoints, `condition`) mirror with it (`flip_item`).
    Evaluation clips are never flipped: StyleGAN-V's metrics build the real set with `xflip=False`
    (`src/metrics/metric_main.py`), so the flip leaves real statistics and the protocol fingerprint unchanged."""

    def __init__(self, dataset: VideoDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: ItemKey) -> dict[str, torch.Tensor]:
        item = self.dataset.raw_item(key)
        _, draw = VideoDataset.split_key(key)
        config = self.dataset.config
        if config.hflip and draw is not None and draw_flip(config.seed, draw):
            item = flip_item(item)
            if config.condition == "edges":  # Canny keeps the left of two tied pixels: mirrored edges are not the
                item["condition"] = self.dataset.condition_of(item)  # mirrored frames' edges, so detect them again
        return item


class WithImageFrames(RawItems):
    """Raw items plus `image_pixels`: K single frames from other, randomly chosen videos (joint image-video
    training, Ho et al. 2022, Sec. 3.2), uint8 `[K, H, W, C]`; `to_video` turns them into `image_frames`,
    float `[C, K, H, W]` in [-1, 1].

    Frames come from `frames`, a 1-frame view of the same data, so each costs one decoded frame rather than a clip.
    Its indices may differ from the clip dataset's (fewer videos are too short for one frame), so "another video"
    is decided by `item_name`.
    """

    def __init__(self, dataset: VideoDataset, frames: VideoDataset, count: int, seed: int):
        if len(frames) < 2:
            raise ValueError("joint image-video training needs at least 2 videos")
        super().__init__(dataset)
        self.frames, self.count, self.seed = frames, count, seed

    def __getitem__(self, key: ItemKey) -> dict[str, torch.Tensor]:
        item = super().__getitem__(key)
        index, draw = VideoDataset.split_key(key)
        rng = np.random.default_rng([self.seed, 7919, index if draw is None else draw])
        own = self.dataset.item_name(index)
        frames = []
        for other in rng.integers(len(self.frames), size=self.count):
            other = int(other)
            if self.frames.item_name(other) == own:  # any video but this one
                other = (other + 1) % len(self.frames)
            frames.append(self.frames.pixels((other, int(rng.integers(2**31))))[0])
        item["image_pixels"] = torch.stack(frames)
        return item


_TEMPORARY_FOLDERS: list[str] = []


def _temporary_folder() -> Path:
    """A new `zoo-data-*` folder in the system temp folder, removed when this process exits (DataLoader workers
    leave through `os._exit` and never remove it; spawned DDP ranks unpickle the module and create none)."""
    folder = tempfile.mkdtemp(prefix="zoo-data-")
    if not _TEMPORARY_FOLDERS:
        atexit.register(_remove_temporary_folders)
    _TEMPORARY_FOLDERS.append(folder)
    return Path(folder)


def _remove_temporary_folders() -> None:
    for folder in _TEMPORARY_FOLDERS:
        shutil.rmtree(folder, ignore_errors=True)


class WithIndependentFrames(Dataset):
    """Batches of another item dataset plus `count` single frames of independently drawn videos per batch
    (MoCoGAN's image discriminator sees real frames of random videos, not of the batch's clips: the official
    `ImageDataset`), uint8 `[count, H, W, C]` under `independent_pixels`.

    The loader fetches a whole batch through `__getitems__`, which draws `count` (video, frame) pairs from a seed
    derived from the batch's first key, so the frames depend only on the sampler's seed and position (exact resume,
    distinct per rank); each frame is decoded alone from `frames`, a 1-frame view of the data. The frames are spread
    over the batch's items and `collate` concatenates them.
    """

    def __init__(self, items: Dataset, frames: VideoDataset, count: int, seed: int):
        self.items, self.frames, self.count, self.seed = items, frames, count, seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: ItemKey) -> dict[str, torch.Tensor]:
        return self.items[key]

    def __getitems__(self, keys: list[ItemKey]) -> list[dict[str, torch.Tensor]]:
        index, draw = VideoDataset.split_key(keys[0])
        rng = np.random.default_rng([self.seed, 104723, index if draw is None else draw])
        videos = rng.integers(len(self.frames), size=self.count)
        draws = rng.integers(2**31, size=self.count)
        frames = [self.frames.pixels((int(v), int(d)))[0] for v, d in zip(videos, draws)]  # (H, W, C) each
        items = [self.items[key] for key in keys]
        empty = torch.empty((0, *frames[0].shape), dtype=torch.uint8)
        for i, item in enumerate(items):  # item i carries frames i, i + B, ...; `collate` puts them back in order
            share = frames[i :: len(items)]
            item["independent_pixels"] = torch.stack(share) if share else empty
        return items

    @staticmethod
    def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        shares = [item.pop("independent_pixels") for item in items]
        b = len(shares)
        frames = torch.stack([shares[k % b][k // b] for k in range(sum(len(x) for x in shares))])  # (count, H, W, C)
        batch = default_collate(items)
        batch["independent_pixels"] = frames
        return batch


class VideoDataModule(pl.LightningDataModule):
    """Training (and evaluation) loaders for any registered dataset, DDP-aware and exactly resumable.

    Loader workers ship raw items (clips as decoded, uint8 `[T, H, W, C]`): a quarter of the bytes of float clips
    and no float arithmetic in the workers. `on_after_batch_transfer` turns each batch into the float
    `[B, C, T, H, W]` `video` the models take, on the training device (`base.to_video`).

    Args:
        config: the data section of the experiment.
        batch_size: videos per rank per step.
        seed: data-order seed (the experiment seed).
        independent_frames: real frames of independently drawn videos added to every training batch as
            `independent_frames`, float `[N, C, H, W]`; None: as many as the model being fitted asks for through its
            `independent_frames_per_batch` attribute (0 when it has none).
    """

    def __init__(self, config: DataConfig, batch_size: int, seed: int = 0, clip_list: ClipList | str | None = None,
                 eval_clips: int = 2048, independent_frames: int | None = None):
        super().__init__()
        self.config, self.batch_size, self.seed = config, batch_size, seed
        self.independent_frames = independent_frames
        self._clip_list = ClipList.load(clip_list) if isinstance(clip_list, (str, Path)) else clip_list
        self.eval_clips = eval_clips
        self._dataset: VideoDataset | None = None
        # decode failures in any worker land here (one O_APPEND line each), reported at the end of every epoch
        self.failure_log = str(_temporary_folder() / "failures.jsonl")
        self.reported_failures: dict[str, str] = {}

    @property
    def dataset(self) -> VideoDataset:
        """The training dataset (built on first use; building is cheap, readers open lazily in workers)."""
        if self._dataset is None:
            self._dataset = build_dataset(self.config.name, self.config)
            if hasattr(self._dataset, "failure_log"):
                self._dataset.failure_log = self.failure_log
        return self._dataset

    @property
    def clip_list(self) -> ClipList:
        """The evaluation clips: the given list, or `eval_clips` drawn with the data seed."""
        if self._clip_list is None:
            self._clip_list = make_clip_list(self.dataset, min(self.eval_clips, len(self.dataset)), self.config.seed)
        return self._clip_list

    def report_failures(self) -> dict[str, str]:
        """Log the videos that failed to decode so far (all workers) and return them: path -> reason.

        Runs after every training epoch and when fitting ends (a run that stops at max_steps mid-epoch)."""
        failures = read_failure_log(self.failure_log)
        new = {k: v for k, v in failures.items() if k not in self.reported_failures}
        if new:
            epoch = self.trainer.current_epoch if self.trainer else -1
            log.warning("data epoch %d: %d videos failed to decode and were replaced (%d in total); first: %s: %s",
                        epoch, len(new), len(failures), *next(iter(new.items())))
        self.reported_failures = failures
        total = len(self.dataset)
        if failures and len(failures) > self.config.max_bad_fraction * max(total, 1):
            raise ZooError(f"{len(failures)} of {total} videos failed to decode (more than data.max_bad_fraction="
                           f"{self.config.max_bad_fraction}); run `zoo data check --decode`")
        return failures

    def _loader_options(self) -> dict:
        workers = self.config.num_workers
        return {"num_workers": workers, "pin_memory": torch.cuda.is_available(),
                "persistent_workers": workers > 0}

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    def _progress(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 0
        model = trainer.lightning_module
        epoch = trainer.current_epoch
        sampler_batches = len(self.dataset) // (self.loader_batch_size * trainer.world_size)
        return epoch, max(0, getattr(model, "iteration", 0) - epoch * sampler_batches)

    @property
    def loader_batch_size(self) -> int:
        """Clips per rank per step: `batch_size` times the real batches the fitted model asks for per step (its
        `real_batches_per_step`: a GAN drawing a fresh real batch for each of its `n_dis` D updates), else 1."""
        model = self.trainer.lightning_module if self.trainer else None
        return self.batch_size * int(getattr(model, "real_batches_per_step", 1))

    def _independent_frames(self) -> int:
        if self.independent_frames is not None:
            return self.independent_frames
        model = self.trainer.lightning_module if self.trainer else None
        return int(getattr(model, "independent_frames_per_batch", 0))

    def _one_frame_view(self) -> VideoDataset:
        """The training data as 1-frame clips: any single frame of a video, decoded alone."""
        one_frame = dataclasses.replace(self.config, frames=1, frame_stride=1, extra_frames=0, condition="none")
        return build_dataset(one_frame.name, one_frame)

    def train_dataloader(self) -> DataLoader:
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        dataset: Dataset = RawItems(self.dataset)
        collate = None
        if self.config.extra_frames > 0:
            dataset = WithImageFrames(self.dataset, self._one_frame_view(), self.config.extra_frames, self.seed)
        if self._independent_frames() > 0:
            dataset = WithIndependentFrames(dataset, self._one_frame_view(), self._independent_frames(), self.seed)
            collate = WithIndependentFrames.collate
        batch_size = self.loader_batch_size
        if batch_size > self.batch_size and len(self.dataset) < batch_size * world:
            raise ZooError(f"the model draws {batch_size // self.batch_size} real batches per step "
                           f"({batch_size} clips x {world} ranks) but the data has {len(self.dataset)} videos; "
                           "lower train.batch_size or set model.fresh_real_batches=false")
        sampler = ResumableSampler(len(self.dataset), batch_size, self.seed, rank, world, self._progress)
        # persistent workers are safe: the sampler lives in the main process and re-reads progress each epoch
        return EpochReportingLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True,
                                    collate_fn=collate, on_epoch_end=self.report_failures, **self._loader_options())

    def teardown(self, stage: str) -> None:
        if stage == "fit":
            self.report_failures()

    def eval_dataloader(self, batch_size: int | None = None, rank: int | None = None,
                        world_size: int | None = None) -> DataLoader:
        """This rank's share of the evaluation clip list, in list order (`cliplist.partition`: every clip once
        across ranks, none twice). Items: `pixels` uint8 [T, H, W, C], `label`, `position`."""
        if rank is None or world_size is None:
            rank, world_size = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        dataset = ClipListDataset(self.dataset, self.clip_list, rank, world_size)
        options = self._loader_options()
        options["persistent_workers"] = False  # evaluation runs once
        return DataLoader(dataset, batch_size=batch_size or self.batch_size, shuffle=False, drop_last=False,
                          **options)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        batch = dict(batch)
        frames = batch.pop("independent_pixels", None)
        batch = to_video(batch)
        if frames is not None:  # (N, H, W, C) uint8 -> (N, C, H, W) float in [-1, 1]
            batch["independent_frames"] = rearrange(from_uint8(frames[None])[0], "c n h w -> n c h w")
        return batch

    def real_batch(self, n: int) -> dict[str, torch.Tensor]:
        """The first `n` evaluation clips, stacked (for sample grids), with their `condition` on conditional data (a
        conditional model's grid translates those clips' conditions)."""
        items = [self.dataset[i] for i in range(min(n, len(self.dataset)))]
        keys = ("video", "label") + (("condition",) if self.config.condition != "none" else ())
        return {k: torch.stack([item[k] for item in items]) for k in keys}
