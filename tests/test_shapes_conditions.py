"""`shapes` for conditional synthesis: backward flow and validity masks (checked by warping real frames and by hand),
keypoints, the `condition` maps, and how they travel through the DataModule."""
import math

import pytest
import torch
import torch.nn.functional as F

from zoo.config import DataConfig
from zoo.datasets import build_dataset
from zoo.datasets.datamodule import RawItems, VideoDataModule
from zoo.datasets.shapes import KEYPOINTS, MOTIONS, NUM_KEYPOINTS, SHAPES, render_clip
from zoo.datasets.transforms import draw_flip
from zoo.errors import ZooError
from zoo.warp import warp

R = 48


def frames_of(clip) -> torch.Tensor:
    return clip["pixels"].permute(0, 3, 1, 2).double()  # (T, 3, H, W), 0..255


def interior(mask: torch.Tensor) -> torch.Tensor:
    """Pixels whose 3x3 neighbourhood is inside `mask` `[..., H, W]` (away from the anti-aliased edge)."""
    return -F.max_pool2d(-mask.double().reshape(-1, 1, *mask.shape[-2:]), 3, 1, 1).reshape(mask.shape) > 0


@pytest.mark.parametrize("index", range(9))
def test_backward_flow_warps_the_previous_frame_onto_the_next(index):
    clip = render_clip(seed=0, index=index, frames=5, resolution=R, frame_stride=2)
    video, seg = frames_of(clip), clip["segmentation"]
    for k in range(4):
        back, valid = clip["flow_back"][:, k].double(), clip["flow_back_valid"][k]
        predicted = warp(video[k : k + 1], back[None])[0]
        error = (predicted - video[k + 1]).abs().mean(0)  # (H, W), grey levels
        source = ((torch.arange(R)[:, None] + back[1]).round().long().clamp(0, R - 1),
                  (torch.arange(R)[None, :] + back[0]).round().long().clamp(0, R - 1))
        core = interior(seg[k + 1] > 0) & interior(seg[k] > 0)[source]  # on the shape at k+1 and where it came from
        assert core.sum() >= 5 and valid[core].all()
        # bilinear resampling of the stripes (period 6-10 px) costs a few grey levels; a wrong flow costs tens
        assert error[core].mean() < 12.0, f"video {index} frames {k}->{k + 1}: warp error {error[core].mean():.2f}"
        still = (video[k] - video[k + 1]).abs().mean(0)[core].mean()
        wrong = (warp(video[k : k + 1], -back[None])[0] - video[k + 1]).abs().mean(0)[core].mean()
        if still > 10 and core.sum() >= 20:  # it moved: no flow, or the flow of the other direction, is clearly worse
            assert error[core].mean() < 0.4 * still and error[core].mean() < 0.4 * wrong
        far = ~(F.max_pool2d(((seg[k] > 0) | (seg[k + 1] > 0)).double()[None], 5, 1, 2)[0] > 0)
        assert valid[far].all() and error[far].max() < 1e-9, "static background far from the shape is exact"
        # forward flow in the zoo.warp convention: warp(frame k+1, flow_k) reproduces frame k
        forward = warp(video[k + 1 : k + 2], clip["flow"][:, k].double()[None])[0]
        core_k = interior(seg[k] > 0) & clip["flow_valid"][k]
        assert (forward - video[k]).abs().mean(0)[core_k].mean() < 12.0


@pytest.mark.parametrize("index", range(9))
def test_invalid_pixels_are_exactly_the_covered_and_uncovered_background(index):
    clip = render_clip(seed=0, index=index, frames=6, resolution=R)
    shape = clip["segmentation"] > 0
    covered = ~shape[:-1] & shape[1:]  # background at k that the shape covers at k+1
    uncovered = shape[:-1] & ~shape[1:]  # background at k+1 that the shape covered at k
    assert torch.equal(~clip["flow_valid"], covered)
    assert torch.equal(~clip["flow_back_valid"], uncovered)
    if int(clip["label"]) % len(MOTIONS) == 0:
        assert covered.any() and uncovered.any(), "a moving shape covers and uncovers background"
    assert clip["flow_valid"].dtype == torch.bool and clip["flow_back_valid"].shape == (5, R, R)
    assert clip["flow_back"][:, ~shape[1:]].abs().max() == 0, "zero on the static background of frame k+1"


def test_backward_and_forward_flow_are_inverse_motions():
    """flow_back(p) + flow(p + flow_back(p)) = 0 on the shape's interior: the rigid motion and its inverse."""
    checked = 0
    for index in range(9):
        clip = render_clip(seed=1, index=index, frames=4, resolution=R, frame_stride=3)
        seg = clip["segmentation"]
        for k in range(3):
            back, fwd = clip["flow_back"][:, k].double(), clip["flow"][:, k].double()
            round_trip = warp(fwd[None], back[None])[0] + back  # flow is affine inside the shape: bilinear is exact
            source = (torch.arange(R)[:, None] + back[1]).round().long().clamp(0, R - 1), \
                (torch.arange(R)[None, :] + back[0]).round().long().clamp(0, R - 1)
            core = interior(seg[k + 1] > 0) & interior(interior(seg[k] > 0))[source]
            checked += int(core.sum())
            assert round_trip[:, core].abs().max() < 1e-3
    assert checked > 500


