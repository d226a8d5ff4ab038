"""Detector input conventions (resize modes, aspect policies, scaling) and I3D's TF "SAME" padding and pooling on
small inputs, against values worked out by hand (issue 19: mutation survivors). The full-network parity with the
shared reference vectors (tests/metrics/test_i3d.py) takes seconds per forward pass, too slow to repeat per mutant.
"""

import itertools

import pytest
import torch
import torch.nn.functional as F

from zoo.metrics.detectors.i3d import MaxPool3dSame, Unit3D, same_padding, split_padding
from zoo.metrics.preprocess import _tf_legacy_matrix, fit_frames, pixels_to_i3d_input, resize_frames

# -- resize modes -----------------------------------------------------------------------------------------------------


def test_tf_legacy_grid_by_hand():
    # 4 -> 3: source x = dst * 4/3 = 0, 1.33, 2.67 (no half-pixel offset)
    torch.testing.assert_close(_tf_legacy_matrix(4, 3, torch.device("cpu")), torch.tensor([
        [1.0, 0.0, 0.0, 0.0], [0.0, 2 / 3, 1 / 3, 0.0], [0.0, 0.0, 1 / 3, 2 / 3]], dtype=torch.float64))
    # 2 -> 5: x = 0, 0.4, 0.8, 1.2, 1.6; beyond the last pixel both taps clamp to it (weights add up to 1)
    torch.testing.assert_close(_tf_legacy_matrix(2, 5, torch.device("cpu")), torch.tensor([
        [1.0, 0.0], [0.6, 0.4], [0.2, 0.8], [0.0, 1.0], [0.0, 1.0]], dtype=torch.float64))


def test_resize_modes_by_hand():
    image = torch.tensor([[0.0, 10.0], [20.0, 30.0]]).view(1, 1, 2, 2)
    # align_corners=True (Chainer): 2 -> 3 puts the middle sample halfway; 2 -> 4 samples at 0, 1/3, 2/3, 1
    torch.testing.assert_close(resize_frames(image, (3, 3), "chainer_bilinear")[0, 0], torch.tensor([
        [0.0, 5.0, 10.0], [10.0, 15.0, 20.0], [20.0, 25.0, 30.0]]))
    torch.testing.assert_close(resize_frames(image, (1, 4), "chainer_bilinear")[0, 0],
                               torch.tensor([[0.0, 10 / 3, 20 / 3, 10.0]]))
    # align_corners=False (torch): rows 2 -> 1 sample at 0.5 (the mean row [10, 20]); columns 2 -> 4 at
    # (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25, clamped to the edge pixels
    torch.testing.assert_close(resize_frames(image, (1, 4), "torch_bilinear")[0, 0],
                               torch.tensor([[10.0, 12.5, 17.5, 20.0]]))
    # TF legacy: 2 -> 4 samples at 0, 0.5, 1, 1.5 (the last clamps)
    tf = resize_frames(image.double(), (4, 4), "tf_legacy_bilinear")
    assert tf.dtype == torch.float64
    torch.testing.assert_close(tf[0, 0, 0], torch.tensor([0.0, 5.0, 10.0, 10.0], dtype=torch.float64))
    torch.testing.assert_close(tf[0, 0, :, 0], torch.tensor([0.0, 10.0, 20.0, 20.0], dtype=torch.float64))
    wide = resize_frames(torch.arange(12.0).view(1, 1, 2, 6), (2, 3), "tf_legacy_bilinear")  # rows kept, cols /2
    torch.testing.assert_close(wide[0, 0], torch.tensor([[0.0, 2.0, 4.0], [6.0, 8.0, 10.0]]))
    assert resize_frames(image, (2, 2), "torch_bilinear") is image
    with pytest.raises(ValueError, match=r"^unknown resize mode 'cubic'; valid: tf_legacy_bilinear, torch_bilinear, "
                                         r"chainer_bilinear$"):
        resize_frames(image, (3, 3), "cubic")


