"""`paired` with user-supplied flow files (`flow/<name>.npz`), on real files: PNG frames written with PIL, videos
with `zoo.video_io.write_video`, flow files with `np.savez`. A target that is a known translation, with its exact
flow, checks the crop, the resize and the scaling of the displacements through `zoo.warp`."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.config import DataConfig
from zoo.datasets import build_dataset
from zoo.datasets.datamodule import VideoDataModule
from zoo.datasets.flow_files import consistent, lands_inside
from zoo.datasets.transforms import flip_item
from zoo.errors import ZooError
from zoo.evaluation.conditional import check_needs
from zoo.metrics.presets import Preset
from zoo.video_io import write_video
from zoo.warp import warp

R, T, H, W = 16, 6, 24, 40  # output side; source frames and size (a wide, non-square source)
V = (3.0, -1.5)  # the translation, pixels per frame at the source size (x, y)


def translating(frames: int, height: int, width: int, velocity=V) -> np.ndarray:
    """uint8 `[T, H, W, 3]`: a smooth texture moving by `velocity` per frame, frame k = f(p - k v)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    out = []
    for k in range(frames):
        u, v = x - k * velocity[0], y - k * velocity[1]
        image = [128 + 50 * np.sin(2 * np.pi * u / 17 + c) + 40 * np.cos(2 * np.pi * v / 13 - c) for c in range(3)]
        out.append(np.stack(image, -1).round().clip(0, 255).astype(np.uint8))
    return np.stack(out)


