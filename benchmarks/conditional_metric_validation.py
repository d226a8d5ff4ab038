"""Validation of the conditional metrics (psnr, ssim, warp_error, mask_iou) by graded distortions of real `shapes`
clips standing in for a model's outputs, in the spirit of the FVD paper's validation (Unterthiner et al. 2018,
section 4.1) and `benchmarks/shapes_metric_validation.py`.

The targets are held-out `shapes` clips (data seed 1: what `heldout_data_config` gives a model trained on seed 0;
16 frames at 32 x 32, start 0) with their true flow, non-occlusion mask and segmentation (the condition). The
"outputs" are those targets, undistorted (`real@0`: every metric at its floor -- PSNR +inf, SSIM 1, the real-data
warping error, `shapes_seg`'s held-out IoU) or distorted at 4 strengths. Each distortion should move the metrics
named in `EXPECTED` monotonically; the others are reported as they come.

    python benchmarks/conditional_metric_validation.py [--num 128] [--plot docs/conditional_metric_validation.png]

prints CSV rows `what,config,value,unit` (config = distortion@level) and writes the plot (matplotlib). lpips is not
in the table: it needs torchvision and a downloaded backbone (docs/evaluation-conditional.md).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.shapes_metric_validation import distort as distort_shapes

FRAMES, RESOLUTION, DATA_SEED = 16, 32, 1
MAX_LAG = 8
DISTORTIONS = {  # name -> the 4 strengths (units in `distort`)
    "noise": (4.0, 8.0, 16.0, 32.0),  # std of additive Gaussian noise per pixel, channel and frame, grey levels
    "blur": (0.5, 1.0, 1.5, 2.0),  # std of the spatial Gaussian blur, pixels
    "flicker": (4.0, 8.0, 16.0, 32.0),  # grey levels added to or subtracted from each whole frame (random sign)
    "shuffle": (1, 2, 4, 8),  # of the clip's 8 pairs of frames (0, 1), (2, 3), ..., this many, evenly spread, swapped
    "lag": (1, 2, 4, MAX_LAG),  # frames the output runs ahead of its condition (a shifted condition in time)
    "shift": (1, 2, 4, 8),  # translation right and down, pixels (edge pixels repeated): a shifted condition in space
}
# what each distortion must move, and which way (+1 up, -1 down), level by level; the rest is reported only
EXPECTED = {
    "noise": {"psnr": -1, "ssim": -1, "warp_error": +1},
    "blur": {"psnr": -1, "ssim": -1},
    "flicker": {"psnr": -1, "warp_error": +1},
    "shuffle": {"ssim": -1, "warp_error": +1, "mask_iou": -1},  # PSNR: +inf while one frame is left in place
    "lag": {"psnr": -1, "ssim": -1, "mask_iou": -1},
    "shift": {"psnr": -1, "ssim": -1, "mask_iou": -1},
}
METRICS = ("psnr", "ssim", "warp_error", "mask_iou")
UNITS = {"psnr": "dB", "ssim": "ssim", "warp_error": "mse_rgb01", "mask_iou": "iou"}


def derived_flow_valid(segmentation: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """A stricter non-occlusion mask bool `[B, T-1, H, W]` than `shapes`' own `flow_valid`, from the segmentation
    `[B, T, H, W]` and flow `[B, 2, T-1, H, W]`: a shape pixel is visible at t+1 when its flow lands on the shape, a
    background pixel when the shape does not cover it at t+1, and pixels within one pixel of a segment boundary at t
    or t+1 are left out too (motion boundaries count as occluded, as in Ruder et al.'s masks that Lai et al. use;
    it removes the anti-aliased edges from the real-data floor). Reported beside the dataset's mask in the docs."""
    b, t, h, w = segmentation.shape
    cur, nxt = segmentation[:, :-1], segmentation[:, 1:]
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    tx = (xs + flow[:, 0]).round().long().clamp(0, w - 1)
    ty = (ys + flow[:, 1]).round().long().clamp(0, h - 1)
    landed = torch.gather(nxt.flatten(2), 2, (ty * w + tx).flatten(2)).reshape(cur.shape)
    visible = torch.where(cur > 0, landed > 0, nxt == 0)

    def near_boundary(labels: torch.Tensor) -> torch.Tensor:
        x = labels.float().flatten(0, 1)[:, None]
        high, low = F.max_pool2d(x, 3, 1, 1), -F.max_pool2d(-x, 3, 1, 1)
        return (high != low)[:, 0].reshape(labels.shape)

    return visible & ~near_boundary(cur) & ~near_boundary(nxt)


def targets(num: int, frames: int = FRAMES, resolution: int = RESOLUTION, seed: int = DATA_SEED) -> dict:
    """Held-out clips rendered `MAX_LAG` frames longer (for `lag`): `pixels` uint8 `[N, T + 8, H, W, 3]`, and for the
    first T frames `segmentation` `[N, T, H, W]`, `flow` `[N, 2, T-1, H, W]`, `flow_valid` `[N, T-1, H, W]` (the
    items' own where the dataset provides it, else `derived_flow_valid`)."""
    from zoo.datasets.shapes import render_clip

    items = [render_clip(seed, i, frames + MAX_LAG, resolution) for i in range(num)]
    segmentation = torch.stack([it["segmentation"][:frames] for it in items])
    flow = torch.stack([it["flow"][:, : frames - 1] for it in items])
    if all("flow_valid" in it for it in items):
        valid = torch.stack([it["flow_valid"][: frames - 1] for it in items])
    else:
        valid = derived_flow_valid(segmentation, flow)
    return {"pixels": torch.stack([it["pixels"] for it in items]), "segmentation": segmentation, "flow": flow,
            "flow_valid": valid}