def test_backward_flow_of_a_rotation_by_hand():
    """Rotation in place about the centre c by w per clip frame: the point under p at k+1 was at
    c + R(-w) (p - c) at k, p the pixel centre (column + 0.5, row + 0.5)."""
    index = next(i for i in range(50) if int(render_clip(0, i, 1, 16)["label"]) % 3 == 1)
    clip = render_clip(seed=0, index=index, frames=3, resolution=R, frame_stride=2)
    w, (cx, cy) = float(clip["rotation_speed"]), clip["centre"].double().tolist()
    assert w != 0
    ys, xs = torch.meshgrid(torch.arange(R, dtype=torch.float64) + 0.5, torch.arange(R, dtype=torch.float64) + 0.5,
                            indexing="ij")
    dx, dy = xs - cx, ys - cy
    expected_x = cx + math.cos(w) * dx + math.sin(w) * dy - xs
    expected_y = cy - math.sin(w) * dx + math.cos(w) * dy - ys
    inside = clip["segmentation"][1] > 0
    assert (clip["flow_back"][0, 0].double() - expected_x)[inside].abs().max() < 1e-3
    assert (clip["flow_back"][1, 0].double() - expected_y)[inside].abs().max() < 1e-3


def test_keypoints_are_fixed_in_the_shape_and_turn_with_it():
    for index in range(30):
        clip = render_clip(seed=2, index=index, frames=4, resolution=R)
        shape, motion = divmod(int(clip["label"]), len(MOTIONS))
        kp = clip["keypoints"].double()
        assert kp.shape == (4, NUM_KEYPOINTS, 2) and clip["keypoints"].dtype == torch.float32
        centre = clip["centre"].double() - 0.5  # first-frame centre, pixel-index convention
        assert (kp[0, 0] - centre).abs().max() < 1e-4
        assert ((kp >= 0) & (kp <= R - 1)).all(), "the shapes stay in the frame"
        col, row = kp[..., 0].round().long(), kp[..., 1].round().long()
        assert (clip["segmentation"][torch.arange(4), row[:, 0], col[:, 0]] > 0).all(), "the centre is on the shape"
        radius = (kp[:, 1:] - kp[:, :1]).norm(dim=-1)  # (T, 4)
        local = torch.tensor(KEYPOINTS[shape], dtype=torch.float64)[1:].norm(dim=-1)
        if motion != 2:  # no scale pulse: distances to the centre are the shape's size times the local radius
            assert (radius - float(clip["size"]) * local).abs().max() < 1e-3
        if motion == 1:  # rotating: every point turns by rotation_speed per frame
            d = kp[:, 1:] - kp[:, :1]
            angle = torch.atan2(d[..., 1], d[..., 0])
            turn = torch.remainder(angle[1:] - angle[:-1] + math.pi, 2 * math.pi) - math.pi
            assert (turn - float(clip["rotation_speed"])).abs().max() < 1e-4


