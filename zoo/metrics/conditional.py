"""Metrics of conditional video synthesis (issue 30): fidelity to the real target, temporal consistency, faithfulness
to the condition. DDP-synced torchmetrics whose states are sums (`dist_reduce_fx="sum"`), so that updating with the
two halves of a set, or on two ranks, gives the value of one update with the whole set.

Protocol (docs/evaluation-conditional.md): translate the held-out clips' conditions, compare each output with its
real target clip. Every metric takes videos in the harness's one convention (`zoo.metrics.feature_metric.as_pixels`,
as FVD): uint8 `[B, T, H, W, C]`, or float `[B, C, T, H, W]` in [-1, 1] quantized with `zoo.video_io.to_uint8` -- so
outputs take the path of decoded real frames -- then read as float RGB in [0, 1] (`pixel / 255`).

* `psnr` / `ssim`: per frame between output and target (torchmetrics' functional PSNR and SSIM, data range 1.0), mean
  over the clip's frames, then mean over clips.
* `warp_error`: Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018, Sec. 5 ("temporal stability").
* `mask_iou`: re-segmentation of the outputs by `shapes_seg` against the condition's segmentation (dataset mIoU).
* `lpips`: in `zoo.metrics.lpips` (needs torchvision and a local backbone file).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn
from torchmetrics import Metric
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from zoo.metrics.feature_metric import ToolNotState, as_pixels
from zoo.registry import register_metric
from zoo.warp import warp

CONDITIONAL_METRICS = ("psnr", "ssim", "lpips", "warp_error", "mask_iou")  # registry keys (zoo list metrics)


def as_frames(videos: torch.Tensor) -> torch.Tensor:
    """Videos in the harness convention (see the module docstring) -> float64 `[B, T, C, H, W]` in [0, 1]."""
    return rearrange(as_pixels(videos), "b t h w c -> b t c h w").double() / 255.0


def _pair(videos: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    fake, real = as_frames(videos), as_frames(target)
    if fake.shape != real.shape:
        raise ValueError(f"outputs {tuple(fake.shape)} and targets {tuple(real.shape)} ([B, T, C, H, W] after "
                         "conversion) must have one shape")
    return fake, real


class ClipMeanMetric(Metric):
    """Base: a per-clip value, summed (`total`) and counted (`clips`) across updates and ranks; `compute` = mean."""

    full_state_update = False
    is_differentiable = False
    higher_is_better: bool | None = None
    name = ""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("clips", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def _add(self, per_clip: torch.Tensor) -> None:
        self.total += per_clip.to(self.total).sum()
        self.clips += per_clip.numel()

    def compute(self) -> torch.Tensor:
        if self.clips == 0:
            raise ValueError(f"{type(self).__name__}: no clips were added")
        return self.total / self.clips

    def results(self) -> dict[str, float]:
        """The value keyed by the metric's name (the `VideoFeatureMetric.results` contract)."""
        return {self.name: float(self.compute())}


