"""Pixel-family speed rows (run by benchmarks/models.py): per decoder, a training step, bits/dim evaluation
throughput, and sampling rate with the per-layer / carried-state caches against the uncached reference (the whole
frame decoder recomputed for every sub-pixel), side by side in one run on the same weights and generator.

    python benchmarks/models_pixel.py [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zoo.models.base import VideoSpec  # noqa: E402
from zoo.registry import MODELS, load_all  # noqa: E402

KEYS = ("pixelcnn", "gated_pixelcnn", "row_lstm", "diagonal_bilstm")
# the shapes.yaml networks (Diagonal BiLSTM: 2 layers there too) on 2 frames of 8x8: small enough that the uncached
# reference finishes in seconds on a CPU
FIELDS = dict(hidden=24, out_hidden=96, context_width=24, context_blocks=2)
LAYERS = {"pixelcnn": 4, "gated_pixelcnn": 4, "row_lstm": 4, "diagonal_bilstm": 2}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _median_s(fn, device: str, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def decoder_rows(key: str, device: str, batch: int = 8, frames: int = 2, resolution: int = 8) -> list[tuple]:
    cls = MODELS.get(key)
    torch.manual_seed(0)
    model = cls(cls.config_class(layers=LAYERS[key], **FIELDS), VideoSpec(3, frames, resolution, 0)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    videos = torch.rand(batch, 3, frames, resolution, resolution, device=device) * 2 - 1
    name = f"{key} b{batch} {frames}x{resolution}^2 h{FIELDS['hidden']} L{LAYERS[key]} {device}"

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        model.bits_per_dim(videos).mean().backward()
        optimizer.step()

    def score():
        with torch.no_grad():
            model.bits_per_dim(videos)

    step_s = _median_s(train_step, device, 3)
    score_s = _median_s(score, device, 3)
    n, sample_frames = 2, 1
    sub_pixels = n * 3 * sample_frames * resolution**2
    times: dict[bool, list[float]] = {False: [], True: []}
    samples = {}
    for _ in range(2):  # interleaved rounds on the same weights and generator seed: load changes hit both alike
        for cached in (False, True):
            start = time.perf_counter()
            samples[cached] = model.sample(n, generator=torch.Generator(device).manual_seed(0), frames=sample_frames,
                                           cached=cached)
            _sync(device)
            times[cached].append(time.perf_counter() - start)
    assert torch.equal(samples[True], samples[False]), "cached sampling must reproduce the uncached samples"
    times = {k: min(v) for k, v in times.items()}
    sample_name = name.replace(f"b{batch} {frames}x", f"b{n} {sample_frames}x")
    return [
        (f"{key} train step", name, round(1000 * step_s, 1), "ms"),
        (f"{key} bpd eval", name, round(batch / score_s, 1), "clips/s"),
        (f"{key} sampling uncached (baseline)", sample_name,
         round(sub_pixels / times[False], 1), "sub-pixels/s"),
        (f"{key} sampling cached (used)", sample_name, round(sub_pixels / times[True], 1),
         "sub-pixels/s"),
        (f"{key} sampling speed-up", sample_name, round(times[False] / times[True], 1), "x"),
    ]


def rows(device: str | None = None, resolutions: tuple[int, ...] = (8, 16)) -> list[tuple]:
    """Every decoder at each resolution: the cache's gain grows with the frame (uncached: H * W * C full passes)."""
    load_all()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = []
    for resolution in resolutions:
        for key in KEYS:
            out += decoder_rows(key, device, resolution=resolution)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[8, 16])
    args = parser.parse_args()
    print("what,config,value,unit")
    for row in rows(args.device, tuple(args.resolutions)):
        print(",".join(str(v) for v in row), flush=True)
