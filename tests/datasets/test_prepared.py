"""Prepared (decoded once, memory-mapped) clips equal streamed clips, for every kind of key."""

import shutil

import torch

from zoo.datasets import build_dataset
from zoo.datasets.prepared import prepare


def test_prepared_equals_streaming(video_tree, shared_dir, cache, tmp_path):
    shutil.copy(shared_dir / "data" / "videos" / "open-mmlab__mmaction2" / "test.avi", video_tree / "run" / "ucf.avi")
    shutil.copy(shared_dir / "data" / "videos" / "pytorch__torchcodec" / "nasa_13013.mp4", video_tree / "nasa.mp4")
    common = dict(root=str(video_tree), resolution=24, index_cache=cache)
    source = build_dataset("folder", frames=1, **common)
    counts = prepare(source, tmp_path / "prep", workers=2, progress=False)
    assert counts["failed"] == 0 and counts["videos"] == len(source) == 6
    for frames, stride in ((8, 1), (5, 3)):
        stream = build_dataset("folder", frames=frames, frame_stride=stride, **common)
        fast = build_dataset("folder", frames=frames, frame_stride=stride, prepared=str(tmp_path / "prep"), **common)
        for index in range(len(stream)):
            for key in (index, (index, 11), (index, 12345)):
                assert torch.equal(stream.pixels(key), fast.pixels(key)), (index, key)
            last = stream.num_starts(index) - 1
            assert torch.equal(stream.pixels_at(index, last), fast.pixels_at(index, last))
        a, b = stream[(2, 7)], fast[(2, 7)]
        assert torch.equal(a["video"], b["video"]) and a["label"] == b["label"]
