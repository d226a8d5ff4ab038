"""`data.condition=edges` on real decoded files: the edges of exactly the clip's frames at any stride, on every item
path and in training batches (hand-made steps: tests/test_edge_maps.py)."""

from __future__ import annotations

import pytest
import torch

from tests.datasets.media import write
from zoo.config import DataConfig
from zoo.datasets import build_dataset
from zoo.datasets.conditions import edge_maps
from zoo.datasets.datamodule import RawItems, VideoDataModule
from zoo.datasets.transforms import draw_flip


@pytest.fixture
def clips(tmp_path):
    write(tmp_path / "v" / "a.mp4", n=24, height=40, width=48, codec="libx264", seed=3)
    write(tmp_path / "v" / "b.avi", n=20, height=36, width=36, seed=4)
    return dict(root=str(tmp_path / "v"), index_cache=str(tmp_path / "cache"), num_workers=0, resolution=24)


def test_real_files_at_stride_two_get_the_edges_of_exactly_their_frames(clips):
    strided = build_dataset("folder", frames=4, frame_stride=2, condition="edges", **clips)
    dense = build_dataset("folder", frames=7, frame_stride=1, condition="edges", **clips)
    assert strided.condition_channels == 1
    for index in range(len(strided)):
        start = strided.start_of(index, None)
        item, raw = strided[index], strided.raw_item(index)
        assert item["condition"].shape == (1, 4, 24, 24) and torch.equal(item["condition"], raw["condition"])
        assert set(item["condition"].unique().tolist()) <= {0.0, 1.0} and item["condition"].sum() > 0
        assert torch.equal(raw["condition"], edge_maps(raw["pixels"], 0.2, 0.4))
        frames = dense.pixels_at(index, start)[::2]  # the same source frames, read densely
        assert torch.equal(edge_maps(frames, 0.2, 0.4), item["condition"])
    again = build_dataset("folder", frames=4, frame_stride=2, condition="edges", **clips)
    assert torch.equal(again[(1, 5)]["condition"], strided[(1, 5)]["condition"]), "deterministic per key"
    looser = build_dataset("folder", frames=4, frame_stride=2, condition="edges", edge_low=0.05, edge_high=0.1,
                           **clips)
    assert looser[0]["condition"].sum() > strided[0]["condition"].sum(), "lower thresholds find more edges"


def test_training_batches_carry_edges_and_mirrored_clips_get_the_mirrored_frames_edges(clips):
    config = DataConfig(name="folder", frames=3, frame_stride=2, hflip=True, condition="edges", **clips)
    datamodule = VideoDataModule(config, batch_size=2, seed=0)
    batch = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)
    assert batch["video"].shape == (2, 3, 3, 24, 24) and batch["condition"].shape == (2, 1, 3, 24, 24)
    items = RawItems(datamodule.dataset)
    draw = next(d for d in range(50) if draw_flip(0, d))
    item = items[(0, draw)]
    assert torch.equal(item["condition"], edge_maps(item["pixels"], 0.2, 0.4))