@register_metric(
    "psnr",
    description="conditional: per-frame PSNR (dB, RGB in [0, 1], data range 1) of outputs vs real targets, "
                "mean over frames then clips",
    paper="torchmetrics peak_signal_noise_ratio; as in vid2vid / Everybody Dance Now self-transfer evaluations",
)
class VideoPSNR(ClipMeanMetric):
    """Mean PSNR: 10 log10(1 / MSE) per frame (MSE over pixels and channels of [0, 1] RGB), mean over the clip's
    frames, then over clips. A frame equal to its target is +inf (so is any mean that contains one)."""

    name = "psnr"
    higher_is_better = True

    def update(self, videos: torch.Tensor, target: torch.Tensor) -> None:
        """Args:
            videos: outputs, uint8 `[B, T, H, W, C]` or float `[B, C, T, H, W]` in [-1, 1].
            target: the real target clips, same convention and shape.
        """
        self._add(self.frame_scores(videos, target).mean(1))

    @staticmethod
    def frame_scores(videos: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-frame PSNR, float64 `[B, T]` (dB), of videos and targets in `update`'s convention (the prediction
        task's per-time-step curves read it too)."""
        fake, real = _pair(videos, target)
        b = fake.shape[0]
        per_frame = peak_signal_noise_ratio(fake.flatten(0, 1), real.flatten(0, 1), data_range=1.0, reduction="none",
                                            dim=(1, 2, 3))  # ((B T),)
        return per_frame.reshape(b, -1)


@register_metric(
    "ssim",
    description="conditional: per-frame SSIM (Gaussian 11x11, sigma 1.5, data range 1) of outputs vs real targets, "
                "mean over frames then clips",
    paper="Wang et al., Image Quality Assessment: From Error Visibility to Structural Similarity, TIP 2004",
)
class VideoSSIM(ClipMeanMetric):
    """Mean SSIM: torchmetrics' `structural_similarity_index_measure` per frame (Gaussian window 11, sigma 1.5,
    K1 = 0.01, K2 = 0.03, data range 1; the frame's value is the mean of its SSIM map over valid window positions
    and channels), mean over the clip's frames, then over clips. Frames need H, W >= 11."""

    name = "ssim"
    higher_is_better = True

    def update(self, videos: torch.Tensor, target: torch.Tensor) -> None:
        """Args: as `VideoPSNR.update`."""
        self._add(self.frame_scores(videos, target).mean(1))

    @staticmethod
    def frame_scores(videos: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-frame SSIM, float `[B, T]`, of videos and targets in `update`'s convention."""
        fake, real = _pair(videos, target)
        b = fake.shape[0]
        # float32: the Gaussian convolutions are ~10x slower in float64 on CPU; values agree to ~1e-5
        per_frame = structural_similarity_index_measure(fake.flatten(0, 1).float(), real.flatten(0, 1).float(),
                                                        data_range=1.0, reduction="none")  # ((B T),)
        return per_frame.reshape(b, -1)


def frame_warp_errors(frames: torch.Tensor, flow: torch.Tensor, valid: torch.Tensor,
                      rgb_sum: bool = False) -> torch.Tensor:
    """Lai et al. 2018 (Sec. 5) warping error of every consecutive frame pair.

    E(t) = sum_p M_t(p) d_t(p) / sum_p M_t(p), with d_t(p) the squared difference between frame t and frame t+1
    warped back by the flow t -> t+1 (`zoo.warp.warp(frame_{t+1}, flow_t)` at p reads frame t+1 at p + flow_t(p)),
    averaged over the C channels (the released `evaluate_WarpError.py`, whose mask has 3 channels, so its numbers
    are the paper's tables') or summed over them with `rgb_sum` (the paper's ||.||_2^2 over RGB: C times larger).
    A pair with no valid pixel scores 0, as in that script.

    Args:
        frames: float `[B, T, C, H, W]` in [0, 1].
        flow: float `[B, 2, T-1, H, W]`, (dx, dy) pixels from frame t to t+1 at frame t's pixels (`shapes`' `flow`).
        valid: bool `[B, T-1, H, W]`, frame t's pixel is visible at t+1 (the non-occlusion mask M_t).
        rgb_sum: sum the channels instead of averaging them.

    Returns:
        float64 `[B, T-1]`.
    """
    b, t, c, h, w = frames.shape
    if t < 2 or flow.shape != (b, 2, t - 1, h, w) or valid.shape != (b, t - 1, h, w):
        raise ValueError(f"warp error takes frames [B, T >= 2, C, H, W], flow [B, 2, T-1, H, W] and valid "
                         f"[B, T-1, H, W]; got {tuple(frames.shape)}, {tuple(flow.shape)}, {tuple(valid.shape)}")
    frames = frames.double()  # the flow may be float32 (shapes'): the warp runs in float64
    nxt = rearrange(frames[:, 1:], "b t c h w -> (b t) c h w")
    warped = warp(nxt, rearrange(flow.to(frames), "b k t h w -> (b t) k h w"))
    diff = (rearrange(frames[:, :-1], "b t c h w -> (b t) c h w") - warped) ** 2
    diff = diff.sum(1) if rgb_sum else diff.mean(1)  # ((B T-1), H, W)
    mask = rearrange(valid, "b t h w -> (b t) h w").to(diff)
    count = mask.sum((1, 2))
    errors = (diff * mask).sum((1, 2)) / count.clamp(min=1)  # 0 where nothing is valid (sum is 0 there)
    return errors.reshape(b, t - 1)


@register_metric(
    "warp_error",
    description="conditional: Lai et al.'s warping error of the outputs along the true flow (MSE of RGB in [0, 1] "
                "on non-occluded pixels), mean over frame pairs then clips",
    paper="Lai et al., Learning Blind Video Temporal Consistency, ECCV 2018, Sec. 5 (arXiv:1808.00449)",
)
class WarpError(ClipMeanMetric):
    """Temporal consistency of the outputs (Lai et al., ECCV 2018, Sec. 5): per clip the mean over its T-1 frame
    pairs of `frame_warp_errors`, then the mean over clips. The flow and mask come from the caller: on `shapes` the
    real target's true forward flow and its non-occlusion mask (`flow_valid`), as the paper takes the flow of the
    input video. Lower is better; real clips score the real-data floor (bilinear resampling, anti-aliased edges).

    Args:
        rgb_sum: the paper's squared L2 norm over RGB instead of the released script's mean over channels.
    """

    name = "warp_error"
    higher_is_better = False

    def __init__(self, rgb_sum: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.rgb_sum = rgb_sum

    def update(self, videos: torch.Tensor, flow: torch.Tensor, valid: torch.Tensor) -> None:
        """Args:
            videos: outputs, uint8 `[B, T, H, W, C]` or float `[B, C, T, H, W]` in [-1, 1].
            flow: float `[B, 2, T-1, H, W]`, forward flow t -> t+1 in pixels (x, y).
            valid: bool `[B, T-1, H, W]`, non-occluded pixels of frame t.
        """
        errors = frame_warp_errors(as_frames(videos), flow, valid.bool(), self.rgb_sum)
        self._add(errors.mean(1))


def condition_labels(segmentation: torch.Tensor) -> torch.Tensor:
    """Labels long `[B, T, H, W]` from labels `[B, T, H, W]` or a one-hot condition float `[B, K, T, H, W]`."""
    if segmentation.ndim == 5 and segmentation.is_floating_point():
        return segmentation.argmax(1)
    if segmentation.ndim == 4 and not segmentation.is_floating_point():
        return segmentation.long()
    raise ValueError(f"segmentation must be long labels [B, T, H, W] or a one-hot float [B, K, T, H, W], got "
                     f"{segmentation.dtype} {tuple(segmentation.shape)}")


@register_metric(
    "mask_iou",
    description="conditional (shapes): mean IoU of shapes_seg's segmentation of the outputs vs the condition's, "
                "4 classes, dataset-level",
    paper="re-segmentation faithfulness as in vid2vid (Wang et al., NeurIPS 2018, Sec. 5); segmenter in-repo",
)
class MaskIoU(ToolNotState, Metric):
    """Faithfulness to the condition: segment every output frame with `shapes_seg` and compare with the condition's
    segmentation. Intersections and unions per class (background, circle, square, triangle) are summed over every
    pixel of every frame of every clip (and rank); the value is the mean of intersection / union over the classes
    whose union is non-empty (the dataset-level mIoU of segmentation benchmarks, not a mean of per-clip values).

    Args:
        network: a `ShapesSeg` (default: the packaged, checksummed `shapes_seg.pt`).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True
    name = "mask_iou"
    tool_attribute = "network"

    def __init__(self, network: nn.Module | None = None, **kwargs):
        super().__init__(**kwargs)
        from zoo.metrics.detectors.shapes_seg import NUM_CLASSES, load_shapes_seg

        self.network = network if network is not None else load_shapes_seg()
        self.num_classes = NUM_CLASSES
        self.add_state("confusion", default=torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.float64),
                       dist_reduce_fx="sum")

    def update(self, videos: torch.Tensor, segmentation: torch.Tensor) -> None:
        """Args:
            videos: outputs, uint8 `[B, T, H, W, C]` or float `[B, C, T, H, W]` in [-1, 1].
            segmentation: the condition's labels long `[B, T, H, W]` (0 = background, 1 + shape index) or its
                one-hot float `[B, 4, T, H, W]`.
        """
        from zoo.metrics.detectors.shapes_seg import confusion, segment

        labels = condition_labels(segmentation)
        predicted = segment(self.network, as_pixels(videos))
        if predicted.shape != labels.shape:
            raise ValueError(f"outputs {tuple(predicted.shape[:4])} and segmentation {tuple(labels.shape)} "
                             "([B, T, H, W]) must match")
        self.confusion += confusion(predicted, labels.cpu(), self.num_classes).to(self.confusion)

    def per_class_iou(self) -> torch.Tensor:
        """float64 `[4]`: intersection / union per class (nan where the union is empty)."""
        intersection = self.confusion.diagonal()
        union = self.confusion.sum(0) + self.confusion.sum(1) - intersection
        return torch.where(union > 0, intersection / union.clamp(min=1), torch.full_like(union, float("nan")))

    def compute(self) -> torch.Tensor:
        from zoo.metrics.detectors.shapes_seg import mean_iou

        if self.confusion.sum() == 0:
            raise ValueError("MaskIoU: no frames were added")
        return torch.tensor(mean_iou(self.confusion), dtype=torch.float64)

    def results(self) -> dict[str, float]:
        """`mask_iou`, the pixel accuracy and each class's IoU."""
        out = {self.name: float(self.compute()),
               "mask_pixel_accuracy": float(self.confusion.diagonal().sum() / self.confusion.sum())}
        names = ("background", "circle", "square", "triangle")
        out.update({f"mask_iou_{n}": float(v) for n, v in zip(names, self.per_class_iou())})
        return out
