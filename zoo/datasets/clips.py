"""`ClipDataset`: the decord-backed clip dataset every file-based dataset (ucf101, kinetics600, folder) builds on.

A subclass only lists its videos (`discover`: relative paths and labels). This class indexes them (cached container
metadata), drops videos too short for one clip, samples clips, decodes exactly the needed frames, resizes them and
survives bad files.

Clip sampling. A clip is `frames` frames, `frame_stride` apart, so it spans `(frames - 1) * frame_stride + 1` source
frames and video i allows `num_starts(i) = frames_i - span + 1` starts. A training key `(index, draw_seed)` takes a
start drawn from `(seed, draw_seed)` only; a bare `index` takes the deterministic start drawn from `(seed, index)`;
`pixels_at(index, start)` reads a clip-list entry.

Policies (documented in docs/datasets.md, "Bad data"):
* too short: videos with fewer frames than one clip's span are skipped when the dataset is built; counted in
  `counts["too_short"]` and logged once. Clips are never padded.
* bad: a file that is listed but missing, or whose container cannot be read when indexing (zero bytes, unreadable
  header or codec), stays an item (`counts["missing"]`, `counts["unreadable"]`); so does a file that fails when
  decoded (truncated stream, corrupt frames). Reading a bad item logs it once with its path, replaces its clip by
  the clip of another video chosen from `(seed, index, attempt)` (so every process replaces it the same way),
  counts it and appends it to `failure_log` when the DataModule sets one (reported at the end of every epoch).
  Never black frames. Exception: Kinetics clips that are missing are expected (every copy lacks some), so they are
  reported and left out of the index rather than counted as bad.
* too large: a file whose frames have more than `data.max_source_pixels` pixels is a bad file (`counts["too_large"]`),
  so one huge source cannot take a worker's memory; a header claiming more frames than the file can hold is
  unreadable (`decode.check_plausible`), before any decoder sizes itself by it.
* more than `max_bad_fraction` of the listed videos bad: `ZooError`. Not one listed file found, or none usable: a
  `ZooError` saying where it looked, the expected layout and a nearby folder that holds the files (never advice to
  raise `max_bad_fraction`, which cannot help then).
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from zoo.config import DataConfig
from zoo.datasets.base import ItemKey, VideoDataset
from zoo.datasets.decode import DECODERS, DECORD_MISSING, DecodeError, decord_available, read_frames, video_reader
from zoo.datasets.index import IndexEntry, build_index, is_regular_file
from zoo.datasets.prepared import PreparedVideos
from zoo.datasets.transforms import RESIZE_POLICIES, draw_crop_shift, resize_frames
from zoo.errors import ZooError
from zoo.frame_sampling import sparse_frame_times

log = logging.getLogger(__name__)
MAX_REPLACEMENTS = 16
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".ogv", ".3gp")


class ClipDataset(VideoDataset):
    """Clips of real video files; subclasses implement `discover`.

    Args:
        config: the data config (root, split, fold, frames, frame_stride, resolution, resize, seed, ...).
        progress: show a progress bar while indexing.
        refuse_bad: raise when no video is usable or more than `max_bad_fraction` are bad (False: `zoo data check`,
            which lists them instead); a root holding none of the listed files is an error either way.
    """

    conditions = ("none", "edges")  # edge maps come from any decoded frames
    layout: ClassVar[str] = "a directory of video files"  # what `root` must look like (error messages)
    download: ClassVar[str] = ""  # where to get the dataset (error messages)
    missing_is_bad: ClassVar[bool] = True  # do listed-but-absent files count towards max_bad_fraction

    def __init__(self, config: DataConfig, progress: bool = True, refuse_bad: bool = True):
        super().__init__(config)
        if config.resize not in RESIZE_POLICIES:
            raise ZooError(f"data.resize must be one of {', '.join(RESIZE_POLICIES)}, got {config.resize!r}")
        if config.decoder not in DECODERS:
            raise ZooError(f"data.decoder must be one of {', '.join(DECODERS)}, got {config.decoder!r}")
        if config.decoder == "decord" and not decord_available():
            raise ZooError(f"data.decoder=decord: {DECORD_MISSING}")
        if config.crop_jitter and config.prepared:
            raise ZooError("data.crop_jitter needs the decoded frames: prepared frames are already cropped "
                           "(drop data.prepared, or set data.crop_jitter=0)")
        if config.frames < 1 or config.frame_stride < 1 or config.resolution < 1:
            raise ZooError("data.frames, data.frame_stride and data.resolution must be positive")
        self.root = self._require_root()
        listed = self.discover()
        indexed = build_index(self.root, listed, config.video_stream, config.index_cache, progress=progress)
        self.entries: list[IndexEntry] = [self._within_pixel_limit(e) for e in indexed]
        self.span = (config.frames - 1) * config.frame_stride + 1
        self.records = [e for e in self.entries if self._is_item(e)]
        if config.num_videos is not None:
            self.records = self.records[: config.num_videos]
        self.counts = self._count()
        self.bad_at_index = {r.path for r in self.records if r.meta is None}
        self.failures: dict[str, str] = {}  # runtime decode failures in this process: path -> reason
        self.failure_log: str | None = None  # JSON-lines file shared by workers (set by the DataModule)
        self._prepared = PreparedVideos(config.prepared, config) if config.prepared else None
        self._check(refuse_bad)

    # ---------------------------------------------------------------------------------------------- subclass API
    def discover(self) -> list[tuple[str, int]]:
        """List the split's videos as `(path relative to root, label)`; set `self.class_names`."""
        raise NotImplementedError  # pragma: no cover - abstract

    def layout_error(self, problem: str, suggestion: str = "") -> ZooError:
        where = f" Download: {self.download}." if self.download else ""
        return ZooError(f"{problem}. {self.registry_key} expects {self.layout}.{where}{suggestion}")

    def root_flags(self, root: Path) -> str:
        """The flags that point this dataset at `root` (a subclass adds what else that root needs)."""
        return f"--data-root {root}"

    def did_you_mean(self, root: Path | None) -> str:
        """The closing hint of an error when `root` (a `nearby_folder`) matches what was sought; "" for None."""
        return f" Did you mean {self.root_flags(root)}?" if root else ""

    # ------------------------------------------------------------------------------------------------- building
    def _require_root(self) -> Path:
        if not self.config.root:
            raise self.layout_error("no dataset root given (--data-root DIR or data.root)")
        root = Path(self.config.root).expanduser()
        if not root.is_dir():
            raise self.layout_error(f"dataset root {root} does not exist")
        return root

    def _within_pixel_limit(self, entry: IndexEntry) -> IndexEntry:
        """`entry`, or a bad entry when its frames have more pixels than `data.max_source_pixels` allows (decoding
        one such frame costs width x height x 3 bytes before any resize)."""
        meta, limit = entry.meta, self.config.max_source_pixels
        if meta is None or meta.width * meta.height <= limit:
            return entry
        pixels = meta.width * meta.height
        return IndexEntry(entry.path, entry.label, problem=(
            f"too large: {self.root / entry.path}: {meta.width}x{meta.height} = {pixels} pixels per frame, over "
            f"data.max_source_pixels={limit}; downscale the file or raise the limit (--set data.max_source_pixels="
            f"{pixels})"))

    def _is_item(self, entry: IndexEntry) -> bool:
        if entry.meta is not None:
            return entry.meta.frames >= self.span  # too short: skipped
        return entry.problem != "missing" or self.missing_is_bad  # bad: an item, replaced when read

    @property
    def usable(self) -> list[IndexEntry]:
        """The items whose container could be read (bad items excluded)."""
        return [r for r in self.records if r.meta is not None]

    def _count(self) -> dict[str, int]:
        kinds = {"missing": "missing", "too large": "too_large"}  # any other problem: unreadable
        problems = Counter(kinds.get(e.problem.split(":")[0], "unreadable") for e in self.entries if e.problem)
        found = len(self.entries) - problems["missing"]
        too_short = sum(1 for e in self.entries if e.meta is not None and e.meta.frames < self.span)
        return {"listed": len(self.entries), "found": found, "missing": problems["missing"],
                "unreadable": problems["unreadable"], "too_large": problems["too_large"], "too_short": too_short,
                "usable": len(self.usable)}

    def _check(self, refuse_bad: bool) -> None:
        c = self.counts
        log.info("%s %s: %s", self.registry_key, self.config.split, ", ".join(f"{k} {v}" for k, v in c.items()))
        if c["too_short"]:
            log.warning("%s: skipped %d videos shorter than one clip (%d frames = %d x stride %d)",
                        self.registry_key, c["too_short"], self.span, self.config.frames, self.config.frame_stride)
        for e in self.entries:
            if e.problem is not None and e.problem != "missing":
                log.warning("%s: %s", self.registry_key, e.problem)
        if c["missing"]:
            first = next(e.path for e in self.entries if e.problem == "missing")
            log.warning("%s: %d listed videos are missing under %s (first: %s)",
                        self.registry_key, c["missing"], self.root, first)
        if c["listed"] and not c["found"]:
            raise self._nothing_found()
        if not refuse_bad:
            return
        if not c["usable"]:  # tolerating more bad files cannot help: do not suggest max_bad_fraction
            summary = ", ".join(f"{k} {v}" for k, v in c.items())
            raise self.layout_error(f"no usable videos under {self.root} ({summary}); `zoo data check` lists why")
        bad = len(self.bad_at_index)
        if bad > self.config.max_bad_fraction * c["listed"]:
            raise ZooError(
                f"{bad} of {c['listed']} {self.registry_key} videos are missing, unreadable or too large (more than "
                f"data.max_bad_fraction={self.config.max_bad_fraction}); check the copy with `zoo data check`, or "
                f"go on without them: --set data.max_bad_fraction={math.ceil(100 * bad / c['listed']) / 100}"
            )
        if self._prepared is not None:
            missing = self._prepared.missing([r.path for r in self.usable])
            if missing:
                raise ZooError(f"prepared dataset {self.config.prepared} lacks {len(missing)} videos of this split "
                               f"(first: {missing[0]}); prepare with --split all or this split")

    def _nothing_found(self) -> ZooError:
        """Not one listed video exists under the root: say where we looked, the expected layout, and the folder
        near the root that does hold the listed files, if there is one (a root one level too high or too low)."""
        paths = [e.path for e in self.entries]
        problem = (f"none of the {len(paths)} listed {self.registry_key} videos is under {self.root} (looked for "
                   f"{self.root / paths[0]}, ...)")
        return self.layout_error(problem, self.did_you_mean(self._root_holding(paths)))

    def _root_holding(self, paths: list[str]) -> Path | None:
        """The nearby folder under which some of `paths` (a sample: first, middle, last) exist as files."""
        sample = list(dict.fromkeys([paths[0], paths[len(paths) // 2], paths[-1]]))
        return self.nearby_folder(lambda folder: any(is_regular_file(folder / p) for p in sample))

    def nearby_folder(self, holds: Callable[[Path], bool], max_folders: int = 1000) -> Path | None:
        """The first folder among the root's parent, children and grandchildren for which `holds` is true, or None
        (at most `max_folders` looked at): where a root one level too high or too low should have pointed."""
        return next((f for f in itertools.islice(_nearby_folders(self.root), max_folders) if holds(f)), None)

    # --------------------------------------------------------------------------------------------- clip sampling
    def __len__(self) -> int:
        return len(self.records)

    def num_starts(self, index: int) -> int:
        meta = self.records[index].meta
        return 0 if meta is None else meta.frames - self.span + 1  # a bad item has no clips of its own

    def label_of(self, index: int) -> int:
        return self.records[index].label

    @property
    def video_reader(self) -> str:
        return video_reader(self.config.decoder)

    def item_name(self, index: int) -> str:
        return self.records[index].path

    def start_of(self, index: int, draw: int | None) -> int:
        """Clip start of item `index`: drawn from `(seed, draw)` for training keys, from `(seed, index)` otherwise."""
        seed = [self.config.seed, 0, draw] if draw is not None else [self.config.seed, 1, index]
        return int(np.random.default_rng(seed).integers(max(1, self.num_starts(index))))

    def frame_ids(self, start: int) -> list[int]:
        return [start + k * self.config.frame_stride for k in range(self.config.frames)]

    def clip_times(self, index: int, draw: int | None) -> list[float]:
        """Times of item `index`'s clip in strided frames: contiguous from its start, or, for training keys with
        `data.sparse_max_distance`, sparse (StyleGAN-V); a bad item (no metadata) gets a contiguous clip at 0."""
        meta, c = self.records[index].meta, self.config
        if c.sparse_max_distance and draw is not None and meta is not None:
            rng = np.random.default_rng([c.seed, 3, draw])
            return sparse_frame_times(c.frames, c.sparse_max_distance, self.strided_length(meta.frames), rng)
        start = self.start_of(index, draw)
        return [start / c.frame_stride + k for k in range(c.frames)]

    def strided_length(self, frames: int) -> int:
        """How many frames a video of `frames` source frames has at `data.frame_stride`."""
        return (frames - 1) // self.config.frame_stride + 1

    # ------------------------------------------------------------------------------------------------- decoding
    def read_clip(self, index: int, ids: list[int], crop_shift: float = 0.0) -> torch.Tensor:
        """Decode (or read prepared) and resize the source frames `ids` of one video, without replacement:
        uint8 `[T, R, R, 3]`. Only those frames are decoded, and each is resized within its decoded chunk, so a
        large source never costs a whole clip at full resolution.

        Raises:
            DecodeError: the file cannot give these frames.
        """
        record, c = self.records[index], self.config
        if record.meta is None:  # bad at indexing: `problem` says why (and names the file unless it is missing)
            raise DecodeError(f"{self.root / record.path}: missing" if record.problem == "missing" else record.problem)
        if self._prepared is not None:
            return torch.from_numpy(self._prepared.read(record.path, ids))
        frames = read_frames(str(self.root / record.path), ids, record.meta, c.decoder, c.decode_threads,
                             resize=functools.partial(self.resize_source, crop_shift=crop_shift))
        return torch.from_numpy(frames)

    def resize_source(self, frames: np.ndarray, crop_shift: float = 0.0) -> np.ndarray:
        """Source frames -> the configured square, its crop moved by `crop_shift` (`read_frames` calls it on each
        chunk as it is decoded)."""
        return resize_frames(frames, self.config.resolution, self.config.resize, crop_shift).numpy()

    def _clip(self, index: int, times: list[float], draw: int | None) -> tuple[int, list[float], torch.Tensor]:
        """The clip of item `index` at `times` (strided frames), or a deterministic replacement if that video fails;
        returns (index, times, pixels)."""
        original = index
        crop_shift = draw_crop_shift(self.config.seed, draw, self.config.crop_jitter) if draw is not None else 0.0
        for attempt in range(MAX_REPLACEMENTS):
            path = self.records[index].path
            if path not in self.failures:
                try:
                    ids = [round(t * self.config.frame_stride) for t in times]
                    return index, times, self.read_clip(index, ids, crop_shift)
                except DecodeError as e:
                    self._record_failure(path, str(e))
            index = int(np.random.default_rng([self.config.seed, 2, original, attempt]).integers(len(self)))
            times = self.clip_times(index, draw)
        raise ZooError(f"{self.registry_key}: {MAX_REPLACEMENTS} replacement videos in a row failed to decode "
                       f"(last: {self.records[index].path}); run `zoo data check`")

    def _record_failure(self, path: str, reason: str) -> None:
        self.failures[path] = reason
        log.warning("%s: cannot decode %s, replacing its clips (%s)", self.registry_key, path, reason)
        if self.failure_log:
            line = json.dumps({"path": path, "reason": reason}) + "\n"
            fd = os.open(self.failure_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())  # one O_APPEND write: lines from concurrent workers do not interleave
            finally:
                os.close(fd)
        c = self.counts
        bad = len(self.bad_at_index | self.failures.keys())
        if bad > self.config.max_bad_fraction * max(c["listed"], 1):
            raise ZooError(f"{bad} of {c['listed']} {self.registry_key} videos are unreadable (more than "
                           f"data.max_bad_fraction={self.config.max_bad_fraction}); last: {path}: {reason}; "
                           "run `zoo data check`")

    def pixels_at(self, index: int, start: int) -> torch.Tensor:
        if not 0 <= start < self.num_starts(index):
            raise IndexError(f"clip start {start} outside [0, {self.num_starts(index)}) for {self.item_name(index)}")
        return self._clip(index, [start / self.config.frame_stride + k for k in range(self.config.frames)], None)[2]

    def raw_item(self, key: ItemKey) -> dict[str, torch.Tensor]:
        index, draw = self.split_key(key)
        if not 0 <= index < len(self):
            raise IndexError(f"{self.registry_key} index {index} out of range [0, {len(self)})")
        used, times, pixels = self._clip(index, self.clip_times(index, draw), draw)
        item = {"pixels": pixels, "label": torch.tensor(self.records[used].label, dtype=torch.long)}
        if self.config.sparse_max_distance and draw is not None:
            meta = self.records[used].meta
            item["times"] = torch.tensor(times, dtype=torch.float32)  # strided frames since the video's start
            item["video_length"] = torch.tensor(float(self.strided_length(meta.frames)) if meta else len(times))
        return self.with_condition(item)


def _nearby_folders(root: Path):
    """The parent of `root`, then its sub-folders and their sub-folders (sorted, hidden ones skipped)."""
    yield root.parent
    children = _subfolders(root)
    yield from children
    for child in children:
        yield from _subfolders(child)


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(Path(e.path) for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []


def read_failure_log(path: str | Path) -> dict[str, str]:
    """Distinct failed videos recorded in a failure log: path -> reason."""
    failures: dict[str, str] = {}
    try:
        for line in Path(path).read_text().splitlines():
            if line.strip():
                item = json.loads(line)
                failures.setdefault(item["path"], item["reason"])
    except (OSError, ValueError):
        pass
    return failures
