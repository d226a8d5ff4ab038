"""MoCoGAN-specific speed rows: the video discriminator's memory layout (run by benchmarks/models.py)."""

from __future__ import annotations

import time

import torch

from zoo.models.base import VideoSpec
from zoo.models.mocogan import MoCoGAN, MoCoGANConfig


def _d_video_ms(model: MoCoGAN, videos: torch.Tensor, memory_format, repeats: int = 5) -> float:
    net = model.video_discriminator.net.to(memory_format=memory_format)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        out = net(videos.contiguous(memory_format=memory_format))
        out.sum().backward()
        times.append(time.perf_counter() - start)
    return 1000 * sorted(times[1:])[len(times[1:]) // 2]  # median after one warm-up


def rows() -> list[tuple]:
    """D_V forward + backward at the `shapes` config (16 clips of 16x32x32): contiguous vs channels-last 3-D."""
    model = MoCoGAN(MoCoGANConfig(ngf=32, ndf=16, categorical=True), VideoSpec(3, 16, 32, 9))
    videos = torch.randn(16, 3, 16, 32, 32)
    config = "mocogan D_V fwd+bwd b16 16x32^2 ndf16 cpu"
    baseline = _d_video_ms(model, videos, torch.contiguous_format)
    ours = _d_video_ms(model, videos, torch.channels_last_3d)
    return [
        ("mocogan D_V step (contiguous, baseline)", config, round(baseline, 1), "ms"),
        ("mocogan D_V step (channels_last_3d, used)", config, round(ours, 1), "ms"),
    ]


if __name__ == "__main__":
    print("what,config,value,unit")
    for row in rows():
        print(",".join(str(v) for v in row))
