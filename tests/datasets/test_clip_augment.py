"""Training-clip augmentation of the data layer: the seeded whole-clip horizontal flip (`data.hflip`, StyleGAN-V's
`mirror`, TGANv2's `xflip`) and TGANv2's random horizontal crop (`data.crop_jitter`), on real decoded files."""

from __future__ import annotations

import pytest
import torch

from tests.datasets.media import write
from zoo.datasets import build_dataset
from zoo.datasets.datamodule import RawItems
from zoo.datasets.transforms import crop_left, draw_crop_shift, draw_flip, resize_frames
from zoo.errors import ZooError


@pytest.fixture
def wide_video(tmp_path):
    """One 80x60 video (4:3 like UCF-101's 320x240), 40 frames."""
    write(tmp_path / "v" / "a" / "x.avi", n=40, height=60, width=80, seed=5)
    return dict(root=str(tmp_path / "v"), index_cache=str(tmp_path / "cache"), num_workers=0)


def test_flip_is_seeded_and_mirrors_every_frame_of_the_clip(wide_video):
    """At frame_stride 2, each training clip is either the unflipped clip or all of its frames mirrored, as
    `draw_flip(seed, draw)` decides; both happen, the same key repeats its choice, evaluation clips never flip."""
    common = dict(frames=4, frame_stride=2, resolution=16, **wide_video)
    plain = RawItems(build_dataset("folder", **common))
    flipped = RawItems(build_dataset("folder", hflip=True, **common))
    choices = []
    for draw in range(12):
        clip, maybe = plain[(0, draw)]["pixels"], flipped[(0, draw)]["pixels"]
        assert torch.equal(maybe, clip.flip(2) if draw_flip(0, draw) else clip)
        assert not torch.equal(clip.flip(2), clip), "the test video must not be mirror-symmetric"
        choices.append(draw_flip(0, draw))
    assert 0 < sum(choices) < len(choices), "p = 0.5: some clips flip, some do not"
    assert torch.equal(flipped[(0, 3)]["pixels"], flipped[(0, 3)]["pixels"]), "a key repeats its flip (resume)"
    assert torch.equal(flipped[0]["pixels"], plain[0]["pixels"]), "evaluation clips (bare index) are not flipped"
    assert [draw_flip(1, d) for d in range(12)] != choices, "the data seed takes part in the draw"


def test_tgan2_crop_range_at_the_official_resolution():
    """TGANv2 crops 192 of 256 columns at x0 in {4, ..., 60} (`_crop_center`, xmargin 4): crop_jitter 0.875."""
    lefts = {crop_left(256, 192, s / 1000) for s in range(-875, 876)}
    assert min(lefts) == 4 and max(lefts) == 60 and len(lefts) == 57
    assert crop_left(256, 192, 0.0) == 32


def test_random_crop_moves_the_square_of_training_clips_only(wide_video):
    """With crop_jitter, a training clip is the short-side square at the drawn offset of the decoded frames (the same
    for every frame, at frame_stride 2); evaluation clips keep the centre crop."""
    common = dict(frames=3, frame_stride=2, resolution=20, **wide_video)
    jittered = build_dataset("folder", crop_jitter=1.0, **common)
    centred = build_dataset("folder", **common)
    lefts = set()
    for draw in range(8):
        item = jittered.raw_item((0, draw))
        shift = draw_crop_shift(0, draw, 1.0)
        lefts.add(crop_left(80, 60, shift))
        start = round(float(centred.clip_times(0, draw)[0]) * 2)
        decoded = dense_frames(wide_video, [start, start + 2, start + 4])
        torch.testing.assert_close(item["pixels"], resize_frames(decoded, 20, "short_side_crop", shift), rtol=0, atol=0)
    assert len(lefts) > 3, "the crop offset varies between training clips"
    assert torch.equal(jittered.raw_item(0)["pixels"], centred.raw_item(0)["pixels"]), "evaluation: centre crop"


def dense_frames(paths: dict, ids: list[int]) -> torch.Tensor:
    """The decoded source frames `ids` of the test video, uncropped: uint8 [T, 60, 80, 3]."""
    from zoo.datasets.decode import read_frames

    dataset = build_dataset("folder", frames=1, resolution=16, **paths)
    record = dataset.records[0]
    return torch.as_tensor(read_frames(str(dataset.root / record.path), ids, record.meta, "auto", 1))


def test_random_crop_refuses_prepared_frames(wide_video, tmp_path):
    with pytest.raises(ZooError, match="crop_jitter"):
        build_dataset("folder", frames=3, resolution=16, crop_jitter=0.5, prepared=str(tmp_path), **wide_video)
