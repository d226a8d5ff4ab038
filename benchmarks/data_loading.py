"""Data-loading throughput: streaming vs prepared vs a naive whole-video PyAV decode vs the decord decode floor.

Generates UCF-like inputs itself (AVI, MPEG-4 part 2 as XviD writes it, 320x240, 25 fps, a few seconds each), then
prints CSV rows `what,config,workers,value,unit` (clips/s and ms/clip) for:

* `streaming`: the `folder` dataset through a DataLoader as the DataModule builds it (decord `get_batch` of the
  clip's frames and resize in the workers), up to the uint8 batch the training step receives;
* `prepared`: the same from `zoo data prepare` output (memory-mapped uint8 instead of decoding);
* `to_video_cpu`: the step after the loader, `to_video` (uint8 batch -> float video), run on the CPU (training on a
  GPU runs it on the device, after the 4x smaller transfer);
* `naive_pyav`: decode the whole video with PyAV, then pick the clip's frames and resize (one process);
* `decode_floor`: decord reading exactly the clip's frames, nothing else (one process; with `--workers`, the same
  reads split over that many forked processes, no DataLoader: decord decodes on a thread of its own beside the
  caller, so one process already keeps ~1.35 cores busy, and two cannot each reach the 1-process rate on 2 cores);
* `streaming_pyav`, `decode_floor_pyav`: the same with PyAV as the only reader, what `data.decoder=auto` does where
  decord has no wheel (macOS, Linux aarch64). Without decord installed, only these and the reader-free rows run.

Loaders are timed in steady state: workers are persistent (as in training), and one untimed pass starts them.
Every row is the fastest of `--rounds` timed passes, taken in interleaved rounds. Last come the issue's goal
ratios as rows `goal,<ratio>,<workers>,<value>,x`. Goals (issue 3), at 16x64x64, stride 1, 2 workers:
streaming >= 3x naive, >= 0.8x the floor per worker; prepared >= 10x streaming.
Usage: `python benchmarks/data_loading.py [--videos 24] [--seconds 6] [--clips 192] [--rounds 5]`.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
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
from zoo.datasets.base import to_video  # noqa: E402
from zoo.datasets.datamodule import RawItems  # noqa: E402
from zoo.datasets.decode import decord_available, read_frames  # noqa: E402
from zoo.datasets.prepared import prepare  # noqa: E402
from zoo.datasets.transforms import resize_frames  # noqa: E402


def row(what: str, config: str, workers: int, clips: int, seconds: float) -> float:
    print(f"{what},{config},{workers},{clips / seconds:.1f},clips/s")
    print(f"{what},{config},{workers},{1000 * seconds / clips:.2f},ms/clip")
    sys.stdout.flush()
    return clips / seconds


def keys(dataset, clips: int) -> list[tuple[int, int]]:
    return [(i % len(dataset), 1000 + i) for i in range(clips)]


_FLOOR: tuple = ()  # (dataset, keys) for the parallel floor's forked processes


def read_clips(dataset, ks: list, decoder: str) -> None:
    """Decode exactly the frames of the clips `ks` with `decoder`, nothing else (no resize, no loader)."""
    for index, draw in ks:
        v = dataset.records[index]
        read_frames(str(dataset.root / v.path), dataset.frame_ids(dataset.start_of(index, draw)), v.meta, decoder)


def _floor_share(rank_world: tuple[int, int]) -> int:
    dataset, ks = _FLOOR
    rank, world = rank_world
    read_clips(dataset, ks[rank::world], "decord")
    return 0


def parallel_floor(dataset, ks: list, workers: int):
    """The decode floor split over `workers` forked processes (no DataLoader), as a callable: what the machine
    gives for bare decoding at the loader's parallelism."""
    global _FLOOR
    _FLOOR = (dataset, ks)
    pool = mp.get_context("fork").Pool(workers)  # fork, like DataLoader workers
    shares = [(r, workers) for r in range(workers)]
    pool.map(_floor_share, shares)
    return lambda: pool.map(_floor_share, shares)


