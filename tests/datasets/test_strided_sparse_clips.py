"""Sparse training clips (StyleGAN-V) at `frame_stride > 1`: the times are in strided frames and fit the strided
video, and the decoded frames are those of a dense strided read at the same times."""

from __future__ import annotations

import torch

from tests.datasets.media import write
from zoo.datasets import build_dataset


def test_sparse_times_fit_the_strided_video_and_decode_the_strided_frames(tmp_path):
    write(tmp_path / "v" / "a" / "x.avi", n=61, height=32, width=32, seed=1)  # 61 frames at stride 4: 16 strided
    common = dict(root=str(tmp_path / "v"), resolution=16, index_cache=str(tmp_path / "cache"), num_workers=0)
    sparse = build_dataset("folder", frames=3, sparse_max_distance=32, frame_stride=4, **common)
    draws = [sparse.clip_times(0, draw) for draw in range(200)]
    assert all(0 <= t[0] < t[1] < t[2] <= 15 for t in draws), "a sparse clip ends past the strided video"
    assert max(t[2] for t in draws) == 15, "the whole strided video is reachable"
    assert {t[2] - t[0] for t in draws} <= {2, 4, 8}, "gaps of the palette that fit 16 strided frames"
    item = sparse.raw_item((0, 7))
    times = [int(t) for t in item["times"]]
    assert item["video_length"] == 16
    every_frame = build_dataset("folder", frames=61, **common).pixels_at(0, 0)  # stride 1: source frames 0..60
    assert torch.equal(item["pixels"], every_frame[[4 * t for t in times]])


def test_shapes_sparse_clips_at_a_stride_render_the_source_frames_stride_times_t():
    from zoo.datasets.shapes import render_clip

    sparse = build_dataset("shapes", frames=3, sparse_max_distance=8, resolution=16, frame_stride=3)
    item = sparse.raw_item((1, 5))
    times = [int(t) for t in item["times"]]
    assert times[-1] - times[0] in (2, 4, 8) and times[-1] < int(item["video_length"])
    every_frame = render_clip(0, 1, 3 * times[-1] + 1, 16)["pixels"]  # stride 1 from source frame 0
    assert torch.equal(item["pixels"], every_frame[[3 * t for t in times]])
