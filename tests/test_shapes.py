import pytest
import torch
import torch.nn.functional as F

from zoo.datasets import build_dataset
from zoo.datasets.shapes import MOTIONS, SHAPES, render_clip


def test_deterministic_per_seed_and_index():
    a = build_dataset("shapes", frames=6, resolution=32)
    b = build_dataset("shapes", frames=6, resolution=32)
    assert torch.equal(a[3]["video"], b[3]["video"])
    assert not torch.equal(a[3]["video"], a[4]["video"])
    other_seed = build_dataset("shapes", frames=6, resolution=32, seed=1)
    assert not torch.equal(a[3]["video"], other_seed[3]["video"])
    assert torch.equal(a[(3, 11)]["video"], b[(3, 11)]["video"]), "training draws are deterministic too"


def test_item_contract_any_size():
    for frames, resolution, stride in [(16, 64, 1), (5, 24, 3), (1, 16, 1)]:
        item = build_dataset("shapes", frames=frames, resolution=resolution, frame_stride=stride)[0]
        assert item["video"].shape == (3, frames, resolution, resolution)
        assert item["video"].min() >= -1 and item["video"].max() <= 1
        assert item["label"].dtype == torch.long and 0 <= item["label"] < len(SHAPES) * len(MOTIONS)
        assert item["segmentation"].shape == (frames, resolution, resolution)
        assert item["flow"].shape == (2, frames - 1, resolution, resolution)


def test_every_class_occurs():
    dataset = build_dataset("shapes", frames=2, resolution=16)
    labels = {int(dataset[i]["label"]) for i in range(200)}
    assert labels == set(range(9))


def test_segmentation_matches_label_and_pixels():
    dataset = build_dataset("shapes", frames=4, resolution=48)
    for i in range(12):
        item = dataset[i]
        shape = int(item["label"]) // len(MOTIONS)
        seg = item["segmentation"]
        assert set(seg.unique().tolist()) == {0, 1 + shape}
        near_shape = F.max_pool2d((seg[0] > 0).float()[None, None], 5, 1, 2)[0, 0] > 0  # skip anti-aliased edge
        background = item["video"][:, 0][:, ~near_shape]
        assert background.std(dim=-1).max() < 1e-6, "background colour is uniform"
        shape_pixels = item["video"][:, 0][:, seg[0] > 0]
        assert (shape_pixels - background[:, :1]).abs().amax(0).min() > 0.02, "shape pixels differ from background"


def warp_back(next_frame: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample frame t+1 at p + flow(p): reproduces frame t where the flow is right."""
    c, h, w = next_frame.shape
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    grid = torch.stack([(xs + flow[0]) / w * 2 - 1, (ys + flow[1]) / h * 2 - 1], dim=-1)
    return F.grid_sample(next_frame[None], grid[None], mode="bilinear", align_corners=False)[0]


def test_flow_warps_each_frame_onto_the_next_where_visible():
    resolution = 64
    for index in range(9):
        clip = render_clip(seed=0, index=index, frames=5, resolution=resolution, frame_stride=2)
        video = clip["pixels"].permute(3, 0, 1, 2).float()  # c t h w
        seg, flow = clip["segmentation"], clip["flow"]
        for t in range(4):
            inside = seg[t] > 0
            # pixels whose surface point stays well inside the shape at t+1 (not near an edge, not occluded)
            target = torch.stack(torch.meshgrid(torch.arange(resolution), torch.arange(resolution), indexing="ij"))
            tx = (target[1] + flow[0, t]).round().long().clamp(0, resolution - 1)
            ty = (target[0] + flow[1, t]).round().long().clamp(0, resolution - 1)
            eroded = -F.max_pool2d(-(seg[t + 1] > 0).float()[None, None], 3, 1, 1)[0, 0] > 0
            visible = inside & eroded[ty, tx]
            assert visible.sum() > 5, "some pixels must be checkable"
            warped = warp_back(video[:, t + 1], flow[:, t])
            error = (warped - video[:, t]).abs()[:, visible].mean()
            zero_flow_error = (video[:, t + 1] - video[:, t]).abs()[:, visible].mean()
            assert error < 6.0, f"video {index} frame {t}: warp error {error:.1f} of 255"
            if flow[:, t][:, visible].abs().max() > 1.5:  # the shape moved: zero flow must be clearly worse
                assert error < 0.5 * zero_flow_error


def test_flow_is_zero_on_background():
    clip = render_clip(seed=0, index=1, frames=4, resolution=32)
    background = clip["segmentation"][:-1] == 0
    assert clip["flow"][:, background].abs().max() == 0


def test_image_frames_for_joint_training_come_from_other_videos():
    from zoo.config import DataConfig
    from zoo.datasets.base import to_video
    from zoo.datasets.datamodule import VideoDataModule

    datamodule = VideoDataModule(DataConfig(frames=6, resolution=24, extra_frames=3, num_workers=0), 2)
    item = to_video(datamodule.train_dataloader().dataset[(5, 17)])
    assert item["image_frames"].shape == (3, 3, 24, 24)
    again = to_video(datamodule.train_dataloader().dataset[(5, 17)])
    assert torch.equal(item["image_frames"], again["image_frames"])
    for k in range(3):
        frame = item["image_frames"][:, k]
        assert not any(torch.equal(frame, item["video"][:, t]) for t in range(6)), "a frame of the item's own clip"


def test_items_carry_the_trajectory_parameters():
    """The drawn parameters come with every item, in the units the docstring gives: the centre moves by `velocity`
    per clip frame (stride included), only the motion's own speed is non-zero, size scales with the resolution."""
    from zoo.datasets.shapes import MOTIONS, render_clip

    seen = set()
    for index in range(40):
        a, b = render_clip(3, index, 8, 64, 2, 10), render_clip(3, index, 8, 64, 2, 12)  # b starts one clip frame on
        motion = MOTIONS[int(a["label"]) % 3]
        seen.add(motion)
        assert 0 <= float(a["hue"]) < 1 and 0 <= float(a["background"]) <= 0.25
        assert float(render_clip(3, index, 8, 32)["size"]) * 2 == pytest.approx(float(a["size"]))
        assert (float(a["rotation_speed"]) != 0) == (motion == "rotate")
        assert (float(a["scale_pulse"]) != 0) == (motion == "scale")
        assert bool(a["velocity"].any()) == (motion == "bounce")
        step = b["centre"] - a["centre"]
        if motion == "bounce" and torch.allclose(step.abs(), a["velocity"].abs(), atol=1e-3):
            seen.add("moved by velocity")
        elif motion != "bounce":
            assert torch.equal(step, torch.zeros(2))
    assert seen == {"bounce", "rotate", "scale", "moved by velocity"}
