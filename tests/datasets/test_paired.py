"""`paired`: frame-aligned source / target videos and PNG frame folders, on real files (videos written with
`zoo.video_io.write_video`, PNGs with PIL): the source and label conditions, the split folders, and every bad pair
as one line counted like a bad file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.datasets.media import frames_for
from zoo.cli import main
from zoo.config import DataConfig
from zoo.datasets import build_dataset
from zoo.datasets.conditions import one_hot
from zoo.datasets.datamodule import VideoDataModule
from zoo.datasets.decode import probe, read_frames
from zoo.datasets.transforms import resize_frames, resize_labels
from zoo.errors import ZooError
from zoo.video_io import from_uint8, write_video

R = 16


def png_frames(folder: Path, frames: np.ndarray, mode: str | None = None) -> Path:
    """`frames` `[T, H, W(, 3)]` as folder/00000.png, ... (PIL, lossless)."""
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        image = Image.fromarray(frame)
        if mode == "P":  # palette image: the stored values are palette indices, read back as the ids
            image = image.convert("L").convert("P")
            image.putpalette([v for i in range(256) for v in (i * 7 % 256, i, 255 - i)])
        image.save(folder / f"{t:05d}.png")
    return folder


def labels_for(n: int, height: int, width: int, classes: int, seed: int) -> np.ndarray:
    """uint8 `[n, H, W]` ids in [0, classes): blocks that move with t."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([((x // 4 + y // 5 + t + seed) % classes).astype(np.uint8) for t in range(n)])


@pytest.fixture
def pairs(tmp_path) -> dict:
    """Pair `clip` (two videos, 24x32) and pair `frames` (two PNG folders, 20x20), 12 frames each."""
    root = tmp_path / "pairs"
    write_video(frames_for(12, 24, 32, seed=1), root / "source" / "clip.mp4")
    write_video(frames_for(12, 24, 32, seed=2), root / "target" / "clip.mp4")
    png_frames(root / "source" / "frames", frames_for(12, 20, 20, seed=3))
    png_frames(root / "target" / "frames", frames_for(12, 20, 20, seed=4))
    return dict(root=str(root), index_cache=str(tmp_path / "cache"), num_workers=0, resolution=R, frames=4,
                frame_stride=2)


def test_source_condition_is_the_source_clip_at_the_targets_frames(pairs):
    dataset = build_dataset("paired", condition="source", **pairs)
    assert len(dataset) == 2 and dataset.condition_channels == 3 and dataset.num_classes == 0
    assert [dataset.item_name(i) for i in range(2)] == ["target/clip.mp4", "target/frames"]
    root = Path(pairs["root"])
    for index, name in enumerate(("clip", "frames")):
        start = dataset.start_of(index, None)
        ids = [start + 2 * k for k in range(4)]
        item, raw = dataset[index], dataset.raw_item(index)
        assert item["label"] == -1 and item["video"].shape == (3, 4, R, R) and item["condition"].shape == (3, 4, R, R)
        assert torch.equal(item["condition"], raw["condition"]) and "source_pixels" not in raw
        if name == "clip":
            sides = [read_frames(str(root / s / "clip.mp4"), ids, probe(str(root / s / "clip.mp4")))
                     for s in ("source", "target")]
        else:
            sides = [frames_for(12, 20, 20, seed=seed)[ids] for seed in (3, 4)]  # PNG: the very values written
        source, target = (resize_frames(side, R) for side in sides)
        assert torch.equal(item["condition"], from_uint8(source)), "the source, frame for frame, resized alike"
        assert torch.equal(raw["pixels"], target)
        assert torch.equal(dataset.pixels_at(index, start), target)
    assert "condition" not in build_dataset("paired", **pairs)[0]