def test_short_side_crop_keeps_the_centre_and_stretch_does_not():
    frames = torch.arange(4 * 8, dtype=torch.float32).view(1, 1, 4, 8)  # value = 8 row + col
    crop = fit_frames(frames, 2, "tf_legacy_bilinear", "short_side_crop")  # 4x8 -> 2x4 (exact pixels), cols 1..2
    torch.testing.assert_close(crop[0, 0], torch.tensor([[2.0, 4.0], [18.0, 20.0]]))
    tall = fit_frames(frames.transpose(2, 3), 2, "tf_legacy_bilinear", "short_side_crop")  # 8x4 -> 4x2, rows 1..2
    torch.testing.assert_close(tall[0, 0], torch.tensor([[2.0, 18.0], [4.0, 20.0]]))
    odd = fit_frames(torch.zeros(1, 1, 3, 5), 2, "torch_bilinear", "short_side_crop")  # 3x5 -> 2x4 (ceil), crop
    assert odd.shape == (1, 1, 2, 2)
    stretch = fit_frames(frames, 2, "tf_legacy_bilinear", "stretch")  # 4x8 -> 2x2: every 2nd row, 4th column
    torch.testing.assert_close(stretch[0, 0], torch.tensor([[0.0, 4.0], [16.0, 20.0]]))
    square = torch.arange(16.0).view(1, 1, 4, 4)
    torch.testing.assert_close(fit_frames(square, 2, "tf_legacy_bilinear", "short_side_crop"),
                               square[..., ::2, ::2])
    with pytest.raises(ValueError, match=r"^unknown aspect policy 'pad'; valid: stretch, short_side_crop$"):
        fit_frames(frames, 2, "torch_bilinear", "pad")


def test_pixels_to_i3d_input_scales_after_resizing_and_keeps_the_frame_order():
    b, t = 2, 3
    pixels = torch.zeros(b, t, 2, 2, 3, dtype=torch.uint8)
    for i, j in itertools.product(range(b), range(t)):
        pixels[i, j] = 10 * (3 * i + j)  # one value per video and frame
    pixels[1, 2] = 255
    out = pixels_to_i3d_input(pixels, size=4)
    assert out.shape == (b, 3, t, 4, 4) and out.dtype == torch.float32 and out.is_contiguous()
    for i, j in itertools.product(range(b), range(t)):
        value = 255 if (i, j) == (1, 2) else 10 * (3 * i + j)
        torch.testing.assert_close(out[i, :, j], torch.full((3, 4, 4), value / 255 * 2 - 1))
    grey = torch.randint(0, 256, (1, 2, 4, 4, 1), dtype=torch.uint8)
    rgb = pixels_to_i3d_input(grey, size=4)
    assert rgb.shape == (1, 3, 2, 4, 4)
    for c in range(3):
        torch.testing.assert_close(rgb[0, c], grey[0, ..., 0].float() / 255 * 2 - 1)
    default = pixels_to_i3d_input(torch.zeros(1, 1, 2, 3, 3, dtype=torch.uint8))  # 224, torch bilinear, stretch
    assert default.shape == (1, 3, 1, 224, 224) and default.eq(-1).all()
    sized = pixels_to_i3d_input(torch.randint(0, 256, (1, 1, 4, 8, 3), dtype=torch.uint8), 2, "tf_legacy_bilinear",
                                "short_side_crop")
    assert sized.shape == (1, 3, 1, 2, 2)
    for bad in (torch.zeros(1, 2, 4, 4, 3), torch.zeros(2, 4, 4, 3, dtype=torch.uint8)):
        with pytest.raises(ValueError, match=r"^pixels must be uint8 \[B, T, H, W, C\], got "):
            pixels_to_i3d_input(bad)


# -- TF "SAME" padding and pooling ------------------------------------------------------------------------------------


def test_same_padding_and_its_split_by_hand():
    # per axis (T, H, W): out = ceil(s / st), total = (out - 1) st + k - s, the odd pixel after; F.pad order W, H, T
    assert same_padding((5, 6, 4), (2, 3, 1), (2, 2, 2)) == [0, 0, 0, 1, 0, 1]
    assert same_padding((4, 7, 9), (3, 3, 4), (1, 3, 2)) == [1, 2, 1, 1, 1, 1]
    assert same_padding((3,), (1,), (4,)) == [0, 0]  # a stride larger than the kernel: no padding, never negative
    assert split_padding((4, 7, 9), (3, 3, 4), (1, 3, 2)) == ([1, 1, 1], [0, 1, 0, 0, 0, 0])
    assert split_padding((5, 6, 4), (2, 3, 1), (2, 2, 2)) == ([0, 0, 0], [0, 0, 0, 1, 0, 1])


