"""Feature-extraction throughput of the FVD detector: the harness path vs a naive loop, and the share of eval time
spent outside the detector. Prints a CSV table. Seeded I3D weights (throughput does not depend on the values).

    python benchmarks/metrics.py [--videos 8] [--batch 4] [--device cpu|cuda] [--resolution 64]
"""

from __future__ import annotations

import argparse
import time

import torch

from zoo.datasets.shapes import render_clip
from zoo.metrics.detectors import DetectorInfo, I3DExtractor, load_i3d
from zoo.metrics.detectors.seeded import seeded_i3d_state_dict
from zoo.metrics.preprocess import pixels_to_i3d_input


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    network = load_i3d(seeded_i3d_state_dict()).to(device)
    info = DetectorInfo("i3d", "seeded", "", False, "logits400", "torch_bilinear", "stretch")
    extractor = I3DExtractor(network, info)

    t0 = time.perf_counter()  # data side: render + stack uint8 clips (what a decoder / sampler hands the harness)
    pixels = torch.stack([render_clip(0, i, 16, args.resolution)["pixels"] for i in range(args.videos)])
    data_s = time.perf_counter() - t0

    extractor(pixels[:1].to(device))  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    pre_s = 0.0
    for i in range(0, args.videos, args.batch):
        batch = pixels[i : i + args.batch].to(device)
        t1 = time.perf_counter()
        pixels_to_i3d_input(batch)
        _sync(device)
        pre_s += time.perf_counter() - t1
        extractor(batch)
    _sync(device)
    harness_s = time.perf_counter() - t0

    t0 = time.perf_counter()  # naive: fp32, autograd on, one video at a time
    for i in range(args.videos):
        x = pixels_to_i3d_input(pixels[i : i + 1].to(device))
        network(x)
    _sync(device)
    naive_s = time.perf_counter() - t0

    outside = (data_s + pre_s) / (data_s + harness_s)
    print("device,videos,batch,path,videos_per_s,share_outside_detector")
    print(f"{device.type},{args.videos},{args.batch},harness,{args.videos / harness_s:.3f},{outside:.3f}")
    print(f"{device.type},{args.videos},1,naive,{args.videos / naive_s:.3f},")


if __name__ == "__main__":
    main()
