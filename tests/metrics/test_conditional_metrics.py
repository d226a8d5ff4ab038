"""Conditional-synthesis metrics (zoo/metrics/conditional.py, lpips.py) against hand computations: PSNR and SSIM on
constant frames, Lai et al.'s warping error on a shifted frame with known flow, sum states that make split updates
equal one update, and the refusals (LPIPS without torchvision or weights)."""

import math

import pytest
import torch

from zoo.errors import ZooError
from zoo.metrics.conditional import VideoPSNR, VideoSSIM, WarpError, as_frames, frame_warp_errors
from zoo.video_io import from_uint8


def constant_video(values: list[list[int]], size: int = 16) -> torch.Tensor:
    """uint8 `[B, T, size, size, 3]` whose frame (b, t) is the grey level `values[b][t]` everywhere."""
    v = torch.tensor(values, dtype=torch.uint8)
    return v[:, :, None, None, None].expand(-1, -1, size, size, 3).contiguous()


def test_psnr_is_the_mean_of_per_frame_values_over_frames_then_clips():
    target = constant_video([[100, 100], [50, 50]])
    output = constant_video([[110, 120], [55, 50 + 17]])
    metric = VideoPSNR()
    metric.update(output, target)
    clip0 = (20 * math.log10(255 / 10) + 20 * math.log10(255 / 20)) / 2
    clip1 = (20 * math.log10(255 / 5) + 20 * math.log10(255 / 17)) / 2
    # (torchmetrics scales by 10 / log(10) in float32: ~1e-7 relative)
    assert float(metric.compute()) == pytest.approx((clip0 + clip1) / 2, abs=1e-5)
    pooled = 10 * math.log10(255**2 / ((100 + 400 + 25 + 289) / 4))  # PSNR of the pooled MSE: not what is reported
    assert abs(float(metric.compute()) - pooled) > 0.1
    same = VideoPSNR()
    same.update(target, target)
    assert float(same.compute()) == math.inf


def test_float_videos_follow_the_harness_quantization():
    """float [B, C, T, H, W] in [-1, 1] goes through to_uint8 like FVD's inputs: the same value as its uint8 form."""
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (2, 3, 16, 16, 3), dtype=torch.uint8, generator=generator)
    other = torch.randint(0, 256, (2, 3, 16, 16, 3), dtype=torch.uint8, generator=generator)
    assert torch.equal(as_frames(from_uint8(pixels)), as_frames(pixels))
    for cls in (VideoPSNR, VideoSSIM):
        a, b = cls(), cls()
        a.update(pixels, other)
        b.update(from_uint8(pixels), from_uint8(other))
        # equal frames; the two paths' tensors differ in memory layout, so float64 sums may differ in the last bit
        assert float(a.compute()) == pytest.approx(float(b.compute()), rel=1e-12, abs=0)
    with pytest.raises(ValueError, match="must have one shape"):
        VideoPSNR().update(pixels, other[:, :2])


def test_ssim_of_constant_frames_is_the_luminance_term():
    """Constant frames have zero variance, so SSIM = (2 a b + C1) / (a^2 + b^2 + C1), C1 = (0.01 * 1)^2."""
    target = constant_video([[100, 200]])
    output = constant_video([[120, 200]])
    metric = VideoSSIM()
    metric.update(output, target)
    a, b, c1 = 120 / 255, 100 / 255, 0.01**2
    expected = ((2 * a * b + c1) / (a * a + b * b + c1) + 1.0) / 2  # frame 2 is identical: 1
    assert float(metric.compute()) == pytest.approx(expected, abs=1e-4)  # float32 SSIM: variances of 0 to ~1e-8