def distort(source: torch.Tensor, name: str, strength: float, seed: int = 0, frames: int = FRAMES) -> torch.Tensor:
    """Distorted outputs uint8 `[N, frames, H, W, 3]` of `targets(...)["pixels"]` (strength 0: the targets)."""
    clips = source[:, :frames]
    if not strength:
        return clips
    if name in ("noise", "blur", "shift"):
        return distort_shapes(source, name, strength, seed, frames)
    if name == "lag":
        return source[:, int(strength) : int(strength) + frames]
    if name == "shuffle":  # swapping pairs, rather than permuting k frames, makes the incoherence grow with k
        pairs = frames // 2
        order = torch.arange(frames)
        for pair in torch.linspace(0, pairs - 1, int(strength)).round().long().unique():
            order[2 * pair], order[2 * pair + 1] = 2 * pair + 1, 2 * pair
        return clips[:, order]
    if name == "flicker":
        g = torch.Generator().manual_seed(seed)
        sign = torch.randint(0, 2, (len(clips), frames, 1, 1, 1), generator=g) * 2 - 1
        return (clips.float() + strength * sign).round().clamp(0, 255).to(torch.uint8)
    raise ValueError(f"unknown distortion {name!r}; valid: {', '.join(DISTORTIONS)}")


def score(outputs: torch.Tensor, real: dict, segmenter=None, batch: int = 32) -> dict[str, float]:
    """psnr, ssim, warp_error and mask_iou of uint8 outputs `[N, T, H, W, 3]` against `real` (`targets`)."""
    from zoo.metrics.conditional import MaskIoU, VideoPSNR, VideoSSIM, WarpError

    target = real["pixels"][:, : outputs.shape[1]]
    metrics = {"psnr": VideoPSNR(), "ssim": VideoSSIM(), "warp_error": WarpError(), "mask_iou": MaskIoU(segmenter)}
    for i in range(0, len(outputs), batch):
        part = slice(i, i + batch)
        metrics["psnr"].update(outputs[part], target[part])
        metrics["ssim"].update(outputs[part], target[part])
        metrics["warp_error"].update(outputs[part], real["flow"][part], real["flow_valid"][part])
        metrics["mask_iou"].update(outputs[part], real["segmentation"][part])
    return {name: float(metric.compute()) for name, metric in metrics.items()}


def validation_table(num: int, levels: tuple[int, ...] = (1, 2, 3, 4), names=None) -> list[tuple[str, str, float]]:
    """`[(metric, "distortion@level", value)]` for the distortions `names` (default all) at `levels`, plus
    `real@0`."""
    from zoo.metrics.detectors.shapes_seg import load_shapes_seg

    segmenter = load_shapes_seg()
    real = targets(num)
    rows = []

    def add(config: str, outputs: torch.Tensor) -> None:
        rows.extend((metric, config, value) for metric, value in score(outputs, real, segmenter).items())

    add("real@0", distort(real["pixels"], "noise", 0))
    for name in names or DISTORTIONS:
        for level in levels:
            add(f"{name}@{level}", distort(real["pixels"], name, DISTORTIONS[name][level - 1], seed=level))
    return rows


def monotonic_failures(rows: list[tuple[str, str, float]]) -> list[str]:
    """Where a distortion fails to move an `EXPECTED` metric strictly the expected way from real@0 through its
    levels (a `+inf` PSNR at real@0 counts as above everything)."""
    table = {(metric, config): value for metric, config, value in rows}
    failures = []
    for name, expected in EXPECTED.items():
        levels = sorted(int(c.split("@")[1]) for m, c in table if m == "psnr" and c.startswith(f"{name}@"))
        for metric, sign in expected.items():
            values = [table[metric, "real@0"]] + [table[metric, f"{name}@{k}"] for k in levels]
            if levels and not all(sign * (b - a) > 0 for a, b in zip(values, values[1:])):
                failures.append(f"{name}/{metric}: {values}")
    return failures


def plot(rows: list[tuple[str, str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = {(metric, config): value for metric, config, value in rows}
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8))
    for ax, metric in zip(axes, METRICS):
        for name in DISTORTIONS:
            values = [table[metric, "real@0"]] + [table[metric, f"{name}@{k}"] for k in range(1, 5)]
            if metric == "psnr":  # real@0 is +inf: drawn at the top of the axis
                values = [v if math.isfinite(v) else float("nan") for v in values]
            ax.plot(range(5), values, marker="o", label=name)
        if metric != "psnr":
            ax.axhline(table[metric, "real@0"], color="grey", linestyle="--", linewidth=1, label="real targets")
        ax.set_title(f"{metric} ({'higher' if metric in ('psnr', 'ssim', 'mask_iou') else 'lower'} is better)")
        ax.set_xlabel("distortion level (0 = none)")
        ax.set_xticks(range(5))
        if metric == "warp_error":
            ax.set_yscale("log")
    axes[0].text(0.97, 0.97, "+inf, not drawn:\nreal@0, shuffle@1-3\n(a frame left exact)", ha="right", va="top",
                 transform=axes[0].transAxes, fontsize=8)
    axes[-1].legend(fontsize=8)
    fig.suptitle("conditional metrics under graded distortions of held-out shapes clips (outputs vs real targets)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num", type=int, default=128, help="held-out clips")
    parser.add_argument("--plot", default="conditional_metric_validation.png", help="where to write the plot")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = validation_table(args.num)
    print("what,config,value,unit")
    for metric, config, value in rows:
        print(f"{metric},{config},{value:.6g},{UNITS[metric]}")
    plot(rows, Path(args.plot))
    failures = monotonic_failures(rows)
    print(f"# plot: {args.plot}; not monotonic: {failures or 'none'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
