"""Train `shapes_seg` (zoo/metrics/detectors/shapes_seg.py), the segmenter behind `mask_iou`, from a seed.

Fresh `shapes` clips of data seed `TRAIN_DATA_SEED` (0; 100 000 videos, random start frames, source resolutions 16,
32 and 64), half of them corrupted like `shapes_net`'s training clips (noise, speckle, blur, blocks at a random
severity in (0, 1]) so that the segmenter reads the layout of imperfect generated frames too; per-pixel
cross-entropy at the source resolution; AdamW with a one-cycle schedule. Deterministic for one seed and thread count
on CPU. Then the held-out mean IoU on data seed `HELDOUT_DATA_SEED` (1) clips, 8 frames, at 32 and 64 pixels.

    python tools/train_shapes_seg.py [--seed 0] [--steps 3000] [--out zoo/metrics/detectors/shapes_seg.pt]

Writing the packaged file changes its SHA-256: pin the printed value in `zoo/metrics/detectors/weights.py`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from zoo.datasets.shapes import render_clip
from zoo.metrics.detectors.shapes_net import CORRUPTIONS, corrupt
from zoo.metrics.detectors.shapes_seg import (
    HELDOUT_DATA_SEED,
    TRAIN_DATA_SEED,
    WEIGHTS_FILE,
    ShapesSeg,
    confusion,
    heldout_clips,
    logits_at,
    mean_iou,
    segment,
)
from zoo.metrics.detectors.weights import sha256_of

NUM_VIDEOS = 100_000
CLIPS, FRAMES = 16, 4  # clips per batch, consecutive frames per clip (64 frames per step)
CORRUPT_FRACTION = 0.5


def make_batch(rng: np.random.Generator, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 pixels `[CLIPS, FRAMES, R, R, 3]` and labels `[CLIPS, FRAMES, R, R]` at one random resolution R."""
    resolution = int(rng.choice([16, 32, 32, 64]))
    items = [render_clip(TRAIN_DATA_SEED, int(rng.integers(NUM_VIDEOS)), FRAMES, resolution, 1,
                         int(rng.integers(48))) for _ in range(CLIPS)]
    pixels = torch.stack([it["pixels"] for it in items])
    for i in range(CLIPS):
        if rng.random() < CORRUPT_FRACTION:
            kind, severity = CORRUPTIONS[int(rng.integers(len(CORRUPTIONS)))], 1.0 - float(rng.random())
            pixels[i] = corrupt(pixels[i], kind, severity, generator)
    return pixels, torch.stack([it["segmentation"] for it in items])


def heldout_iou(net: ShapesSeg, count: int = 200) -> dict[str, float]:
    """Held-out mean IoU (`shapes_seg.mean_iou`) and pixel accuracy at 32 and 64 pixels, 8 frames per clip."""
    out = {}
    for resolution in (32, 64):
        pixels, labels = heldout_clips(count, resolution=resolution)
        counts = confusion(segment(net, pixels), labels)
        out[f"miou_{resolution}"] = mean_iou(counts)
        out[f"pixel_accuracy_{resolution}"] = float(counts.diagonal().sum() / counts.sum())
    return out


def train(seed: int, steps: int, out: Path, lr: float = 4e-3, log=print) -> dict[str, float]:
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 7])
    generator = torch.Generator().manual_seed(seed)
    net = ShapesSeg()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    start = time.time()
    for step in range(1, steps + 1):
        net.train()
        pixels, labels = make_batch(rng, generator)
        logits = logits_at(net, pixels)  # (B, T, 4, R, R)
        loss = F.cross_entropy(rearrange(logits, "b t k h w -> (b t) k h w"), rearrange(labels, "b t h w -> (b t) h w"))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == 1:
            log(f"step {step}/{steps} loss {loss.item():.4f} {time.time() - start:.0f}s")
    net.eval()
    metrics = heldout_iou(net)
    log(f"held-out (data seed {HELDOUT_DATA_SEED}): " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    tmp = out.with_suffix(".tmp")
    torch.save({k: v.contiguous() for k, v in net.state_dict().items()}, tmp)
    tmp.replace(out)
    log(f"wrote {out} sha256={sha256_of(out)} ({out.stat().st_size} bytes) in {time.time() - start:.0f}s")
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (results depend on it)")
    parser.add_argument("--out", default=str(WEIGHTS_FILE))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    train(args.seed, args.steps, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