def test_segmentation_reads_label_ids_losslessly_and_one_hots_them(tmp_path):
    root = tmp_path / "seg"
    grey = labels_for(10, 24, 30, 5, seed=0)
    png_frames(root / "source" / "grey", grey)
    write_video(frames_for(10, 24, 30, seed=5), root / "target" / "grey.mp4")
    palette = labels_for(10, 20, 20, 5, seed=1)
    png_frames(root / "source" / "palette", palette, mode="P")
    png_frames(root / "target" / "palette", frames_for(10, 20, 20, seed=6))
    colour = labels_for(10, 20, 20, 5, seed=2)
    png_frames(root / "source" / "colour", np.stack([colour, 255 - colour, colour // 2], axis=-1))  # first channel
    png_frames(root / "target" / "colour", frames_for(10, 20, 20, seed=7))
    config = dict(root=str(root), index_cache=str(tmp_path / "cache"), resolution=R, frames=3, condition_classes=5)
    dataset = build_dataset("paired", condition="segmentation", **config)
    assert dataset.condition_channels == 5
    for index, ids_written in zip(range(3), (colour, grey, palette)):  # items in name order
        start = dataset.start_of(index, None)
        cond = dataset[index]["condition"]
        expected = resize_labels(ids_written[start : start + 3], R)
        assert cond.shape == (5, 3, R, R) and torch.equal(cond, one_hot(expected, 5))
        assert torch.equal(cond.argmax(0), expected) and torch.equal(cond.sum(0), torch.ones(3, R, R))
    with pytest.raises(ZooError, match=r"label id 4 outside \[0, data.condition_classes=3\)"):
        build_dataset("paired", condition="segmentation", **{**config, "condition_classes": 3})[0]
    with pytest.raises(ZooError, match=r"^data.condition=segmentation of paired needs data.condition_classes"):
        build_dataset("paired", condition="segmentation", **{**config, "condition_classes": None})


def test_a_label_map_in_a_video_file_is_refused(tmp_path):
    root = tmp_path / "lossy"
    write_video(np.repeat(labels_for(8, 16, 16, 4, 0)[..., None], 3, -1) * 60, root / "source" / "a.mp4")
    write_video(frames_for(8, 16, 16), root / "target" / "a.mp4")
    with pytest.raises(ZooError, match=r"^data.condition=segmentation reads label ids losslessly from PNG frames, "
                                       r"but 1 source label map\(s\) are video files \(first: .*source/a.mp4\)"):
        build_dataset("paired", root=str(root), condition="segmentation", condition_classes=4, frames=2)
    assert len(build_dataset("paired", root=str(root), condition="source", frames=2, resolution=R)) == 1


def test_bad_pairs_are_one_line_each_and_count_like_bad_files(pairs, capsys):
    root = Path(pairs["root"])
    write_video(frames_for(10, 24, 32), root / "source" / "short.mp4")
    write_video(frames_for(12, 24, 32), root / "target" / "short.mp4")
    png_frames(root / "source" / "wide", frames_for(12, 20, 24))
    png_frames(root / "target" / "wide", frames_for(12, 20, 20))
    png_frames(root / "target" / "alone", frames_for(12, 20, 20))
    (root / "source" / "empty").mkdir()
    png_frames(root / "target" / "empty", frames_for(12, 20, 20))
    png_frames(root / "source" / "ragged", frames_for(12, 20, 20))
    png_frames(root / "target" / "ragged", frames_for(12, 20, 20))
    Image.fromarray(frames_for(1, 20, 22)[0]).save(root / "target" / "ragged" / "00003.png")  # another size
    dataset = build_dataset("paired", condition="source", max_bad_fraction=1.0, **pairs)
    problems = {e.path: e.problem for e in dataset.entries if e.problem}
    assert problems == {
        "target/alone": f"unpaired: {root}/target/alone has no source beside it (expected source/alone.<ext> or "
                        "source/alone/*.png)",
        "target/empty": f"unreadable: {root}/source/empty: no PNG frames",
        "target/short.mp4": f"mismatched: {root}/source/short.mp4 has 10 frames, {root}/target/short.mp4 12; "
                            "pairs must be frame-aligned",
        "target/wide": f"mismatched: {root}/source/wide is 24x20 pixels, {root}/target/wide 20x20",
    }
    assert dataset.counts["unreadable"] == 4 and dataset.counts["usable"] == 3 and len(dataset) == 7
    bad = dataset.records.index(next(r for r in dataset.records if r.path == "target/short.mp4"))
    item = dataset[bad]  # replaced by a good pair, both sides
    assert "target/short.mp4" in dataset.failures and item["condition"].shape == (3, 4, R, R)
    ragged = [r.path for r in dataset.records].index("target/ragged")
    dataset.pixels_at(ragged, 1)  # frames 1, 3, 5, 7 include the odd one: found when read, replaced
    assert dataset.failures["target/ragged"] == (f"{root}/target/ragged/00003.png: 22x20 pixels, the folder's first "
                                                 "frame 20x20")
    with pytest.raises(ZooError, match=r"^4 of 7 paired videos are missing, unreadable or too large"):
        build_dataset("paired", condition="source", **pairs)
    status = main(["data", "check", "--data", "paired", "--data-root", pairs["root"], "--frames", "4", "--decode",
                   "--set", f"data.index_cache={pairs['index_cache']}"])
    out = capsys.readouterr().out
    assert status == 1 and "target/wide: mismatched:" in out and "unreadable 4" in out and "undecodable 0" in out
    assert "target/ragged" not in out, "--decode reads first and last frames only"


def test_layout_errors_are_one_line(tmp_path):
    (tmp_path / "only" / "target").mkdir(parents=True)
    with pytest.raises(ZooError, match=r"^no source/ folder in .*only\. paired expects <root>/source/<name>"):
        build_dataset("paired", root=str(tmp_path / "only"))
    (tmp_path / "only" / "source").mkdir()
    with pytest.raises(ZooError, match=r"^no videos or PNG frame folders under"):
        build_dataset("paired", root=str(tmp_path / "only"))
    with pytest.raises(ZooError, match=r"^data.condition=keypoints is not available for paired; valid for paired: "
                                       r"none, source, segmentation, edges$"):
        build_dataset("paired", root=str(tmp_path / "only"), condition="keypoints")


def test_split_folders_choose_the_pairs_and_training_batches_carry_the_condition(tmp_path):
    root = tmp_path / "split"
    for split, names in (("train", ("a", "b")), ("test", ("c",))):
        for k, name in enumerate(names):
            for side in ("source", "target"):
                png_frames(root / split / side / name, frames_for(6, 12, 12, seed=k + (side == "target")))
    common = dict(root=str(root), index_cache=str(tmp_path / "cache"), frames=3, resolution=8, num_workers=0)
    names = {s: [build_dataset("paired", split=s, **common).item_name(i) for i in range(2 if s == "train" else 1)]
             for s in ("train", "test")}
    assert names == {"train": ["train/target/a", "train/target/b"], "test": ["test/target/c"]}
    assert len(build_dataset("paired", split="all", **common)) == 3
    datamodule = VideoDataModule(DataConfig(name="paired", condition="edges", **common), batch_size=2)
    batch = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)
    assert batch["video"].shape == (2, 3, 3, 8, 8) and batch["condition"].shape == (2, 1, 3, 8, 8)
