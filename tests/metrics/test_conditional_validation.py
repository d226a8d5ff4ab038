"""The conditional metrics validated by graded distortions on a small scale
(`benchmarks/conditional_metric_validation.py` prints the full table): real targets score at the floor, and noise
and a spatial shift at 3 strengths move the metrics they should, monotonically."""

import math

import pytest
import torch

from benchmarks.conditional_metric_validation import DISTORTIONS, derived_flow_valid, distort, score, targets
from zoo.metrics.conditional import WarpError

NUM, FRAMES = 8, 8
LEVELS = (1, 2, 4)


@pytest.fixture(scope="module")
def real():
    return targets(NUM, frames=FRAMES)


@pytest.fixture(scope="module")
def segmenter():
    from zoo.metrics.detectors.shapes_seg import load_shapes_seg

    return load_shapes_seg()


def test_real_targets_score_at_the_floor(real, segmenter):
    floor = score(real["pixels"][:, :FRAMES], real, segmenter)
    assert floor["psnr"] == math.inf and floor["ssim"] == pytest.approx(1.0, abs=3e-5)  # (float32 SSIM: 1 - 8e-6)
    # the real-data floor (4.1e-4 here): anti-aliased shape edges and bilinear resampling of the stripe texture
    assert floor["warp_error"] < 6e-4
    zero_flow = WarpError()
    zero_flow.update(real["pixels"][:, :FRAMES], torch.zeros_like(real["flow"]), real["flow_valid"])
    assert floor["warp_error"] < float(zero_flow.compute()) / 3  # 2.0e-3: the true flow explains the motion
    assert floor["mask_iou"] > 0.93  # shapes_seg's held-out value (0.957 on these clips)


@pytest.mark.parametrize(("name", "expected"), [
    ("noise", {"psnr": -1, "ssim": -1, "warp_error": +1}),
    ("shift", {"psnr": -1, "ssim": -1, "mask_iou": -1}),
])
def test_graded_distortions_move_the_right_metrics_monotonically(real, segmenter, name, expected):
    scores = [score(distort(real["pixels"], name, DISTORTIONS[name][level - 1], seed=level, frames=FRAMES), real,
                    segmenter) for level in LEVELS]
    for metric, sign in expected.items():
        values = [s[metric] for s in scores]
        assert all(sign * (b - a) > 0 for a, b in zip(values, values[1:])), (metric, values)


def test_the_derived_mask_excludes_what_the_shape_covers_and_motion_boundaries():
    """A 20 x 20 square block (rows 4-15) moving 4 px right: frame 0's background under its new position is occluded
    at t+1, pixels by either frame's boundary are left out, the shape's interior and far background are kept."""
    seg = torch.zeros(1, 2, 20, 20, dtype=torch.long)
    seg[0, 0, 4:16, 4:12] = 2
    seg[0, 1, 4:16, 8:16] = 2
    flow = torch.zeros(1, 2, 1, 20, 20)
    flow[0, 0, 0][seg[0, 0] > 0] = 4.0
    valid = derived_flow_valid(seg, flow)[0, 0]
    assert valid[8, 6] and valid[8, 18] and valid[1, 1]  # interior of the shape, background far from it
    assert not valid[8, 13] and not valid[8, 14]  # background covered by the shape at t+1
    assert not valid[8, 11] and not valid[8, 8]  # by frame 0's / frame 1's boundary


def test_targets_carry_the_datasets_mask_per_frame_pair(real):
    valid = real["flow_valid"]
    assert valid.shape == (NUM, FRAMES - 1, 32, 32) and 0.95 < valid.float().mean() < 1.0
    strict = derived_flow_valid(real["segmentation"], real["flow"])
    assert not (strict & ~valid).any()  # the stricter mask only removes pixels (motion boundaries)
