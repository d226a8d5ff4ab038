"""Prepared datasets: every frame decoded once to uint8 at the training resolution, in one memory-mapped array.

`zoo data prepare` writes `DIR/frames.u8` (uint8 `[total frames, R, R, 3]`, raw) and `DIR/meta.json` (dataset,
resolution, resize policy, stream choice and, per video, `[offset, frames]` keyed by relative path). Training then
reads clips with one slice of the memory map instead of decoding (notes/data_loading.md Sec. 4.6 items 1-2, the
TGANv2 / StyleGAN-V approach). Frames go through the same decoder choice and `resize_frames` as streaming, so a
prepared clip equals the streamed one bit for bit (tests/datasets/test_prepared.py).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from zoo.datasets.decode import DecodeError, iter_all_frames
from zoo.datasets.transforms import resize_frames
from zoo.errors import ZooError

FORMAT_VERSION = 1
META, FRAMES = "meta.json", "frames.u8"


def prepare(dataset, out: str | Path, workers: int = 2, progress: bool = True) -> dict:
    """Decode every usable video of `dataset` (a `ClipDataset`) into `out` (bad items stay bad: reading them from
    the prepared directory fails like streaming them, so they are replaced the same way).

    Args:
        dataset: the built dataset; its resolution, resize policy, stream choice and decoder are used.
        out: output directory (created).
        workers: decoding processes.

    Returns:
        Counts: `{"videos", "frames", "failed"}`.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    c = dataset.config
    res = c.resolution
    videos, offset = {}, 0
    jobs = []
    usable = dataset.usable
    for record in usable:
        videos[record.path] = [offset, record.meta.frames]
        jobs.append((str(dataset.root / record.path), record.meta, offset))
        offset += record.meta.frames
    array = np.memmap(out / FRAMES, dtype=np.uint8, mode="w+", shape=(max(offset, 1), res, res, 3))
    del array
    args = [(path, meta, off, str(out / FRAMES), offset, res, c.resize, c.decoder) for path, meta, off in jobs]
    failed = {}
    # spawn, not fork: forking a process that already runs torch / gloo / decoder threads can deadlock
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) if workers > 1 else None
    try:
        results = pool.map(_prepare_one, args, chunksize=4) if pool else map(_prepare_one, args)
        with tqdm(zip(usable, results), total=len(jobs), desc="preparing", unit="video", disable=not progress) as bar:
            for record, problem in bar:
                if problem:
                    failed[record.path] = problem
    finally:
        if pool:
            pool.shutdown()
    meta = {
        "version": FORMAT_VERSION,
        "dataset": dataset.registry_key,
        "resolution": res,
        "resize": c.resize,
        "video_stream": c.video_stream,
        "total_frames": offset,
        "videos": videos,
        "failed": failed,
    }
    (out / META).write_text(json.dumps(meta))
    return {"videos": len(videos) - len(failed), "frames": offset, "failed": len(failed)}


def _prepare_one(args) -> str | None:
    path, meta, offset, frames_path, total, res, resize, decoder = args
    array = np.memmap(frames_path, dtype=np.uint8, mode="r+", shape=(max(total, 1), res, res, 3))
    try:
        position = offset
        for resized in iter_all_frames(path, meta, decoder, resize=lambda x: resize_frames(x, res, resize).numpy()):
            array[position : position + len(resized)] = resized
            position += len(resized)
        array.flush()
    except DecodeError as e:
        return str(e)
    finally:
        del array
    return None


class PreparedVideos:
    """Read-side of a prepared directory; the memory map opens lazily in each process (after DataLoader forks)."""

    def __init__(self, directory: str | Path, config):
        self.directory = Path(directory)
        meta_file = self.directory / META
        if not meta_file.is_file():
            raise ZooError(f"{self.directory} is not a prepared dataset (no {META}); write it with `zoo data prepare`")
        self.meta = json.loads(meta_file.read_text())
        want = {"dataset": config.name, "resolution": config.resolution, "resize": config.resize,
                "video_stream": config.video_stream}
        have = {k: self.meta.get(k) for k in want}
        if have != want:
            raise ZooError(f"prepared dataset {self.directory} was written for {have}, the config asks for {want}; "
                           "run `zoo data prepare` again with these settings")
        self.videos: dict[str, list[int]] = self.meta["videos"]
        self.failed: dict[str, str] = self.meta.get("failed", {})
        self._frames: np.memmap | None = None

    def missing(self, paths: list[str]) -> list[str]:
        return [p for p in paths if p not in self.videos]

    def read(self, path: str, indices: list[int]) -> np.ndarray:
        """uint8 `[T, R, R, 3]` frames `indices` of video `path` (relative)."""
        if path in self.failed:
            raise DecodeError(f"{path}: failed when prepared: {self.failed[path]}")
        offset, count = self.videos[path]
        if indices and (indices[-1] >= count or indices[0] < 0):
            raise DecodeError(f"{path}: frame {indices[-1]} requested, {count} prepared")
        if self._frames is None or self._pid != os.getpid():
            r = self.meta["resolution"]
            total = max(self.meta["total_frames"], 1)
            self._frames = np.memmap(self.directory / FRAMES, dtype=np.uint8, mode="r", shape=(total, r, r, 3))
            self._pid = os.getpid()
        return np.ascontiguousarray(self._frames[np.asarray(indices) + offset])
