"""Datasets: every one registered under a short key and built from one `DataConfig`."""

from __future__ import annotations

from typing import Any

from zoo.config import DataConfig, update_dataclass
from zoo.datasets import folder, kinetics, paired, shapes, ucf101  # noqa: F401  (register their datasets)
from zoo.datasets.base import VideoDataset
from zoo.registry import DATASETS


def build_dataset(name: str, config: DataConfig | None = None, **fields: Any) -> VideoDataset:
    """Build the dataset registered as `name`.

    Args:
        name: registry key (`zoo list datasets`).
        config: a `DataConfig` to start from (default: the defaults).
        **fields: `DataConfig` fields to override (root, split, fold, frames, frame_stride, resolution, ...).

    Returns:
        A `torch.utils.data.Dataset` of `{"video": [C, T, H, W] in [-1, 1], "label": long}` items.
    """
    cls = DATASETS.get(name)
    config = update_dataclass(config or DataConfig(), {**fields, "name": name}, "data")
    return cls(config)


__all__ = ["build_dataset", "VideoDataset"]
