"""Deterministic, exportable evaluation clip lists and the protocol fingerprint.

Published FVD numbers are only comparable when every model is scored against the very same real clips
(notes/data_loading.md, Sec. 4.6 item 3; StyleGAN-V's "FVD2048" protocol). A `ClipList` pins those clips as
(item index, start frame) pairs plus the item names, is written as JSON (`zoo data cliplist`), and its hash together
with the pixel-changing `DataConfig` fields is the protocol fingerprint that keys cached real statistics and goes
into every leaderboard row.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.config import DataConfig, stable_hash
from zoo.datasets.conditions import CONDITION_FIELDS
from zoo.errors import ZooError

# Fields that change what a real clip looks like. Paths, workers, threads, the decoder choice policy, the prepared
# cache and the bad-file tolerance do not (prepared == streaming is tested), so they stay out.
PIXEL_FIELDS = ("name", "split", "fold", "frames", "frame_stride", "resolution", "resize", "video_stream", "seed",
                "num_videos")
# Without a clip list, these also decide which clips the evaluation draws.
SELECTION_FIELDS = ("clips_per_video",)
FORMAT_VERSION = 1


@dataclass
class ClipList:
    """The real clips of one evaluation protocol.

    Attributes:
        dataset: registry key of the dataset.
        fingerprint: `protocol_fingerprint(config, self)` at creation.
        clips: `(item index, start frame)` per clip, in evaluation order.
        names: `dataset.item_name(index)` per clip (relative paths), so a list can be checked and remapped when
            another copy of the dataset indexes its videos differently (e.g. other Kinetics clips are missing).
        labels: class label per clip (-1 unlabelled).
        seed: the seed the list was drawn with.
        config: the `PIXEL_FIELDS` + `SELECTION_FIELDS` values it was drawn under.
    """

    dataset: str
    fingerprint: str
    clips: list[tuple[int, int]]
    names: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    seed: int = 0
    config: dict = field(default_factory=dict)
    version: int = FORMAT_VERSION

    def __len__(self) -> int:
        return len(self.clips)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = dataclasses.asdict(self)
        data["clips"] = [list(c) for c in self.clips]
        path.write_text(json.dumps(data, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> ClipList:
        path = Path(path)
        if not path.is_file():
            raise ZooError(f"clip list {path} does not exist; write one with `zoo data cliplist --out {path}`")
        try:
            data = json.loads(path.read_text())
            data["clips"] = [(int(i), int(s)) for i, s in data["clips"]]
            return cls(**data)
        except (ValueError, TypeError, KeyError) as e:
            raise ZooError(f"{path} is not a clip list written by `zoo data cliplist` ({e})") from None

    def resolve(self, dataset) -> list[tuple[int, int]]:
        """The clips as indices of `dataset`, remapped through `names` when the datasets index videos differently.

        Raises:
            ZooError: when the list was drawn for another dataset, or names a clip this copy lacks or cannot read.
        """
        if self.dataset != dataset.registry_key:
            raise ZooError(f"clip list is for dataset {self.dataset!r}, not {dataset.registry_key!r}")
        if not self.names or all(
            0 <= i < len(dataset) and dataset.item_name(i) == n for (i, _), n in zip(self.clips, self.names)
        ):
            clips = list(self.clips)
        else:
            by_name = {dataset.item_name(i): i for i in range(len(dataset))}
            clips = [(by_name.get(n, -1), s) for (_, s), n in zip(self.clips, self.names)]
        # a video this copy lacks, cannot read, or holds fewer frames of: replacing its clip would change the protocol
        unusable = [self.names[k] if self.names else str(i) for k, (i, s) in enumerate(clips)
                    if i < 0 or not 0 <= s < dataset.num_starts(i)]
        if unusable:
            raise ZooError(
                f"{len(unusable)} clip(s) of the clip list cannot be read from this copy of {self.dataset} "
                f"(missing, unreadable or too short; first: {unusable[0]});"
                " evaluate on a complete copy or draw a new list with `zoo data cliplist`"
            )
        return clips


def condition_settings(config: DataConfig) -> dict:
    """What a conditional protocol pairs each real clip with: `{"condition": ..., <the fields that condition reads>}`
    (`conditions.CONDITION_FIELDS`: edge thresholds, keypoint sigma, classes); {} for `condition=none`."""
    if config.condition == "none":
        return {}
    return {"condition": config.condition, **{k: getattr(config, k) for k in CONDITION_FIELDS[config.condition]}}


def protocol_fingerprint(config: DataConfig, clip_list: ClipList | None = None) -> str:
    """Hash of exactly what decides the real clips: the pixel-changing `DataConfig` fields plus the clip list, and,
    for a conditional protocol only, its `condition_settings` (so every unconditional fingerprint, and the real
    statistics cached under it, is what it was before conditions existed).

    Args:
        config: the data config.
        clip_list: the evaluation clips; None = the dataset's own deterministic clips (then `clips_per_video` counts).

    Returns:
        16 hex digits.
    """
    d = dataclasses.asdict(config)
    fields = {k: d[k] for k in PIXEL_FIELDS}
    if config.condition != "none":
        fields["condition"] = condition_settings(config)
    if config.change_frame:  # only when on: every fingerprint without a change point is what it was
        fields["change_frame"] = config.change_frame
    if clip_list is None:
        fields.update({k: d[k] for k in SELECTION_FIELDS})
        return stable_hash({"protocol": fields})
    clips = {"dataset": clip_list.dataset, "clips": [list(c) for c in clip_list.clips], "names": clip_list.names}
    return stable_hash({"protocol": fields, "clips": clips})


def make_clip_list(dataset, num: int | None, seed: int) -> ClipList:
    """Draw a deterministic evaluation clip list.

    Clip j goes to video `order[j % n]` (a seeded permutation of the n videos), so up to n clips come from distinct
    videos; later rounds take the video's next distinct start, up to `config.clips_per_video` clips per video.
    Starts of video i are `distinct_starts` seeded by `(seed, i)`, so the list depends only on (dataset, num, seed).

    Args:
        dataset: a built `VideoDataset`.
        num: clips wanted; None = every available clip (n x clips_per_video).
        seed: the list's seed.

    Returns:
        The `ClipList`.
    """
    n = len(dataset)
    per_video = max(1, dataset.config.clips_per_video)
    if n == 0:
        raise ZooError(f"dataset {dataset.registry_key!r} has no usable videos to draw evaluation clips from")
    num = n * per_video if num is None else num
    order = np.random.default_rng([seed, 1]).permutation(n)
    starts: dict[int, np.ndarray] = {}
    clips: list[tuple[int, int]] = []
    for round_ in range(per_video):
        for video in order:
            if len(clips) == num:
                break
            video = int(video)
            if video not in starts:
                starts[video] = distinct_starts(dataset.num_starts(video), per_video, [seed, 2, video])
            if round_ < len(starts[video]):
                clips.append((video, int(starts[video][round_])))
    if len(clips) < num:
        raise ZooError(
            f"only {len(clips)} distinct clips available from {n} videos with clips_per_video={per_video}; "
            f"ask for fewer (--num) or raise data.clips_per_video"
        )
    config = dataclasses.asdict(dataset.config)
    clip_list = ClipList(
        dataset=dataset.registry_key,
        fingerprint="",
        clips=clips,
        names=[dataset.item_name(i) for i, _ in clips],
        labels=[int(dataset.label_of(i)) for i, _ in clips],
        seed=seed,
        config={**{k: config[k] for k in PIXEL_FIELDS + SELECTION_FIELDS}, **condition_settings(dataset.config)},
    )
    clip_list.fingerprint = protocol_fingerprint(dataset.config, clip_list)
    return clip_list


def distinct_starts(count: int, wanted: int, seed: list[int]) -> np.ndarray:
    """`min(wanted, count)` distinct starts in `[0, count)`, uniformly drawn in random order from `seed`.

    Costs memory in proportion to `wanted`, never to `count` (numpy draws few from many by Floyd's algorithm), so a
    video whose header claims billions of frames cannot make the draw allocate for each of them.
    """
    return np.random.default_rng(seed).choice(count, size=min(wanted, count), replace=False)


def partition(num: int, rank: int, world_size: int) -> range:
    """Positions of a `num`-clip list that DDP rank `rank` evaluates: r, r + W, ... (no padding, no duplicates,
    no losses; ranks differ by at most one clip, so metric states must gather uneven counts)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world of size {world_size}")
    return range(rank, num, world_size)


class ClipListDataset(Dataset):
    """This rank's share of a clip list as a map-style dataset.

    Items: `{"pixels": uint8 [T, H, W, C], "label": long, "position": long (place in the full list)}`
    (`base.to_video` adds the float video).

    Args:
        dataset: the `VideoDataset` the list was drawn from (or an equivalent copy).
        clip_list: the clips.
        rank, world_size: DDP place; positions follow `partition`.
        num: use the list's first `num` clips (all when None).
    """

    def __init__(self, dataset, clip_list: ClipList, rank: int = 0, world_size: int = 1, num: int | None = None):
        self.dataset = dataset
        self.clips = clip_list.resolve(dataset)[:num]
        self.positions = partition(len(self.clips), rank, world_size)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        position = self.positions[i]
        index, start = self.clips[position]
        return {
            "pixels": self.dataset.pixels_at(index, start),
            "label": torch.tensor(self.dataset.label_of(index), dtype=torch.long),
            "position": torch.tensor(position, dtype=torch.long),
        }
