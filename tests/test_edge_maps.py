"""`conditions.edge_maps`: Canny edges of the luminance, checked on hand-made steps (where the edge lies, the
thresholds in their documented units, the hysteresis); what file datasets refuse; `shapes` edges."""

from __future__ import annotations

import pytest
import torch

from zoo.datasets import build_dataset
from zoo.datasets.conditions import edge_maps
from zoo.errors import ZooError


def step(left: tuple[int, int, int], right: tuple[int, int, int], size: int = 16, at: int = 8) -> torch.Tensor:
    """uint8 [1, size, size, 3]: colour `left` in columns < `at`, `right` from `at` on."""
    frame = torch.empty(1, size, size, 3, dtype=torch.uint8)
    frame[:, :, :at] = torch.tensor(left, dtype=torch.uint8)
    frame[:, :, at:] = torch.tensor(right, dtype=torch.uint8)
    return frame


def test_a_step_gives_one_edge_exactly_on_the_last_pixel_before_it():
    edges = edge_maps(step((0, 0, 0), (255, 255, 255)), 0.2, 0.4)
    assert edges.shape == (1, 1, 16, 16) and edges.dtype == torch.float32
    expected = torch.zeros(16, 16)
    expected[:, 7] = 1
    assert torch.equal(edges[0, 0], expected)
    across = edge_maps(step((200, 200, 200), (90, 90, 90)).transpose(1, 2).contiguous(), 0.2, 0.4)  # horizontal step
    assert torch.equal(across[0, 0], expected.T)
    assert torch.equal(edge_maps(step((9, 9, 9), (9, 9, 9)), 0.2, 0.4), torch.zeros(1, 1, 16, 16)), "flat: none"


def test_thresholds_and_hysteresis_in_the_documented_units():
    """A step of g grey levels has magnitude ~2.59 g / 255: 20 levels (0.20) is weak, 60 (0.61) is strong."""
    assert edge_maps(step((0, 0, 0), (20, 20, 20)), 0.19, 0.4).sum() == 0, "weak alone is dropped (hysteresis)"
    assert edge_maps(step((0, 0, 0), (60, 60, 60)), 0.19, 0.4).sum() == 16
    assert edge_maps(step((0, 0, 0), (60, 60, 60)), 0.19, 0.62).sum() == 0, "below edge_high: no edge"
    mixed = step((0, 0, 0), (60, 60, 60))
    mixed[:, 8:, 8:] = 25  # the lower half of the step is weak (0.25) but 8-connected to the strong upper half
    assert edge_maps(mixed, 0.2, 0.4)[0, 0, :5, 7].sum() == 5 and edge_maps(mixed, 0.2, 0.4)[0, 0, 11:, 7].sum() == 5
    assert edge_maps(mixed, 0.26, 0.4)[0, 0, 10:].sum() == 0, "weak below edge_low is dropped"


def test_edges_follow_luminance_not_colour():
    """Pure red (luma 0.299 x 255 = 76.2) beside green of the same luma (0.587 x 130 = 76.3): no edge."""
    assert edge_maps(step((255, 0, 0), (0, 130, 0)), 0.2, 0.4).sum() == 0
    assert edge_maps(step((255, 0, 0), (0, 255, 0)), 0.2, 0.4).sum() == 16


def test_file_datasets_offer_edges_only_and_refuse_the_rest_in_one_line():
    for name in ("folder", "ucf101", "kinetics600"):
        for condition in ("segmentation", "keypoints", "source"):
            with pytest.raises(ZooError, match=rf"^data.condition={condition} is not available for {name}; valid "
                                               rf"for {name}: none, edges$"):
                build_dataset(name, condition=condition)


def test_shapes_edges_are_those_of_its_frames():
    dataset = build_dataset("shapes", frames=3, resolution=24, frame_stride=2, condition="edges", num_videos=4)
    raw = dataset.raw_item((2, 9))
    assert torch.equal(raw["condition"], edge_maps(raw["pixels"], 0.2, 0.4))
