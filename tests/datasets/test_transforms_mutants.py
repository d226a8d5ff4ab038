"""`resize_frames` against independent expectations (issue 19: the crop offset and the resize flags survived
mutation): the centre crop by slicing computed here, the antialiased bilinear scaling against Pillow's resize (the
implementation torch's antialias kernel follows), and the policy errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.datasets.transforms import resize_frames


def _frames(t, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("h,w", [(16, 10), (10, 16), (17, 10)])
def test_short_side_crop_is_the_centre_square(h, w):
    frames = _frames(2, h, w)
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2  # (17 - 10) // 2 = 3: the extra row goes to the bottom
    out = resize_frames(frames, side, "short_side_crop")
    np.testing.assert_array_equal(out.numpy(), frames[:, top:top + side, left:left + side])


def _pillow(frames, size):
    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BILINEAR)) for f in frames])


@pytest.mark.parametrize("policy,h,w,size", [("stretch", 48, 64, 16), ("short_side_crop", 64, 64, 12),
                                             ("stretch", 12, 12, 20)])
def test_scaling_matches_pillows_antialiased_bilinear(policy, h, w, size):
    """Smooth frames (noise gives no room for 'within one grey level'): at most 1 level from Pillow everywhere.
    Without antialias, or with align_corners=True, the 4x / 3x downscales differ by far more."""
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    base = np.stack([128 + 100 * np.sin(6 * yy + 3 * xx), 255 * xx * yy, 200 * (1 - yy) + 30 * np.cos(9 * xx)], -1)
    rng = np.random.default_rng(1)
    frames = np.clip(base[None] + rng.normal(0, 25, size=(2, h, w, 3)), 0, 255).astype(np.uint8)
    out = resize_frames(frames, size, policy).numpy().astype(int)
    assert out.shape == (2, size, size, 3)
    assert np.abs(out - _pillow(frames, size).astype(int)).max() <= 1


def test_bad_policy_and_dtype_are_named():
    with pytest.raises(ValueError, match=r"resize policy must be one of \('short_side_crop', 'stretch'\), got 'crop'"):
        resize_frames(_frames(1, 8, 8), 4, "crop")
    with pytest.raises(ValueError, match="expected uint8 frames, got torch.float32"):
        resize_frames(torch.zeros(1, 8, 8, 3), 4)
