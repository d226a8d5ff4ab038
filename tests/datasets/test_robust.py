"""Bad files: caught per item, logged once, replaced deterministically, counted; too many is a clear error."""

import pytest
import torch

from tests.datasets.media import write
from zoo.config import DataConfig
from zoo.datasets import build_dataset
from zoo.datasets.clips import read_failure_log
from zoo.datasets.datamodule import VideoDataModule
from zoo.errors import ZooError


@pytest.fixture
def broken_tree(video_tree):
    (video_tree / "run" / "zero.mp4").write_bytes(b"")  # unreadable at indexing
    data = write(video_tree / "walk" / "cut.avi", n=60).read_bytes()
    (video_tree / "walk" / "cut.avi").write_bytes(data[: len(data) // 3])  # headers fine, frames gone
    return video_tree


def test_bad_files_are_replaced_deterministically(broken_tree, cache, tmp_path, caplog):
    cfg = dict(root=str(broken_tree), frames=8, resolution=16, index_cache=cache, max_bad_fraction=0.5)
    d = build_dataset("folder", **cfg)
    assert d.counts["unreadable"] == 1 and len(d) == 5
    cut = next(i for i in range(len(d)) if d.item_name(i) == "walk/cut.avi")
    late = d.num_starts(cut) - 1  # a clip in the truncated part
    d.failure_log = str(tmp_path / "failures.jsonl")
    first = d.pixels_at(cut, late)
    again = build_dataset("folder", **cfg).pixels_at(cut, late)  # a fresh process-like instance: same replacement
    assert torch.equal(first, again) and first.float().std() > 5  # a real clip of another video, not black
    assert list(d.failures) == ["walk/cut.avi"] and list(read_failure_log(d.failure_log)) == ["walk/cut.avi"]
    d.pixels_at(cut, late)
    assert sum("cannot decode" in r.message for r in caplog.records) == 2  # once per instance (per process)


def test_too_many_bad_files_is_an_error(broken_tree, cache):
    with pytest.raises(ZooError, match="max_bad_fraction"):
        build_dataset("folder", root=str(broken_tree), frames=8, index_cache=cache, max_bad_fraction=0.1)
    d = build_dataset("folder", root=str(broken_tree), frames=8, index_cache=cache, max_bad_fraction=0.17)
    cut = next(i for i in range(len(d)) if d.item_name(i) == "walk/cut.avi")
    with pytest.raises(ZooError, match="unreadable"):  # the runtime failure tips it over
        d.pixels_at(cut, d.num_starts(cut) - 1)


def test_datamodule_loaders_with_workers(video_tree, cache):
    config = DataConfig(name="folder", root=str(video_tree), frames=4, resolution=16, index_cache=cache,
                        num_workers=2)
    dm = VideoDataModule(config, batch_size=2, seed=0, eval_clips=3)
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (2, 3, 4, 16, 16) and batch["label"].shape == (2,)
    positions = []
    for rank in range(2):
        for b in dm.eval_dataloader(batch_size=2, rank=rank, world_size=2):
            assert b["pixels"].dtype == torch.uint8 and b["pixels"].shape[1:] == (4, 16, 16, 3)
            positions += b["position"].tolist()
    assert sorted(positions) == [0, 1, 2]
    assert dm.report_failures() == {}