def _tf_max_pool_by_hand(x, kernel, stride):
    """TF SAME max-pool of a non-negative map: windows at i * stride - pad_before, positions outside ignored."""
    size = x.shape[2:]
    outs = [-(-s // st) for s, st in zip(size, stride)]
    before = [max((o - 1) * st + k - s, 0) // 2 for o, st, k, s in zip(outs, stride, kernel, size)]
    y = torch.zeros(*x.shape[:2], *outs, dtype=x.dtype)
    for pos in itertools.product(*(range(o) for o in outs)):
        window = tuple(slice(max(p * st - b, 0), min(p * st - b + k, s))
                       for p, st, b, k, s in zip(pos, stride, before, kernel, size))
        y[(slice(None), slice(None), *pos)] = x[(slice(None), slice(None), *window)].amax(dim=(2, 3, 4))
    return y


@pytest.mark.parametrize("kernel,stride,size", [((1, 3, 3), (1, 2, 2), (3, 8, 7)), ((3, 3, 3), (1, 1, 1), (3, 4, 5)),
                                                ((2, 2, 2), (2, 2, 2), (5, 5, 4)), ((3, 3, 3), (2, 2, 2), (4, 9, 6)),
                                                ((1, 2, 1), (1, 3, 1), (2, 7, 3)),
                                                ((2, 2, 2), (1, 1, 1), (3, 4, 5)),  # native pool too short: fallback
                                                ((2, 2, 2), (1, 1, 1), (1, 4, 5))])  # window longer than the axis
def test_max_pool_same_both_paths_by_hand(kernel, stride, size):
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0))
    pool = MaxPool3dSame(kernel, stride)
    expected = _tf_max_pool_by_hand(x, kernel, stride)
    torch.testing.assert_close(pool(x), expected, rtol=0, atol=0)
    torch.testing.assert_close(pool.fast(x), expected, rtol=0, atol=0)


def _unit(kernel, stride, **kw):
    torch.manual_seed(0)
    unit = Unit3D(3, 4, kernel, stride, **kw).double()
    if unit.bn is not None:
        unit.bn.weight.data.uniform_(0.5, 1.5)
        unit.bn.bias.data.uniform_(-0.5, 0.5)
        unit.bn.running_mean.uniform_(-0.3, 0.3)
        unit.bn.running_var.uniform_(0.5, 2.0)
    return unit.eval()


def _unit_by_hand(unit, x, relu=True):
    """Zero padding by `same_padding`'s rule, plain convolution, then BatchNorm (eps 1e-3) and ReLU by hand."""
    pads = same_padding(tuple(x.shape[2:]), unit.kernel, unit.stride)
    y = F.conv3d(F.pad(x, pads), unit.conv3d.weight, unit.conv3d.bias, unit.stride)
    if unit.bn is not None:
        shape = (1, -1, 1, 1, 1)
        y = (y - unit.bn.running_mean.view(shape)) / torch.sqrt(unit.bn.running_var.view(shape) + 1e-3)
        y = y * unit.bn.weight.view(shape) + unit.bn.bias.view(shape)
    return y.clamp(min=0) if relu else y


@pytest.mark.parametrize("kernel,stride", [((7, 7, 7), (2, 2, 2)), ((3, 3, 3), (1, 1, 1)), ((1, 1, 1), (1, 1, 1)),
                                           ((1, 1, 1), (2, 2, 2)), ((1, 1, 1), (2, 1, 1)), ((1, 1, 1), (1, 2, 1)),
                                           ((1, 1, 1), (1, 1, 2)), ((2, 1, 1), (1, 1, 1)), ((1, 2, 1), (1, 1, 1)),
                                           ((1, 1, 2), (1, 1, 1))])
def test_unit_reference_and_folded_paths_by_hand(kernel, stride):
    unit = _unit(kernel, stride)
    assert unit.bn.eps == 1e-3 and unit.bn.momentum == 0.01 and unit.conv3d.bias is None and unit.relu
    x = torch.randn(2, 3, 5, 9, 8, dtype=torch.float64)
    expected = _unit_by_hand(unit, x)
    torch.testing.assert_close(unit(x), expected)
    weight, bias = unit.folded()
    torch.testing.assert_close(unit.fast(x, weight, bias), expected)
    last = x.contiguous(memory_format=torch.channels_last_3d)  # the pointwise path for channels-last maps
    torch.testing.assert_close(unit.fast(last, weight, bias), expected)


def test_logits_unit_has_a_bias_and_no_norm_or_relu():
    unit = _unit((1, 1, 1), (1, 1, 1), batch_norm=False, relu=False, bias=True)
    assert unit.bn is None and unit.conv3d.bias is not None
    x = torch.randn(1, 3, 2, 1, 1, dtype=torch.float64)
    expected = torch.einsum("oc,bcthw->bothw", unit.conv3d.weight[:, :, 0, 0, 0], x) + unit.conv3d.bias.view(
        1, -1, 1, 1, 1)
    assert (expected < 0).any(), "negative outputs stay negative without the ReLU"
    torch.testing.assert_close(unit(x), expected)
    weight, bias = unit.folded()
    torch.testing.assert_close(unit.fast(x, weight, bias), expected)
    torch.testing.assert_close(_unit_by_hand(unit, x, relu=False), expected)
    conv_bias = _unit((3, 3, 3), (1, 1, 1), bias=True)  # a biased convolution followed by BatchNorm: folded too
    torch.nn.init.uniform_(conv_bias.conv3d.bias, -1, 1)
    x = torch.randn(1, 3, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(conv_bias.fast(x, *conv_bias.folded()), _unit_by_hand(conv_bias, x))
