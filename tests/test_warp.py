"""`zoo.warp.warp`: the flow convention every flow-based model and the warping error rely on, checked by hand."""
import pytest
import torch

from zoo.warp import warp


def test_integer_shift_reads_the_pixel_the_flow_points_at():
    image = torch.arange(20.0).reshape(1, 1, 4, 5)
    flow = torch.zeros(1, 2, 4, 5)
    flow[:, 0] = 1.0  # every pixel reads its right-hand neighbour
    out = warp(image, flow)
    assert torch.equal(out[0, 0, :, :4], image[0, 0, :, 1:])
    assert torch.equal(out[0, 0, :, 4], image[0, 0, :, 4])  # border padding: the last column reads itself
    flow = torch.zeros(1, 2, 4, 5)
    flow[:, 1] = -1.0  # every pixel reads the row above
    out = warp(image, flow)
    assert torch.equal(out[0, 0, 1:], image[0, 0, :3]) and torch.equal(out[0, 0, 0], image[0, 0, 0])


def test_half_pixel_is_the_mean_of_the_two_neighbours_and_zero_flow_is_identity():
    image = torch.rand(2, 3, 6, 7, dtype=torch.float64)
    assert torch.allclose(warp(image, torch.zeros(2, 2, 6, 7, dtype=torch.float64)), image, atol=1e-12)
    flow = torch.zeros(2, 2, 6, 7, dtype=torch.float64)
    flow[:, 0, 2, 3] = 0.5
    assert warp(image, flow)[:, :, 2, 3].allclose((image[:, :, 2, 3] + image[:, :, 2, 4]) / 2, atol=1e-12)


def test_wrong_shapes_are_refused():
    with pytest.raises(ValueError, match=r"flow \[B, 2, H, W\]"):
        warp(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))
