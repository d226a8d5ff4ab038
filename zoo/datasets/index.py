"""The video index: (path, frame count, fps, size, stream) per file, from container metadata, cached on disk.

Building reads metadata only (no decoding), in parallel threads with a progress bar. The cache is one JSON file per
(root, stream choice) under `data.index_cache` (default `$ZOO_CACHE` or `~/.cache/video-zoo`), keyed per file by
(relative path, size, mtime): a changed file is probed again, an unchanged one is not, so a second start on UCF-101
only stats 13,320 files. An entry is trusted only while it is well-formed and plausible for the file as it is now
(size, mtime, and a frame count the file can hold); anything else is probed again. Unlike torchvision's UCF101
(PR #2475) only the videos of the requested split are probed.
A listed path that is not a regular file (a FIFO, socket or device, whose open would block or never end) is never
opened: it is a bad entry "not a regular file", and folder listings skip such files altogether.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock
from tqdm import tqdm

from zoo.datasets.decode import DecodeError, VideoMeta, check_plausible, probe

CACHE_VERSION = 1


@dataclass
class IndexEntry:
    """One listed video: its metadata, or why it cannot be used."""

    path: str  # relative to the dataset root
    label: int
    meta: VideoMeta | None = None
    problem: str | None = None  # "missing" | "unreadable: ..." | "not a regular file: ..." (None when meta is set)


def cache_dir(configured: str | None) -> Path:
    return Path(configured or os.environ.get("ZOO_CACHE") or Path.home() / ".cache" / "video-zoo")


def _cache_file(directory: Path, root: Path, video_stream: int | None) -> Path:
    key = hashlib.sha256(f"{root.resolve()}|{video_stream}".encode()).hexdigest()[:16]
    return directory / f"index-{key}.json"


NOT_REGULAR = (-1, -1)  # `_stat` of something that exists but is not a regular file


def is_regular_file(path: str | Path) -> bool:
    """True for a regular file (after symlinks); False for directories, FIFOs, sockets, devices and missing paths.

    Listing code uses this instead of `is_file()`-less name matching, so a FIFO named `x.mp4` is never opened."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return NOT_REGULAR
    return st.st_size, st.st_mtime_ns


def _kind(path: Path) -> str:
    try:
        mode = path.stat().st_mode
    except OSError:
        return "missing"
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def _probe_one(path: Path, video_stream: int | None) -> dict:
    try:
        return {"meta": dataclasses.asdict(probe(str(path), video_stream))}
    except DecodeError as e:
        return {"problem": f"unreadable: {e}"}


def build_index(
    root: str | Path,
    videos: list[tuple[str, int]],
    video_stream: int | None = None,
    index_cache: str | None = None,
    workers: int = 8,
    progress: bool = True,
) -> list[IndexEntry]:
    """Index `videos` (relative path, label) under `root`, reusing the on-disk cache where files are unchanged.

    Args:
        root: dataset root.
        videos: `(relative path, label)` pairs, in dataset order.
        video_stream: stream choice (see `decode.probe`); part of the cache key.
        index_cache: cache directory (None = default); the cache is skipped if it cannot be written.
        workers: probing threads (PyAV releases the GIL while it reads headers).
        progress: show a tqdm bar while probing.

    Returns:
        One `IndexEntry` per input pair, same order.
    """
    root = Path(root)
    directory = cache_dir(index_cache)
    cache_file = _cache_file(directory, root, video_stream)
    cached = _load_cache(cache_file)
    stats = [_stat(root / rel) for rel, _ in videos]
    results: dict[str, dict] = {}
    todo: list[str] = []
    for (rel, _), st in zip(videos, stats):
        if st is None or st == NOT_REGULAR:
            continue
        hit = cached.get(rel)
        if _trusted(hit, root / rel, st):
            results[rel] = hit
        elif rel not in results:
            todo.append(rel)
    todo = list(dict.fromkeys(todo))
    if todo:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            probed = pool.map(lambda rel: _probe_one(root / rel, video_stream), todo)
            # `with`: zip stops on `todo` and never finishes the bar's iterator, which would leave it open
            with tqdm(probed, total=len(todo), desc=f"indexing {root.name}", unit="video", disable=not progress,
                      leave=False) as bar:
                for rel, info in zip(todo, bar):
                    st = _stat(root / rel)
                    if st is not None and st != NOT_REGULAR:
                        results[rel] = {"size": st[0], "mtime_ns": st[1], **info}
        _save_cache(cache_file, results)
    entries = []
    for (rel, label), st in zip(videos, stats):
        info = results.get(rel)
        if st == NOT_REGULAR:
            entries.append(IndexEntry(rel, label, problem=f"not a regular file: {root / rel} is {_kind(root / rel)}; "
                                                          "skipped"))
        elif st is None or info is None:
            entries.append(IndexEntry(rel, label, problem="missing"))
        elif "meta" in info:
            entries.append(IndexEntry(rel, label, meta=VideoMeta(**info["meta"])))
        else:
            entries.append(IndexEntry(rel, label, problem=info["problem"]))
    return entries


def _trusted(hit, path: Path, st: tuple[int, int]) -> bool:
    """Whether a cache entry may stand for the file: written for its current size and mtime, and well-formed, with
    metadata the file can hold (`decode.check_plausible`). Anything else (a stale, hand-edited or damaged entry) is
    probed again, never trusted: a claimed frame count is what clip sampling and the decoders size themselves by."""
    if not isinstance(hit, dict) or hit.get("size") != st[0] or hit.get("mtime_ns") != st[1]:
        return False
    if isinstance(hit.get("problem"), str) and "meta" not in hit:
        return True
    try:
        meta = VideoMeta(**hit["meta"])
        numbers = (meta.frames, meta.width, meta.height, meta.stream, meta.video_streams)
        if not all(type(n) is int and n >= 0 for n in numbers) or min(meta.frames, meta.width, meta.height) < 1:
            return False
        check_plausible(str(path), meta, st[0])
    except (KeyError, TypeError, DecodeError):
        return False
    return True


def _load_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("files"), dict):
        return {}
    return data["files"]


def _save_cache(path: Path, results: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock", timeout=60):
            merged = {**_load_cache(path), **results}  # other datasets/splits of the same root share the file
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps({"version": CACHE_VERSION, "files": merged}))
            os.replace(tmp, path)
    except OSError:  # read-only home or cache dir: work without a cache rather than fail
        pass
