"""The shared core's first step: the real clips and the generated videos, as uint8 batches `[B, T, H, W, C]`."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from zoo.config import DataConfig, update_dataclass
from zoo.errors import ZooError
from zoo.evaluation.request import EvalRequest
from zoo.metrics.feature_metric import as_pixels
from zoo.metrics.presets import Preset


def _batches(positions: list[int], size: int) -> list[list[int]]:
    return [positions[i : i + size] for i in range(0, len(positions), size)]


def progress(total: int, desc: str, rank: int):
    return tqdm(total=total, desc=desc, unit="video", disable=rank != 0, dynamic_ncols=True)


def real_clips(config: DataConfig, request: EvalRequest, num: int):
    """`(dataset, clip list, fingerprint)` of the real side; the list holds at least `num` clips."""
    from zoo.datasets import build_dataset
    from zoo.datasets.cliplist import ClipList, make_clip_list

    dataset = build_dataset(config.name, config)
    try:
        clip_list = ClipList.load(request.clip_list) if request.clip_list else make_clip_list(dataset, num, config.seed)
    except ZooError as e:  # the data layer's hint names `zoo data cliplist --num`; here the flag is --num-real
        raise ZooError(str(e).replace("(--num)", "(--num-real)")) from None
    if len(clip_list.clips) < num:
        raise ZooError(f"the clip list has {len(clip_list.clips)} clips but the protocol needs {num}; "
                       f"pass --num-real {len(clip_list.clips)}")
    return dataset, clip_list, clip_list.fingerprint


def real_loader(dataset, clip_list, num: int, rank: int, world: int, batch_size: int, workers: int) -> DataLoader:
    """This rank's share of the first `num` clips of the list, decoded by `workers` DataLoader processes, in list
    order (the order features are gathered and cached in)."""
    from zoo.datasets.cliplist import ClipListDataset

    return DataLoader(ClipListDataset(dataset, clip_list, rank, world, num=num), batch_size=batch_size,
                      shuffle=False, num_workers=workers)


class _FirstClips(Dataset):
    """Clip 0 (starting at frame 0) of the videos `indices` of a dataset: generated videos are scored from their
    first frame (StyleGAN-V). Items: uint8 `[T, H, W, C]`."""

    def __init__(self, dataset, indices: list[int]):
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> torch.Tensor:
        return self.dataset.pixels_at(self.indices[position], 0)


class GeneratedFolder:
    """`--fake-dir`: a folder of generated videos, read with the data layer's bad-file policy (`zoo.datasets.clips`).
    Files unreadable when indexed are left out (within `data.max_bad_fraction`, else the data layer's one-line
    error); a file that fails when decoded is replaced by another video's clip and counted, as real data is. The
    videos are scored on the good files, and `bad_files` says how many were dropped."""

    def __init__(self, root: str, config: DataConfig):
        from zoo.datasets import build_dataset

        folder = update_dataclass(config, {"name": "folder", "root": root, "folder_labels": False}, "data")
        self.root, self.dataset = root, build_dataset("folder", folder)
        self.good = [i for i in range(len(self.dataset)) if self.dataset.num_starts(i) > 0]
        self.failed: dict[str, str] = {}  # files that failed when decoded (all DataLoader workers)

    def check_count(self, preset: Preset) -> None:
        if len(self.good) < preset.num_fake:
            raise ZooError(f"--fake-dir {self.root} holds {len(self.good)} usable videos but {preset.name} needs "
                           f"{preset.num_fake}; generate more or pass --num-samples {len(self.good)}")

    def batches(self, positions: list[list[int]], workers: int) -> Iterator[torch.Tensor]:
        """The clips of the good files at `positions` (lists of places among the good files), batch by batch."""
        from zoo.datasets.clips import read_failure_log

        with tempfile.TemporaryDirectory() as tmp:
            self.dataset.failure_log = os.path.join(tmp, "failures.jsonl")  # written by every worker
            yield from DataLoader(_FirstClips(self.dataset, self.good), batch_sampler=positions,
                                  num_workers=workers)
            self.failed.update(read_failure_log(self.dataset.failure_log))

    def bad_files(self, world: int) -> list[str]:
        """Names of the files left out or replaced, over all ranks."""
        good = set(self.good)
        names = {self.dataset.item_name(i) for i in range(len(self.dataset)) if i not in good}
        names |= set(self.failed)
        if world > 1:
            gathered: list = [None] * world
            torch.distributed.all_gather_object(gathered, sorted(names))
            names = set().union(*gathered)
        return sorted(names)


def fake_videos(request: EvalRequest, model, preset: Preset, folder: GeneratedFolder | None, rank: int,
                world: int) -> Iterator[torch.Tensor]:
    """This rank's batches of the generated side, uint8 `[B, T, H, W, C]`: batch b of `preset.num_fake` videos
    goes to rank b % world."""
    every = _batches(list(range(preset.num_fake)), request.batch_size)
    mine = range(rank, len(every), world)
    batches = [every[b] for b in mine]
    if model is not None:
        span = preset.frames * preset.frame_stride
        frames = None if span == model.spec.frames else span
        device = next(model.parameters()).device
        for b, positions in zip(mine, batches):  # b: the batch's global number seeds its noise
            generator = torch.Generator(device=device).manual_seed(request.seed * 1_000_003 + b)
            with torch.no_grad():
                videos = model.sample(len(positions), generator=generator, frames=frames)
            yield as_pixels(videos[:, :, ::preset.frame_stride].float().cpu())
        return
    if folder is None:
        raise ZooError("give the generated videos: --ckpt PATH or --fake-dir DIR")
    folder.check_count(preset)
    yield from folder.batches(batches, folder.dataset.config.num_workers)


class SharedSamples:
    """A checkpoint's generated batches, sampled once for all the groups that score the same clips (frames, stride and
    count): sampling is seeded per batch, so drawing again would give the same videos at the same cost. Batches are
    kept only while a later group still needs them."""

    def __init__(self, presets: list[Preset], model):
        self.uses = Counter(self.key(p) for p in presets) if model is not None else Counter()
        self.kept: dict[tuple, list[torch.Tensor]] = {}

    @staticmethod
    def key(p: Preset) -> tuple:
        return p.frames, p.frame_stride, p.num_fake

    def batches(self, preset: Preset, draw: Callable[[], Iterator[torch.Tensor]]) -> Iterator[torch.Tensor]:
        key = self.key(preset)
        self.uses[key] -= 1
        if key in self.kept:
            yield from (self.kept[key] if self.uses[key] > 0 else self.kept.pop(key))
            return
        if self.uses[key] <= 0:  # the last (or only) group of these clips: nothing to keep
            yield from draw()
            return
        kept = self.kept[key] = []
        for pixels in draw():
            kept.append(pixels)
            yield pixels
