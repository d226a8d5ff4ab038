"""Feature-extraction throughput of the FVD detector: the harness path vs a naive loop, and the share of eval time
spent outside the detector. Prints a CSV table. Seeded I3D weights (throughput does not depend on the values).

    python benchmarks/metrics.py [--videos 8] [--batch 4] [--device cpu|cuda] [--resolution 64]
    python benchmarks/metrics.py --pytorch-i3d-dir /path/to/pytorch-i3d [--compare-batch 4] [--rounds 3]

With `--pytorch-i3d-dir` (or `PYTORCH_I3D_DIR`: a clone of piergiaj/pytorch-i3d, never vendored; only its
`pytorch_i3d.py` is loaded) it also compares the detector itself: our default (fast) path, our exact reference path
and pytorch-i3d's `InceptionI3d`, all fp32 under `inference_mode` with the same seeded weights, on the same
`[B, 3, 16, 224, 224]` batch, their forwards alternating in one process at 1 and 2 threads. Rows: median seconds,
the median of per-round speed-ups (pytorch-i3d time / ours), and the largest logit difference to pytorch-i3d.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time
from pathlib import Path

import torch

from zoo.datasets.shapes import render_clip
from zoo.metrics.detectors import DetectorInfo, I3DExtractor, load_i3d
from zoo.metrics.detectors.seeded import seeded_i3d_state_dict
from zoo.metrics.preprocess import pixels_to_i3d_input


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _pytorch_i3d(directory: str) -> torch.nn.Module:
    path = Path(directory) / "pytorch_i3d.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: point --pytorch-i3d-dir at a clone of piergiaj/pytorch-i3d")
    spec = importlib.util.spec_from_file_location("pytorch_i3d", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    network = module.InceptionI3d(400, in_channels=3)
    network.load_state_dict(seeded_i3d_state_dict())
    return network.eval()


def compare_rows(directory: str, batch: int, rounds: int, threads: tuple[int, ...] = (1, 2)) -> list[tuple]:
    """Ours (fast, exact) against pytorch-i3d: `(what, config, value, unit)` rows."""
    theirs = _pytorch_i3d(directory)
    ours = load_i3d(seeded_i3d_state_dict())
    x = torch.rand((batch, 3, 16, 224, 224), generator=torch.Generator().manual_seed(0)) * 2 - 1

    def ours_fast():
        ours.exact = False
        return ours(x)

    def ours_exact():
        ours.exact = True
        return ours(x)

    def pytorch_i3d():
        return theirs(x).mean(dim=2)  # (B, 400, T') -> time-averaged, as ours

    runs = {"ours (fast, default)": ours_fast, "ours (exact)": ours_exact, "pytorch-i3d": pytorch_i3d}
    out = []
    previous = torch.get_num_threads()
    for n in threads:
        torch.set_num_threads(n)
        times: dict[str, list[float]] = {k: [] for k in runs}
        logits: dict[str, torch.Tensor] = {}
        with torch.inference_mode():
            for i in range(rounds + 1):  # the first round warms up (and builds the folded weights)
                for key, run in runs.items():
                    start = time.perf_counter()
                    logits[key] = run()
                    if i:
                        times[key].append(time.perf_counter() - start)
        config = f"seeded I3D fp32 batch {batch} 16x224x224 cpu {n} thread(s)"
        for key in runs:
            out.append((f"i3d forward {key}", config, round(statistics.median(times[key]), 3), "s"))
        for key in ("ours (fast, default)", "ours (exact)"):
            speedup = statistics.median(b / a for a, b in zip(times[key], times["pytorch-i3d"]))
            out.append((f"i3d speed-up {key} vs pytorch-i3d (median per round)", config, round(speedup, 2), "x"))
            diff = (logits[key] - logits["pytorch-i3d"]).abs().max().item()
            out.append((f"i3d max logit difference {key} vs pytorch-i3d", config, f"{diff:.2e}", "abs"))
    torch.set_num_threads(previous)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--pytorch-i3d-dir", default=os.environ.get("PYTORCH_I3D_DIR"),
                        help="a clone of piergiaj/pytorch-i3d: compare the detector against it (env PYTORCH_I3D_DIR)")
    parser.add_argument("--compare-only", action="store_true", help="only the comparison against pytorch-i3d")
    parser.add_argument("--compare-batch", type=int, default=4, help="clips per forward in the comparison")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per thread count in the comparison")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts of the comparison")
    args = parser.parse_args()
    if args.pytorch_i3d_dir:
        print("what,config,value,unit")
        for n in args.threads:  # rows as soon as each thread count is done
            for row in compare_rows(args.pytorch_i3d_dir, args.compare_batch, args.rounds, (n,)):
                print(",".join(str(v) for v in row), flush=True)
        if args.compare_only:
            return
    device = torch.device(args.device)
    network = load_i3d(seeded_i3d_state_dict()).to(device)
    info = DetectorInfo("i3d", "seeded", "", False, "logits400", "torch_bilinear", "stretch", "unverified")
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
