"""What every registered dataset is: a map-style `Dataset` built from one `DataConfig`."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch.utils.data import Dataset

from zoo.config import DataConfig
from zoo.datasets.conditions import check_condition, edge_maps
from zoo.video_io import from_uint8

# Training samplers pass `(index, draw_seed)`: any randomness of the item (its clip start) is drawn from `draw_seed`,
# so the data stream depends only on the sampler's seed and position (exact resume, any number of workers).
# A bare `index` returns the deterministic evaluation clip of that item.
ItemKey = int | tuple[int, int]


# uint8 entries of raw items and batches -> the float entries `to_video` makes of them
PIXEL_KEYS = {"pixels": "video", "image_pixels": "image_frames"}


def to_video(item: dict) -> dict:
    """Replace the uint8 entries of a raw item or collated batch (`PIXEL_KEYS`) by float videos in [-1, 1]:
    `[T, H, W, C]` -> `[C, T, H, W]`, `[B, T, H, W, C]` -> `[B, C, T, H, W]` (`video_io.from_uint8`)."""
    out = {}
    for key, value in item.items():
        if key in PIXEL_KEYS:
            out[PIXEL_KEYS[key]] = from_uint8(value)
        else:
            out[key] = value
    return out


class VideoDataset(Dataset):
    """Base class of registered datasets.

    Items are dicts `{"video": float [C, T, H, W] in [-1, 1], "label": long (-1 if unlabelled), ...}`; extra keys
    never change the meaning of those two. Subclasses implement `raw_item`, the same item with the clip still as
    decoded (`"pixels"`, uint8 `[T, H, W, C]`): the DataModule's loaders ship raw items between processes (4x fewer
    bytes than float) and convert whole batches with `to_video` once they are on the training device.

    With `config.condition` other than `none`, `raw_item` also returns `condition`, float `[C_c, T, H, W]`
    (`conditions.py`): a subclass adds `self.condition_of(item)` to its item and lists what it offers in
    `conditions`; building a dataset with another condition is a one-line `ZooError`.
    """

    registry_key: ClassVar[str]
    channels: ClassVar[int] = 3
    conditions: ClassVar[tuple[str, ...]] = ("none",)  # the `data.condition` values this dataset provides

    def __init__(self, config: DataConfig):
        self.config = config
        self.class_names: list[str] = []
        check_condition(getattr(self, "registry_key", type(self).__name__), config, self.conditions)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def condition_channels(self) -> int:
        """C_c of the items' `condition` `[C_c, T, H, W]` under `config.condition`; 0 when `condition=none`."""
        return {"none": 0, "edges": 1}[self.config.condition]

    def condition_of(self, item: dict[str, torch.Tensor]) -> torch.Tensor:
        """The `condition` of a raw item, float `[C_c, T, H, W]`, from the item's own keys (`edges`: from `pixels`).
        Subclasses offering more conditions extend it."""
        c = self.config
        if c.condition == "edges":
            return edge_maps(item["pixels"], c.edge_low, c.edge_high)
        raise NotImplementedError(f"{self.registry_key} has no condition {c.condition!r}")  # pragma: no cover

    def with_condition(self, item: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """`item` plus its `condition` when `config.condition` is not `none` (what every `raw_item` returns)."""
        if self.config.condition != "none":
            item["condition"] = self.condition_of(item)
        return item

    @property
    def video_reader(self) -> str:
        """What decodes this dataset's videos here (runs and evaluation protocols record it)."""
        return "none (procedural)"

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def raw_item(self, key: ItemKey) -> dict[str, torch.Tensor]:
        """The item of `key` with its clip as decoded: `{"pixels": uint8 [T, H, W, C], "label": long, ...}`."""
        raise NotImplementedError  # pragma: no cover - abstract

    def __getitem__(self, key: ItemKey) -> dict[str, torch.Tensor]:
        return to_video(self.raw_item(key))

    def pixels(self, key: ItemKey) -> torch.Tensor:
        """The clip of `key` as decoded: uint8 `[T, H, W, C]`, before any float conversion (the metrics path)."""
        return self.raw_item(key)["pixels"]

    def num_starts(self, index: int) -> int:
        """How many clip start frames item `index` allows (starts are 0 .. num_starts - 1)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def pixels_at(self, index: int, start: int) -> torch.Tensor:
        """The clip of item `index` starting at source frame `start` (a clip-list entry): uint8 `[T, H, W, C]`."""
        raise NotImplementedError  # pragma: no cover - abstract

    def label_of(self, index: int) -> int:
        """Class label of item `index` (-1 when unlabelled)."""
        return -1

    def item_name(self, index: int) -> str:
        """A stable name of item `index` (its relative path for file datasets); clip lists record it."""
        return str(index)

    @staticmethod
    def split_key(key: ItemKey) -> tuple[int, int | None]:
        """`(index, draw_seed)` from an item key; draw_seed is None for deterministic (evaluation) access."""
        if isinstance(key, (tuple, list)):
            return int(key[0]), int(key[1])
        return int(key), None
