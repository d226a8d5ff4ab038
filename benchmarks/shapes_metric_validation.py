"""Validation of the shapes metrics by graded distortions, as the FVD paper validated FVD (Unterthiner et al. 2018,
section 4.1): real `shapes` clips are distorted at 5 strengths and `fvd_shapes` (and `kvd_shapes`) must rise with
each distortion's strength, while two independent real sets score below the mildest distortion.

The reference set is `shapes` with data seed 0; the compared set is an independent one (data seed 1), distorted.
Strength 0 is that set undistorted (real vs real). Clips: 16 frames at 32 x 32, start frame 0.

    python benchmarks/shapes_metric_validation.py [--num 512] [--plot shapes_metric_validation.png]

prints CSV rows `what,config,value,unit` (what = fvd_shapes | kvd_shapes, config = distortion@strength) and writes
the plot (matplotlib).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

FRAMES, RESOLUTION = 16, 32
SPEEDS = (1.25, 1.5, 2.0, 3.0, 4.0)  # playback speed factors of the `speed` distortion
DISTORTIONS = {  # name -> the 5 strengths (units in `distort`)
    "noise": (4.0, 8.0, 16.0, 32.0, 64.0),  # std of additive Gaussian noise, grey levels (of 255)
    "blur": (0.5, 0.75, 1.0, 1.5, 2.0),  # std of the spatial Gaussian blur, pixels
    "shift": (1, 2, 3, 5, 8),  # translation right and down, pixels (edge pixels repeated)
    "colour": (0.05, 0.1, 0.2, 0.35, 0.5),  # weight of the cyclic RGB -> GBR channel mix (a hue rotation)
    "shuffle": (2, 4, 8, 12, 16),  # frames whose positions are permuted among themselves
    "freeze": (12, 9, 6, 3, 1),  # frames shown before the clip freezes (1 = frozen after the first frame)
    "speed": SPEEDS,  # playback speed (source frames per clip frame)
}


def source_clips(seed: int, num: int, frames: int = FRAMES, resolution: int = RESOLUTION) -> torch.Tensor:
    """uint8 `[N, frames * 4, H, W, 3]`: long enough to be replayed at 4x speed."""
    from zoo.datasets.shapes import render_clip

    return torch.stack([render_clip(seed, i, frames * 4, resolution)["pixels"] for i in range(num)])


def distort(source: torch.Tensor, name: str, strength: float, seed: int = 0, frames: int = FRAMES) -> torch.Tensor:
    """Distorted clips uint8 `[N, frames, H, W, 3]` from `source_clips` (strength 0 = the plain first frames)."""
    g = torch.Generator().manual_seed(seed)
    if name == "speed" and strength:
        index = torch.tensor([round(k * strength) for k in range(frames)])
        return source[:, index]
    clips = source[:, :frames]
    if not strength:
        return clips
    x = clips.float()
    n, t, h, w, c = x.shape
    if name == "noise":
        x = x + strength * torch.randn(x.shape, generator=g)
    elif name == "blur":
        radius = math.ceil(3 * strength)
        kernel = torch.exp(-0.5 * (torch.arange(-radius, radius + 1) / strength) ** 2)
        kernel = kernel / kernel.sum()
        planes = rearrange(x, "n t h w c -> (n t c) 1 h w")
        planes = F.pad(planes, (radius,) * 4, mode="replicate")
        planes = F.conv2d(planes, kernel.view(1, 1, 1, -1))
        planes = F.conv2d(planes, kernel.view(1, 1, -1, 1))
        x = rearrange(planes, "(n t c) 1 h w -> n t h w c", n=n, t=t)
    elif name == "shift":
        s = int(strength)
        planes = F.pad(rearrange(x, "n t h w c -> (n t) c h w"), (s, 0, s, 0), mode="replicate")[:, :, :h, :w]
        x = rearrange(planes, "(n t) c h w -> n t h w c", n=n)
    elif name == "colour":
        x = (1 - strength) * x + strength * x[..., [1, 2, 0]]
    elif name == "shuffle":
        order = torch.arange(t).repeat(n, 1)
        for i in range(n):
            chosen = torch.randperm(t, generator=g)[: int(strength)]
            perm = chosen[torch.randperm(len(chosen), generator=g)]
            while len(chosen) > 1 and torch.equal(perm, chosen):  # a real permutation, never the identity
                perm = chosen[torch.randperm(len(chosen), generator=g)]
            order[i, chosen] = perm
        x = torch.stack([x[i, order[i]] for i in range(n)])
    elif name == "freeze":
        keep = int(strength)
        x = torch.cat([x[:, :keep], x[:, keep - 1 : keep].expand(-1, t - keep, -1, -1, -1)], dim=1)
    else:
        raise ValueError(f"unknown distortion {name!r}; valid: {', '.join(DISTORTIONS)}")
    return x.round().clamp(0, 255).to(torch.uint8)


def features(extractor, clips: torch.Tensor, batch: int = 64) -> np.ndarray:
    return torch.cat([extractor(clips[i : i + batch]) for i in range(0, len(clips), batch)]).numpy()


def validation_table(num: int, extractor=None) -> list[tuple[str, str, float]]:
    """`[(metric, "distortion@strength", value)]` for every distortion and strength, plus `real@0`."""
    from zoo.metrics.detectors import build_extractor
    from zoo.metrics.frechet import frechet_distance, kernel_distance

    extractor = extractor or build_extractor("shapes_net")
    reference = features(extractor, source_clips(0, num)[:, :FRAMES])
    source = source_clips(1, num)
    rows = []

    def score(config: str, clips: torch.Tensor) -> None:
        f = features(extractor, clips)
        rows.append(("fvd_shapes", config, frechet_distance(reference, f)))
        rows.append(("kvd_shapes", config, kernel_distance(reference, f)))

    score("real@0", distort(source, "noise", 0))
    for name, strengths in DISTORTIONS.items():
        for level, strength in enumerate(strengths, 1):
            score(f"{name}@{level}", distort(source, name, strength, seed=level))
    return rows


def plot(rows: list[tuple[str, str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fvd = {config: value for metric, config, value in rows if metric == "fvd_shapes"}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name in DISTORTIONS:
        ax.plot(range(6), [fvd["real@0"]] + [fvd[f"{name}@{k}"] for k in range(1, 6)], marker="o", label=name)
    ax.axhline(fvd["real@0"], color="grey", linestyle="--", linewidth=1, label="real vs real")
    ax.set_yscale("log")
    ax.set_xlabel("distortion strength (0 = none)")
    ax.set_ylabel("fvd_shapes")
    ax.set_title("fvd_shapes under graded distortions of real shapes clips")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num", type=int, default=512, help="clips per set")
    parser.add_argument("--plot", default="shapes_metric_validation.png", help="where to write the plot")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = validation_table(args.num)
    print("what,config,value,unit")
    for metric, config, value in rows:
        print(f"{metric},{config},{value:.6g},{metric.split('_')[0]}")
    plot(rows, Path(args.plot))
    print(f"# plot: {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
