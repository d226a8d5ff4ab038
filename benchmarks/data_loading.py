"""Data-loading throughput: streaming vs prepared vs a naive whole-video PyAV decode vs the decord decode floor.

Generates UCF-like inputs itself (AVI, MPEG-4 part 2 as XviD writes it, 320x240, 25 fps, a few seconds each), then
prints CSV rows `what,config,workers,value,unit` (clips/s and ms/clip) for:

* `streaming`: the `folder` dataset through a DataLoader (decord `get_batch` of the clip's frames, resize, float);
* `prepared`: the same dataset read from `zoo data prepare` output (memory-mapped uint8);
* `naive_pyav`: decode the whole video with PyAV, then pick the clip's frames and resize (one process);
* `decode_floor`: decord reading exactly the clip's frames, nothing else (one process).

Goals (issue 3), at 16x64x64, stride 1, 2 workers: streaming >= 3x naive, >= 0.8x the floor per worker; prepared
>= 10x streaming. Usage: `python benchmarks/data_loading.py [--videos 24] [--seconds 6] [--clips 96]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.datasets.media import write  # noqa: E402
from zoo.datasets import build_dataset  # noqa: E402
from zoo.datasets.decode import read_frames  # noqa: E402
from zoo.datasets.prepared import prepare  # noqa: E402
from zoo.datasets.transforms import resize_frames  # noqa: E402


def row(what: str, config: str, workers: int, clips: int, seconds: float) -> None:
    print(f"{what},{config},{workers},{clips / seconds:.1f},clips/s")
    print(f"{what},{config},{workers},{1000 * seconds / clips:.2f},ms/clip")
    sys.stdout.flush()


def keys(dataset, clips: int) -> list[tuple[int, int]]:
    return [(i % len(dataset), 1000 + i) for i in range(clips)]


def time_loader(dataset, clips: int, workers: int, batch: int = 8) -> float:
    loader = DataLoader(dataset, batch_size=batch, sampler=keys(dataset, clips), num_workers=workers,
                        persistent_workers=False)
    start = time.perf_counter()
    for b in loader:
        assert b["video"].shape[0] <= batch
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=24)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--clips", type=int, default=96)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="zoo-bench-"))
    n = round(args.seconds * 25)
    for i in range(args.videos):
        write(work / "videos" / f"c{i % 4}" / f"v_{i:03d}.avi", n=n, height=240, width=320, fps=25, seed=i, gop=12)
    common = dict(root=str(work / "videos"), frames=args.frames, frame_stride=args.stride,
                  resolution=args.resolution, index_cache=str(work / "cache"))
    config = f"{args.frames}x{args.resolution}x{args.resolution} stride {args.stride}; {args.videos} AVI 320x240 {n}f"
    dataset = build_dataset("folder", **common)
    ks = keys(dataset, args.clips)

    start = time.perf_counter()  # decode floor: decord, exactly the needed frames, nothing else
    for index, draw in ks:
        r = dataset.records[index]
        read_frames(str(dataset.root / r.path), dataset.frame_ids(dataset.start_of(index, draw)), r.meta, "decord")
    row("decode_floor", config, 1, args.clips, time.perf_counter() - start)

    naive_clips = max(8, args.clips // 4)
    start = time.perf_counter()  # naive: decode the whole video with PyAV, then pick frames
    for index, draw in ks[:naive_clips]:
        r = dataset.records[index]
        everything = read_frames(str(dataset.root / r.path), list(range(r.meta.frames)), r.meta, "pyav")
        ids = dataset.frame_ids(dataset.start_of(index, draw))
        resize_frames(np.ascontiguousarray(everything[ids]), args.resolution).float()
    row("naive_pyav", config, 1, naive_clips, time.perf_counter() - start)

    row("streaming", config, 0, args.clips, time_loader(dataset, args.clips, 0))
    row("streaming", config, args.workers, args.clips, time_loader(dataset, args.clips, args.workers))

    prepare(build_dataset("folder", **{**common, "frames": 1}), work / "prepared", workers=args.workers,
            progress=False)
    fast = build_dataset("folder", prepared=str(work / "prepared"), **common)
    many = args.clips * 10
    row("prepared", config, 0, many, time_loader(fast, many, 0))
    row("prepared", config, args.workers, many, time_loader(fast, many, args.workers))


if __name__ == "__main__":
    main()
