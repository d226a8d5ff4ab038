"""Bad files: caught per item, logged once, replaced deterministically, counted; too many is a clear error."""

import pytest
import torch

from tests.datasets.media import write
from zoo.config import DataConfig
from zoo.datasets import build_dataset
from zoo.datasets.clips import read_failure_log
from zoo.datasets.datamodule import VideoDataModule
from zoo.errors import ZooError


def test_a_codec_ffmpeg_cannot_decode_is_a_bad_item_replaced_when_read(video_tree, cache):
    avi = (video_tree / "walk" / "a.avi").read_bytes()
    assert avi.count(b"FMP4") == 2  # the AVI stream header's and bitmap header's codec tags
    (video_tree / "walk" / "alien.avi").write_bytes(avi.replace(b"FMP4", b"ZQ42"))  # a tag FFmpeg has no decoder for
    d = build_dataset("folder", root=str(video_tree), frames=8, resolution=16, index_cache=cache, max_bad_fraction=0.5)
    assert d.counts["unreadable"] == 1
    alien = next(i for i in range(len(d)) if d.item_name(i) == "walk/alien.avi")
    assert "no decoder" in d.records[alien].problem
    assert d[(alien, 1)]["video"].std() > 0.02 and "walk/alien.avi" in d.failures


@pytest.fixture
def broken_tree(video_tree):
    (video_tree / "run" / "zero.mp4").write_bytes(b"")  # unreadable at indexing
    data = write(video_tree / "walk" / "cut.avi", n=60).read_bytes()
    (video_tree / "walk" / "cut.avi").write_bytes(data[: len(data) // 3])  # headers fine, frames gone
    return video_tree


def test_bad_files_are_replaced_deterministically(broken_tree, cache, tmp_path, caplog):
    cfg = dict(root=str(broken_tree), frames=8, resolution=16, index_cache=cache, max_bad_fraction=0.5)
    d = build_dataset("folder", **cfg)
    assert d.counts["unreadable"] == 1 and d.counts["usable"] == 5 and len(d) == 6
    cut = next(i for i in range(len(d)) if d.item_name(i) == "walk/cut.avi")
    late = d.num_starts(cut) - 1  # a clip in the truncated part
    d.failure_log = str(tmp_path / "failures.jsonl")
    first = d.pixels_at(cut, late)
    again = build_dataset("folder", **cfg).pixels_at(cut, late)  # a fresh process-like instance: same replacement
    assert torch.equal(first, again) and first.float().std() > 5  # a real clip of another video, not black
    assert "walk/cut.avi" in d.failures and read_failure_log(d.failure_log).keys() == d.failures.keys()
    d.pixels_at(cut, late)
    cut_logs = [r for r in caplog.records if "cannot decode walk/cut.avi" in r.message]
    assert len(cut_logs) == 2  # once per instance (per process)


def test_a_file_unreadable_at_indexing_is_an_item_replaced_when_read(broken_tree, cache):
    d = build_dataset("folder", root=str(broken_tree), frames=8, resolution=16, index_cache=cache,
                      max_bad_fraction=0.5)
    zero = next(i for i in range(len(d)) if d.item_name(i) == "run/zero.mp4")
    assert d.num_starts(zero) == 0, "no clip of its own: evaluation clip lists never name it"
    first, again = d[(zero, 5)], build_dataset("folder", root=str(broken_tree), frames=8, resolution=16,
                                               index_cache=cache, max_bad_fraction=0.5)[(zero, 5)]
    assert torch.equal(first["video"], again["video"]) and torch.equal(first["label"], again["label"])
    assert first["video"].std() > 0.02, "a real clip of another video, not black frames"
    assert "run/zero.mp4" in d.failures


def test_an_epoch_through_workers_replaces_and_reports_bad_files(broken_tree, cache, caplog):
    config = DataConfig(name="folder", root=str(broken_tree), frames=8, resolution=16, index_cache=cache,
                        num_workers=2, max_bad_fraction=0.5)
    dm = VideoDataModule(config, batch_size=3, seed=0)
    batches = [dm.on_after_batch_transfer(b, 0) for b in dm.train_dataloader()]  # one epoch: all 6 items
    assert sum(len(b["video"]) for b in batches) == 6
    assert all(clip.std() > 0.02 for b in batches for clip in b["video"]), "never black frames"
    assert "run/zero.mp4" in dm.reported_failures, "the loader's epoch end reported what the workers met"
    assert any("failed to decode and were replaced" in r.message for r in caplog.records)


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
    loader = dm.train_dataloader()
    raw = next(iter(loader))
    assert raw["pixels"].dtype == torch.uint8 and raw["pixels"].shape == (2, 4, 16, 16, 3), "workers ship uint8"
    batch = dm.on_after_batch_transfer(raw, 0)
    assert batch["video"].shape == (2, 3, 4, 16, 16) and batch["video"].is_contiguous()
    keys = list(loader.sampler)[:2]  # the converted batch is exactly the datasets' float items, stacked
    assert torch.equal(batch["video"], torch.stack([dm.dataset[k]["video"] for k in keys]))
    assert torch.equal(batch["label"], torch.stack([dm.dataset[k]["label"] for k in keys]))
    positions = []
    for rank in range(2):
        for b in dm.eval_dataloader(batch_size=2, rank=rank, world_size=2):
            assert b["pixels"].dtype == torch.uint8 and b["pixels"].shape[1:] == (4, 16, 16, 3)
            positions += b["position"].tolist()
    assert sorted(positions) == [0, 1, 2]
    assert dm.report_failures() == {}