def png_frames(folder: Path, frames: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{t:05d}.png")


def constant_flow(frames: int, height: int, width: int, velocity) -> np.ndarray:
    """float32 `[T-1, 2, H, W]` of one displacement everywhere."""
    return np.broadcast_to(np.asarray(velocity, np.float32)[None, :, None, None],
                           (frames - 1, 2, height, width)).copy()


def add_pair(root: Path, name: str, frames: np.ndarray, video: bool = False, **arrays) -> None:
    """A pair (source = target: the flow is the target's) plus its flow file when `arrays` are given."""
    for side in ("source", "target"):
        if video:
            write_video(frames, root / side / f"{name}.mp4")
        else:
            png_frames(root / side / name, frames)
    if arrays:
        (root / "flow").mkdir(parents=True, exist_ok=True)
        np.savez(root / "flow" / f"{name}.npz", **arrays)


def settings(root: Path, tmp_path: Path, **changes) -> dict:
    return {"root": str(root), "index_cache": str(tmp_path / "cache"), "num_workers": 0, "resolution": R, "frames": 4,
            **changes}


def warp_residual(item: dict, flow: torch.Tensor) -> float:
    """Mean |warp(frame_{k+1}, flow_k) - frame_k| in grey levels over `flow_valid`, every k of the clip."""
    frames = item["pixels"].permute(0, 3, 1, 2).float()  # (T, 3, R, R)
    warped = warp(frames[1:], flow.transpose(0, 1))  # (T-1, 3, R, R)
    valid = item["flow_valid"][:, None].expand_as(warped)
    return float((warped - frames[:-1]).abs()[valid].mean())


@pytest.mark.parametrize("resize", ["short_side_crop", "stretch"])
def test_a_translation_warps_back_after_the_crop_and_resize(tmp_path, resize):
    root = tmp_path / "pairs"
    add_pair(root, "move", translating(T, H, W), forward=constant_flow(T, H, W, V),
             backward=constant_flow(T, H, W, (-V[0], -V[1])))
    dataset = build_dataset("paired", **settings(root, tmp_path, resize=resize))
    item = dataset.raw_item(0)
    assert item["flow"].shape == item["flow_back"].shape == (2, 3, R, R) and item["flow"].dtype == torch.float32
    assert item["flow_valid"].shape == item["flow_back_valid"].shape == (3, R, R)
    crop_w, crop_h = (H, H) if resize == "short_side_crop" else (W, H)  # the square of side min(H, W), or all
    sx, sy = R / crop_w, R / crop_h
    assert torch.allclose(item["flow"][0], torch.full((3, R, R), V[0] * sx))
    assert torch.allclose(item["flow"][1], torch.full((3, R, R), V[1] * sy))
    assert torch.allclose(item["flow_back"], -item["flow"])
    # every pixel is consistent; the ones whose target left the frame (or the crop) are not valid
    assert item["flow_valid"].float().mean() > 0.6 and not item["flow_valid"][:, :, -1].any()
    assert not item["flow_valid"][:, 0, :].any()  # y moves up by 1.5 * sy: row 0 reads above the frame
    right = warp_residual(item, item["flow"])
    assert right < 3, "warp(frame_{k+1}, flow_k) reproduces frame_k on valid pixels"
    unscaled = item["flow"].clone()
    unscaled[0], unscaled[1] = V[0], V[1]
    swapped = item["flow"].flip(0)
    assert warp_residual(item, unscaled) > 4 * right and warp_residual(item, swapped) > 4 * right
    assert dataset.flow_source == "user-supplied flow files (flow); masks by forward-backward consistency"


def test_clips_take_their_own_flows_and_a_flipped_item_negates_x(tmp_path):
    root = tmp_path / "pairs"
    forward = np.random.default_rng(0).normal(0, 2, size=(T - 1, 2, R, R)).astype(np.float32)
    valid = np.random.default_rng(1).random((T - 1, R, R)) < 0.7
    add_pair(root, "noise", translating(T, R, R), video=True, forward=forward, valid_forward=valid)
    dataset = build_dataset("paired", **settings(root, tmp_path))
    start = dataset.start_of(0, None)
    item = dataset.raw_item(0)  # source size = resolution: no crop, no resize; frames start..start+3
    assert torch.equal(item["flow"], torch.from_numpy(forward[start : start + 3]).transpose(0, 1))
    expected = torch.from_numpy(valid[start : start + 3]) & lands_inside(item["flow"].transpose(0, 1))
    assert torch.equal(item["flow_valid"], expected), "the file's mask, less the pixels whose flow leaves the frame"
    assert "flow_back" not in item and "file" in dataset.flow_source
    flipped = flip_item(item)
    assert torch.equal(flipped["flow"][0], -item["flow"][0].flip(-1))
    assert torch.equal(flipped["flow"][1], item["flow"][1].flip(-1))
    assert torch.equal(flipped["flow_valid"], item["flow_valid"].flip(-1))


def test_a_flipped_translation_still_warps_back(tmp_path):
    root = tmp_path / "pairs"
    add_pair(root, "move", translating(T, H, W), forward=constant_flow(T, H, W, V))
    item = build_dataset("paired", **settings(root, tmp_path)).raw_item(0)
    flipped = flip_item(item)
    assert warp_residual(flipped, flipped["flow"]) < 3
    assert warp_residual(flipped, item["flow"]) > 4 * warp_residual(flipped, flipped["flow"])


def test_the_consistency_mask_on_a_hand_case():
    forward = torch.zeros(1, 2, 4, 6)
    forward[:, 0] = 1.0  # everything moves one pixel right
    backward = -forward.clone()  # at frame 1's pixels: back one pixel left
    backward[0, 0, 1, 3] = 2.0  # (x=3, y=1) disagrees: |1 + 2|^2 = 9 > 0.01 (1 + 4) + 0.5
    backward[0, 0, 2, 4] = -1.5  # (x=4, y=2): |1 - 1.5|^2 = 0.25 < 0.01 (1 + 2.25) + 0.5 = 0.5325
    backward[0, 0, 3, 4] = -1.8  # (x=4, y=3): 0.64 > 0.01 (1 + 3.24) + 0.5 = 0.5424
    expected = torch.ones(1, 4, 6, dtype=torch.bool)
    expected[0, :, 5] = False  # x = 5 + 1 leaves the frame
    expected[0, 1, 2] = expected[0, 3, 3] = False  # their targets (3, 1) and (4, 3) are inconsistent
    assert torch.equal(consistent(forward, backward), expected)
    # the backward direction, at frame 1's pixels: x = 0 reads x = -1; (3, 1) reads forward at (5, 1), fine,
    # +2 leaves the frame; (4, 3) -> x = 2.2, forward there is 1: |1 - 1.8|^2 = 0.64 > 0.5 + 0.01 (1 + 3.24)
    back_expected = torch.ones(1, 4, 6, dtype=torch.bool)
    back_expected[0, :, 0] = back_expected[0, 1, 3] = back_expected[0, 3, 4] = False
    assert torch.equal(consistent(backward, forward), back_expected)


class Marker:
    """Unpickling it writes a file: proof that nothing unpickled the flow file."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_bad_flow_files_are_one_line_each_and_counted(tmp_path):
    root = tmp_path / "pairs"
    good = translating(T, H, W)
    flows = constant_flow(T, H, W, V)
    marker = tmp_path / "unpickled"
    add_pair(root, "a_good", good, forward=flows, backward=-flows)
    add_pair(root, "b_shape", good, forward=flows[:, 0], backward=-flows)
    add_pair(root, "c_frames", good, forward=flows[:-1], backward=-flows[:-1])
    add_pair(root, "d_size", good, forward=flows[..., :-2], backward=-flows)
    add_pair(root, "e_object", good, forward=np.array([Marker(str(marker))], dtype=object), backward=-flows)
    add_pair(root, "f_no_forward", good, backward=-flows)
    add_pair(root, "g_other_keys", good, forward=flows)
    add_pair(root, "i_missing", good)
    add_pair(root, "j_pickle", good)
    (root / "flow" / "j_pickle.npz").write_bytes(pickle.dumps({"forward": Marker(str(marker))}))
    add_pair(root, "k_mask", good, forward=flows, backward=-flows, valid_forward=np.ones((T - 1, H, W), np.uint8))
    dataset = build_dataset("paired", max_bad_fraction=1.0, **settings(root, tmp_path))
    flow = root / "flow"
    problems = {e.path.split("/")[1]: e.problem for e in dataset.entries if e.problem}
    assert problems == {
        "b_shape": f"unreadable: {flow}/b_shape.npz: 'forward' is [5, {H}, {W}]; expected [T-1, 2, H, W] (x then y "
                   "displacements)",
        "c_frames": f"unreadable: {flow}/c_frames.npz: 'forward' holds 4 flows; the target has 6 frames, so 5 (one "
                    "per consecutive pair)",
        "d_size": f"unreadable: {flow}/d_size.npz: 'forward' is 38x24 pixels, the target 40x24: flows are at the "
                  "target's source size",
        "e_object": f"unreadable: {flow}/e_object.npz: 'forward' holds Python objects (pickled); store plain float / "
                    "bool arrays",
        "f_no_forward": f"unreadable: {flow}/f_no_forward.npz: no 'forward' array (float [T-1, 2, H, W])",
        "g_other_keys": f"mismatched: {flow}/g_other_keys.npz holds forward, the first flow file forward, backward; "
                        "every flow file holds the same arrays",
        "i_missing": f"no flow: {flow}/i_missing.npz is missing for {root}/target/i_missing (with a flow/ folder, "
                     "every pair needs flow/<name>.npz)",
        "j_pickle": f"unreadable: {flow}/j_pickle.npz: not a readable .npz archive (BadZipFile: File is not a zip "
                    "file)",
        "k_mask": f"unreadable: {flow}/k_mask.npz: 'valid_forward' is uint8; expected bool",
    }
    assert all("\n" not in p for p in problems.values())
    assert dataset.counts["unreadable"] == 9 and dataset.counts["usable"] == 1 and len(dataset) == 10
    assert torch.isfinite(dataset.raw_item(0)["flow"]).all() and not marker.exists(), "nothing was unpickled"
    with pytest.raises(ZooError, match=r"^9 of 10 paired videos are missing, unreadable or too large"):
        build_dataset("paired", **settings(root, tmp_path))


def test_a_flow_with_nan_is_a_bad_pair_when_read(tmp_path):
    root = tmp_path / "pairs"
    flows = constant_flow(T, H, W, V)
    add_pair(root, "a_good", translating(T, H, W), forward=flows)
    add_pair(root, "b_nan", translating(T, H, W), forward=np.where(np.arange(W) == 7, np.nan, flows))
    dataset = build_dataset("paired", max_bad_fraction=1.0, **settings(root, tmp_path))
    assert dataset.counts["usable"] == 2, "values are checked when read (a header check reads no data)"
    item = dataset.raw_item(1)  # replaced by the good pair
    first = dataset.start_of(1, None)
    assert dataset.failures == {"target/b_nan": f"{root}/flow/b_nan.npz: 'forward' flow {first} holds NaN or inf "
                                                "values"}
    assert torch.isfinite(item["flow"]).all() and item["flow"].shape == (2, 3, R, R)
    with pytest.raises(Exception, match="b_nan.npz: 'forward' flow 0 holds NaN or inf values"):
        dataset.decode_check(1)  # `zoo data check --decode` reads every flow


def test_strided_clips_are_refused_and_folders_without_flow_are_unchanged(tmp_path):
    root = tmp_path / "pairs"
    add_pair(root, "move", translating(T, H, W), forward=constant_flow(T, H, W, V))
    with pytest.raises(ZooError, match=r"^paired: the flow files in .*flow join consecutive frames, but "
                                       r"data.frame_stride=2 skips frames .*move flow/ away"):
        build_dataset("paired", **settings(root, tmp_path, frame_stride=2))
    plain = tmp_path / "plain"
    add_pair(plain, "move", translating(T, H, W))
    dataset = build_dataset("paired", **settings(plain, tmp_path, frame_stride=2, frames=3))
    assert dataset.flow_source is None and not {"flow", "flow_valid", "flow_back"} & dataset.raw_item(0).keys()
    warp_error = Preset("warp_error", "warp_error", 1, 1, 4, 1, "none")
    with pytest.raises(ZooError, match=r"^--metric warp_error needs the targets' flow and flow_valid, which paired "
                                       r"items do not carry \(.*flow/<name>.npz beside source/ and target/"):
        check_needs([warp_error], dataset.raw_item(0), DataConfig(name="paired"))
    check_needs([warp_error], build_dataset("paired", **settings(root, tmp_path)).raw_item(0), DataConfig())



def test_training_batches_carry_the_flows_vid2vid_reads(tmp_path):
    """vid2vid trains with flow supervision when batches hold `flow_back` / `flow_back_valid` (its module reads
    them, as on shapes): flipped training clips and all, through the DataModule."""
    root = tmp_path / "pairs"
    for k, name in enumerate(("a", "b")):
        velocity = (1.0 + k, -1.0)
        add_pair(root, name, translating(T, R, R, velocity), forward=constant_flow(T, R, R, velocity),
                 backward=constant_flow(T, R, R, (-velocity[0], -velocity[1])))
    datamodule = VideoDataModule(DataConfig(name="paired", condition="edges", hflip=True, **settings(root, tmp_path)),
                                 batch_size=2)
    batch = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)
    assert batch["flow_back"].shape == batch["flow"].shape == (2, 2, 3, R, R)
    assert batch["flow_back_valid"].shape == (2, 3, R, R) and batch["flow_back_valid"].dtype == torch.bool
    assert set(batch["flow_back"][:, 1].unique().tolist()) == {1.0}, "y is never negated"
    assert torch.equal(batch["flow_back"], -batch["flow"])