def test_keypoint_condition_is_one_gaussian_per_keypoint():
    dataset = build_dataset("shapes", frames=3, resolution=32, condition="keypoints", keypoint_sigma=2.0)
    assert dataset.condition_channels == NUM_KEYPOINTS == 5
    item = dataset[4]
    heat, kp = item["condition"], item["keypoints"]
    assert heat.shape == (5, 3, 32, 32) and heat.dtype == torch.float32
    for t, k, (row, col) in [(0, 0, (3, 7)), (2, 3, (20, 11)), (1, 4, (31, 0))]:
        x, y = kp[t, k].tolist()
        assert heat[k, t, row, col].item() == pytest.approx(math.exp(-((col - x) ** 2 + (row - y) ** 2) / 8), abs=1e-6)
    flat = heat.flatten(2).argmax(-1)  # (K, T): the peak sits on the keypoint's nearest pixel
    assert torch.equal(flat // 32, kp[..., 1].round().long().T) and torch.equal(flat % 32, kp[..., 0].round().long().T)


def test_segmentation_condition_is_the_one_hot_segmentation_on_every_item_path():
    dataset = build_dataset("shapes", frames=4, resolution=16, condition="segmentation", num_videos=8)
    assert dataset.condition_channels == 1 + len(SHAPES) == 4
    for key in (3, (3, 17)):
        raw, item = dataset.raw_item(key), dataset[key]
        for it in (raw, item):
            cond = it["condition"]
            assert cond.shape == (4, 4, 16, 16) and cond.dtype == torch.float32
            assert torch.equal(cond.argmax(0), it["segmentation"]) and torch.equal(cond.sum(0), torch.ones(4, 16, 16))
            assert set(cond.unique().tolist()) == {0.0, 1.0}
        assert torch.equal(raw["condition"], item["condition"]) and "video" in item and "pixels" in raw
    plain = build_dataset("shapes", frames=4, resolution=16, num_videos=8)
    assert "condition" not in plain[3] and plain.condition_channels == 0
    assert torch.equal(plain[3]["video"], dataset[3]["video"]), "the condition changes no pixel"


def test_edges_of_shapes_outline_the_shape():
    dataset = build_dataset("shapes", frames=2, resolution=32, condition="edges")
    item = dataset[0]
    edges, seg = item["condition"], item["segmentation"]
    assert dataset.condition_channels == 1 and edges.shape == (1, 2, 32, 32)
    assert set(edges.unique().tolist()) == {0.0, 1.0}
    boundary = F.max_pool2d((seg > 0).double()[None], 5, 1, 2)[0] > 0
    boundary &= -F.max_pool2d(-(seg > 0).double()[None], 5, 1, 2)[0] <= 0
    assert edges[0][boundary].mean() > 0.2, "the outline is found"
    assert (edges[0] > 0).sum() > 0 and edges[0][~boundary & (seg == 0)].sum() == 0, "no edges on the background"


def test_conditions_a_dataset_cannot_give_are_one_line_errors():
    with pytest.raises(ZooError, match=r"^data.condition=source is not available for shapes; valid for shapes: "
                                       r"none, segmentation, edges, keypoints$"):
        build_dataset("shapes", condition="source")
    with pytest.raises(ZooError, match=r"data.edge_low=0.5 is above data.edge_high=0.3"):
        build_dataset("shapes", condition="edges", edge_low=0.5, edge_high=0.3)
    with pytest.raises(ZooError, match=r"data.condition = 'depth' is out of range; valid: one of none, "):
        build_dataset("shapes", condition="depth")
    for field, bad in (("edge_low", 0.0), ("edge_high", float("nan")), ("keypoint_sigma", 0.0),
                       ("condition_classes", 0)):
        with pytest.raises(ZooError, match=rf"data.{field} = .* is out of range"):
            build_dataset("shapes", **{field: bad})


def test_batches_carry_condition_flows_and_keypoints_after_the_transfer():
    config = DataConfig(frames=3, resolution=16, num_videos=8, num_workers=0, condition="segmentation")
    datamodule = VideoDataModule(config, batch_size=2, seed=0)
    batch = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)
    assert batch["video"].shape == (2, 3, 3, 16, 16)
    assert batch["condition"].shape == (2, datamodule.dataset.condition_channels, 3, 16, 16)
    assert batch["condition"].dtype == torch.float32
    assert torch.equal(batch["condition"].argmax(1), batch["segmentation"])
    assert batch["flow_back"].shape == batch["flow"].shape == (2, 2, 2, 16, 16)
    assert batch["flow_valid"].dtype == torch.bool and batch["flow_back_valid"].shape == (2, 2, 16, 16)
    assert batch["keypoints"].shape == (2, 3, NUM_KEYPOINTS, 2)


def test_a_mirrored_training_clip_mirrors_its_maps_flows_and_keypoints():
    config = DataConfig(frames=3, resolution=R, num_videos=8, hflip=True, condition="keypoints")
    dataset = build_dataset("shapes", config)
    items = RawItems(dataset)
    draw = next(d for d in range(50) if draw_flip(0, d))
    plain, flipped = dataset.raw_item((5, draw)), items[(5, draw)]
    assert torch.equal(flipped["pixels"], plain["pixels"].flip(2))
    assert torch.equal(flipped["segmentation"], plain["segmentation"].flip(-1))
    assert torch.equal(flipped["flow_back_valid"], plain["flow_back_valid"].flip(-1))
    assert torch.allclose(flipped["condition"], dataset.condition_of(flipped), atol=1e-6), "heatmaps of the new points"
    assert torch.allclose(flipped["keypoints"][..., 0], R - 1 - plain["keypoints"][..., 0])
    errors = []
    for it in (plain, flipped):
        video, seg = frames_of(it), it["segmentation"]
        predicted = warp(video[:1], it["flow_back"][:, 0].double()[None])[0]
        core = interior(seg[1] > 0) & interior(seg[0] > 0)
        errors.append((predicted - video[1]).abs().mean(0)[core].mean())
        assert errors[-1] < 0.4 * (video[0] - video[1]).abs().mean(0)[core].mean()
    assert abs(errors[0] - errors[1]) < 1e-9, "the mirrored flow warps the mirrored frames exactly as before"