def loader_pass(dataset, clips: int, workers: int, batch: int = 8):
    """One pass of `clips` clips through a DataLoader built like the DataModule's, as a callable; the first call
    (untimed, here) starts the persistent workers."""
    loader = DataLoader(RawItems(dataset), batch_size=batch, sampler=keys(dataset, clips), num_workers=workers,
                        persistent_workers=workers > 0)

    def run():
        for b in loader:
            assert b["pixels"].dtype == torch.uint8 and b["pixels"].shape[0] <= batch

    run()
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=24)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--clips", type=int, default=192)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5, help="timed passes per row, interleaved; the fastest counts")
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
    prepare(build_dataset("folder", **{**common, "frames": 1}), work / "prepared", workers=args.workers,
            progress=False)
    fast = build_dataset("folder", prepared=str(work / "prepared"), **common)
    pyav_only = build_dataset("folder", decoder="pyav", **common)
    ks = keys(dataset, args.clips)
    naive_clips, many, w = max(8, args.clips // 8), args.clips * 10, args.workers
    has_decord = decord_available()

    def naive():  # decode the whole video with PyAV, then pick the clip's frames
        for index, draw in ks[:naive_clips]:
            v = dataset.records[index]
            everything = read_frames(str(dataset.root / v.path), list(range(v.meta.frames)), v.meta, "pyav")
            ids = dataset.frame_ids(dataset.start_of(index, draw))
            resize_frames(np.ascontiguousarray(everything[ids]), args.resolution)  # uint8, as the loaders deliver

    one_batch = next(iter(DataLoader(RawItems(fast), batch_size=8, sampler=keys(fast, 8))))
    runs = {  # name: (workers, clips per pass, pass)
        "naive_pyav": (1, naive_clips, naive),
        "decode_floor_pyav": (1, args.clips, lambda: read_clips(dataset, ks, "pyav")),
        "streaming_pyav/0": (0, args.clips, loader_pass(pyav_only, args.clips, 0)),
        f"streaming_pyav/{w}": (w, args.clips, loader_pass(pyav_only, args.clips, w)),
        "prepared/0": (0, many, loader_pass(fast, many, 0)),
        f"prepared/{w}": (w, many, loader_pass(fast, many, w)),
        "to_video_cpu": (0, 800, lambda: [to_video(one_batch) for _ in range(100)]),
    }
    if has_decord:
        runs.update({
            "decode_floor": (1, args.clips, lambda: read_clips(dataset, ks, "decord")),
            f"decode_floor/{w}": (w, args.clips, parallel_floor(dataset, ks, w)),
            "streaming/0": (0, args.clips, loader_pass(dataset, args.clips, 0)),
            f"streaming/{w}": (w, args.clips, loader_pass(dataset, args.clips, w)),
        })
    best = {name: float("inf") for name in runs}
    for _ in range(args.rounds):  # interleaved, so a slow spell of the machine hits every row alike
        for name, (_, _, run) in runs.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    rate = {name: row(name.split("/")[0], config, workers, clips, best[name])
            for name, (workers, clips, _) in runs.items()}

    print(f"ratio,streaming_pyav/naive,{w},{rate[f'streaming_pyav/{w}'] / rate['naive_pyav']:.2f},x")
    if not has_decord:
        print("note,decord is not installed: decord rows skipped,,,")
        return
    print(f"ratio,streaming_pyav/streaming (decord),{w},{rate[f'streaming_pyav/{w}'] / rate[f'streaming/{w}']:.2f},x")
    print(f"goal,streaming/naive (>= 3),{w},{rate[f'streaming/{w}'] / rate['naive_pyav']:.2f},x")
    print(f"goal,streaming per worker/floor (>= 0.8),{w},{rate[f'streaming/{w}'] / w / rate['decode_floor']:.2f},x")
    print(f"goal,streaming/floor in {w} processes,{w},{rate[f'streaming/{w}'] / rate[f'decode_floor/{w}']:.2f},x")
    print(f"goal,prepared/streaming (>= 10),{w},{rate[f'prepared/{w}'] / rate[f'streaming/{w}']:.2f},x")


if __name__ == "__main__":
    main()