def shifted_pair(size: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frames `[1, 2, 3, H, W]` where frame 1 is frame 0 moved one pixel right, its flow (+1 px in x everywhere)
    and the mask without the last column (whose content leaves the frame)."""
    g = torch.Generator().manual_seed(0)
    frame0 = torch.randint(0, 256, (3, size, size), generator=g).double() / 255
    frame1 = torch.cat([frame0[:, :, :1], frame0[:, :, :-1]], dim=2)  # frame1(x) = frame0(x - 1)
    frames = torch.stack([frame0, frame1])[None]
    flow = torch.zeros(1, 2, 1, size, size, dtype=torch.float64)
    flow[:, 0] = 1.0
    valid = torch.ones(1, 1, size, size, dtype=torch.bool)
    valid[..., -1] = False
    return frames, flow, valid


def test_warp_error_of_a_shifted_frame_with_its_flow_is_zero_and_a_known_perturbation_gives_its_value():
    frames, flow, valid = shifted_pair()
    assert float(frame_warp_errors(frames, flow, valid)) == 0.0
    perturbed = frames.clone()
    perturbed[0, 1, :, 3, 5] += 0.2  # frame 1 at (x 5, y 3) is read by frame 0's pixel (x 4, y 3), which is valid
    expected = 0.2**2 / 56  # one pixel, the same offset in every channel, over 8 x 7 valid pixels
    assert float(frame_warp_errors(perturbed, flow, valid)) == pytest.approx(expected, rel=1e-12)
    assert float(frame_warp_errors(perturbed, flow, valid, rgb_sum=True)) == pytest.approx(3 * expected)
    masked = valid.clone()
    masked[0, 0, 3, 4] = False  # that pixel left out: the perturbation no longer counts
    assert float(frame_warp_errors(perturbed, flow, masked)) == 0.0
    perturbed[0, 0, :, 2, 7] = 1 - perturbed[0, 0, :, 2, 7]  # the excluded last column may hold anything
    assert float(frame_warp_errors(perturbed, flow, valid)) == pytest.approx(expected, rel=1e-12)
    assert float(frame_warp_errors(frames, flow, torch.zeros_like(valid))) == 0.0  # nothing valid: 0, as Lai's script


def test_warp_error_means_over_pairs_then_clips_and_reads_uint8_videos():
    frames, flow, valid = shifted_pair()
    three = torch.cat([frames, frames[:, 1:] + 0.0], dim=1)  # pair 2: frame 1 -> frame 1 with the +1 flow
    flow2, valid2 = torch.cat([flow, flow], dim=2), torch.cat([valid, valid], dim=1)
    per_pair = frame_warp_errors(three, flow2, valid2)
    clip = float(per_pair.mean())
    assert per_pair[0, 0] == 0 and per_pair[0, 1] > 0
    pixels = (three * 255).round().to(torch.uint8).permute(0, 1, 3, 4, 2)  # [B, T, H, W, C]
    metric = WarpError()
    metric.update(torch.cat([pixels, pixels[:, [0, 0, 0]]]), torch.cat([flow2, torch.zeros_like(flow2)]),
                  torch.cat([valid2, valid2]))  # clip 2: a frozen frame with zero flow scores 0
    assert float(metric.compute()) == pytest.approx(clip / 2, rel=1e-9)


def test_split_updates_equal_one_update():
    """Sum states: two halves (two ranks' shares) give the value of one update with the whole set."""
    g = torch.Generator().manual_seed(1)
    out = torch.randint(0, 256, (4, 3, 16, 16, 3), dtype=torch.uint8, generator=g)
    real = torch.randint(0, 256, (4, 3, 16, 16, 3), dtype=torch.uint8, generator=g)
    flow = torch.randn(4, 2, 2, 16, 16, generator=g)
    valid = torch.rand(4, 2, 16, 16, generator=g) > 0.3
    for make, args in ((VideoPSNR, (real,)), (VideoSSIM, (real,)), (WarpError, (flow, valid))):
        whole, halves = make(), make()
        whole.update(out, *args)
        halves.update(out[:1], *(a[:1] for a in args))
        halves.update(out[1:], *(a[1:] for a in args))
        assert float(halves.compute()) == pytest.approx(float(whole.compute()), rel=1e-12), make.__name__
    for make in (VideoPSNR, VideoSSIM, WarpError):
        assert set(make()._reductions) == {"total", "clips"}  # every state is summed across ranks


def test_conditional_metric_keys_are_registered():
    from zoo.metrics.conditional import CONDITIONAL_METRICS
    from zoo.registry import METRICS, load_all

    load_all()
    for key in CONDITIONAL_METRICS:
        entry = METRICS.entry(key)
        assert entry.description and entry.paper and entry.obj.registry_key == key


def test_lpips_refuses_in_one_line_saying_what_is_missing(monkeypatch, tmp_path):
    from zoo.metrics import lpips

    with pytest.raises(ZooError) as refused:
        lpips.VideoLPIPS()
    message = str(refused.value)
    assert "\n" not in message and "alexnet-owt-7be5be79.pth" in message and "weights=PATH" in message
    if not lpips.torchvision_available():  # this machine: no torchvision
        assert "torchvision" in message
    monkeypatch.setattr(lpips, "torchvision_available", lambda: True)
    with pytest.raises(ZooError, match=r"^lpips cannot run: missing the alex backbone weights file .*does not exist"):
        lpips.VideoLPIPS(weights=tmp_path / "alexnet.pth")
    with pytest.raises(ZooError, match="unknown LPIPS backbone"):
        lpips.load_lpips("resnet", tmp_path / "x.pth")
