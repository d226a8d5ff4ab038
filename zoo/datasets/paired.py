"""`paired`: frame-aligned (source, target) videos for video-to-video translation (vid2vid and kin).

Layout: `<root>/source/<name>.<ext>` beside `<root>/target/<name>.<ext>`, each side a video file (any extension of
`VIDEO_EXTENSIONS`, read by the decode layer) or a folder of PNG frames `<name>/*.png` (sorted by file name, so
number them with zero padding). Pairs match by `<name>`; the items are the targets in name order, the clip is the
target's (`pixels`, unlabelled: label -1) and the source is read at the very same frames, cropped and resized alike:

* `data.condition=source`: `condition` = the source video as RGB in [-1, 1], C_c = 3;
* `data.condition=segmentation`: label ids read losslessly from PNG frames (a single-channel image, or the first
  channel), resized by nearest neighbour, one-hot over `data.condition_classes` channels. A label map stored as a
  video file is refused: video codecs (lossy compression, YUV conversion) change the ids. An id >= the classes is a
  bad pair (its line names the frame);
* `data.condition=edges`: Canny edges of the target frames, C_c = 1.

Split: with `<root>/train/{source,target}` and `<root>/test/{source,target}`, `data.split` picks one (`all`: both);
with `source/` and `target/` directly in the root, the split is ignored (as `folder`), so held-out pairs then need
their own root.

Flow: with `<root>/flow/` (or `<root>/<split>/flow/`) beside `source/` and `target/`, every pair takes the
user-supplied flow of its target from `flow/<name>.npz` (`flow_files.py`), and its items carry `flow` / `flow_valid`
and, with a backward flow in the files, `flow_back` / `flow_back_valid`, cropped, resized and sliced to the clip's
frames like the frames. The files' flows join consecutive frames, so `data.frame_stride` > 1 and sparse clips are
refused with them.

Bad pairs are bad files of `ClipDataset`: a name without its partner, sides that differ in frame count or size, an
unreadable side, a PNG folder without frames, a missing or malformed flow file: each a line naming the pair, counted
as unreadable, replaced when read and refused above `data.max_bad_fraction`.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass

import numpy as np
import torch

from zoo.config import DataConfig
from zoo.datasets.clips import VIDEO_EXTENSIONS, ClipDataset
from zoo.datasets.conditions import one_hot
from zoo.datasets.decode import DecodeError, VideoMeta, read_frames
from zoo.datasets.flow_files import check_flow_file, clip_flows, read_flow_file
from zoo.datasets.index import IndexEntry, is_regular_file
from zoo.datasets.transforms import resize_labels
from zoo.errors import ZooError
from zoo.registry import register_dataset
from zoo.video_io import from_uint8

log = logging.getLogger(__name__)
SIDES = ("source", "target")


@dataclass
class Side:
    """One side of a pair: a video file, or a folder of PNG frames (`frames` = their sorted file names)."""

    path: str  # relative to the root
    frames: tuple[str, ...] | None = None  # PNG frame folder; None for a video file
    meta: VideoMeta | None = None
    problem: str | None = None

    @property
    def is_png(self) -> bool:
        return self.frames is not None


@register_dataset(
    "paired",
    description="frame-aligned source/target video pairs (vid2vid): DIR/source/<name>.<ext> beside "
                "DIR/target/<name>.<ext>, or PNG frame folders; condition source | segmentation | edges",
    paper="",
)
class PairedVideos(ClipDataset):
    """Target clips with their frame-aligned source (see the module docstring)."""

    conditions = ("none", "source", "segmentation", "edges")
    preparable = False  # prepared frames hold one video per item, not a pair
    layout = ("<root>/source/<name>.<ext> beside <root>/target/<name>.<ext> (videos, or PNG frame folders "
              "<name>/*.png), optionally under <root>/train and <root>/test")

    def __init__(self, config: DataConfig, progress: bool = True, refuse_bad: bool = True):
        if config.prepared:
            raise ZooError("paired does not read data.prepared frames: it decodes a source beside every target")
        if config.condition == "segmentation" and config.condition_classes is None:
            raise ZooError("data.condition=segmentation of paired needs data.condition_classes (label ids 0..n-1 "
                           "become n one-hot channels)")
        self.sides: dict[str, tuple[Side | None, Side | None]] = {}  # target path -> (source, target)
        self.flow_dirs: list[str] = []  # the flow/ folders found (relative to the root)
        self.flow_paths: dict[str, str] = {}  # target path -> its flow file (relative), when flow/ folders exist
        self.flow_arrays: tuple[str, ...] | None = None  # the arrays every flow file holds (the first good one's)
        super().__init__(config, progress, refuse_bad)
        if self.flow_arrays is not None and "backward" not in self.flow_arrays and "valid_forward" not in \
                self.flow_arrays:
            log.warning("paired: %s", self.flow_source)

    @property
    def condition_channels(self) -> int:
        c = self.config
        own = {"source": 3, "segmentation": c.condition_classes}
        return own[c.condition] if c.condition in own else super().condition_channels

    @property
    def flow_source(self) -> str | None:
        """What the items' flows are, for records (evaluation rows); None without flow files."""
        if not self.flow_dirs:
            return None
        arrays = self.flow_arrays or ()
        if "valid_forward" in arrays:
            masks = "masks from the files"
        elif "backward" in arrays:
            masks = "masks by forward-backward consistency"
        else:
            masks = "no mask or backward flow in the files: every pixel counts as valid"
        return f"user-supplied flow files ({', '.join(self.flow_dirs)}); {masks}"

    # ------------------------------------------------------------------------------------------------- listing
    def _split_folders(self) -> list[str]:
        """The folders (relative to the root, "" = the root) that hold `source/` and `target/` for this split."""
        if (self.root / "source").is_dir() or (self.root / "target").is_dir():
            folders = [""]
        elif any((self.root / s / "target").is_dir() for s in ("train", "test")):
            folders = ["train", "test"] if self.config.split == "all" else [self.config.split]
        else:
            folders = [""]
        for folder in folders:
            for side in SIDES:
                if not (self.root / folder / side).is_dir():
                    raise self.layout_error(f"no {side}/ folder in {self.root / folder}")
        return folders

    def _list_side(self, folder: str) -> dict[str, Side]:
        """name -> Side of the videos and PNG frame folders directly in `folder` (relative to the root)."""
        found: dict[str, Side] = {}
        for entry in sorted(os.scandir(self.root / folder), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            rel = f"{folder}/{entry.name}"
            if entry.is_dir():
                pngs = tuple(sorted(f.name for f in os.scandir(entry.path) if f.name.lower().endswith(".png")
                                    and not f.name.startswith(".") and is_regular_file(f.path)))
                name, side = entry.name, Side(rel, frames=pngs)
            elif entry.name.lower().endswith(VIDEO_EXTENSIONS) and is_regular_file(entry.path):
                name, side = os.path.splitext(entry.name)[0], Side(rel)
            else:
                continue
            if name in found:
                raise ZooError(f"paired: {self.root / found[name].path} and {self.root / rel} share the name "
                               f"{name!r}; keep one")
            found[name] = side
        return found

    def discover(self) -> list[tuple[str, int]]:
        listed = []
        for folder in self._split_folders():
            prefix = f"{folder}/" if folder else ""
            source, target = self._list_side(f"{prefix}source"), self._list_side(f"{prefix}target")
            if (self.root / f"{prefix}flow").is_dir():
                self.flow_dirs.append(f"{prefix}flow")
            for name in sorted(source.keys() | target.keys()):
                key = target[name].path if name in target else f"{prefix}target/{name}"
                self.sides[key] = (source.get(name), target.get(name))
                self.flow_paths[key] = f"{prefix}flow/{name}.npz"
                listed.append((key, -1))
        if not listed:
            raise self.layout_error(f"no videos or PNG frame folders under {self.root}")
        if not self.flow_dirs:
            self.flow_paths = {}
        elif self.config.frame_stride != 1 or self.config.sparse_max_distance:
            what = (f"data.frame_stride={self.config.frame_stride}" if self.config.frame_stride != 1 else
                    f"data.sparse_max_distance={self.config.sparse_max_distance}")
            raise ZooError(f"paired: the flow files in {self.root / self.flow_dirs[0]} join consecutive frames, but "
                           f"{what} skips frames (the flow between them is not the files' flow): use frame_stride 1 "
                           "and contiguous clips, or move flow/ away to train without flow supervision")
        if self.config.condition == "segmentation":
            videos = [s.path for s, _ in self.sides.values() if s is not None and not s.is_png]
            if videos:
                raise ZooError(f"data.condition=segmentation reads label ids losslessly from PNG frames, but "
                               f"{len(videos)} source label map(s) are video files (first: {self.root / videos[0]}), "
                               "whose codec corrupts ids; store each as source/<name>/*.png")
        return listed

    # ------------------------------------------------------------------------------------------------ indexing
    def index(self, listed: list[tuple[str, int]], progress: bool) -> list[IndexEntry]:
        videos = [(s.path, -1) for pair in self.sides.values() for s in pair if s is not None and not s.is_png]
        probed = {e.path: e for e in super().index(videos, progress)}
        for pair in self.sides.values():
            for side in pair:
                if side is None:
                    continue
                if side.is_png:
                    side.meta, side.problem = self._png_meta(side)
                else:
                    entry = probed[side.path]
                    side.meta, side.problem = entry.meta, entry.problem
        return [self._pair_entry(key) for key, _ in listed]

    def _png_meta(self, side: Side) -> tuple[VideoMeta | None, str | None]:
        folder = self.root / side.path
        if not side.frames:
            return None, f"unreadable: {folder}: no PNG frames"
        first = folder / side.frames[0]
        try:
            from PIL import Image

            with Image.open(first) as image:
                width, height = image.size
        except Exception as e:  # PIL raises many types for a broken file
            return None, f"unreadable: {first}: {type(e).__name__}: {e}"
        return VideoMeta(len(side.frames), 0.0, width, height, 0, 1), None

    def _pair_entry(self, key: str) -> IndexEntry:
        source, target = self.sides[key]
        name = key.rsplit("/", 1)[-1]
        for side, kind, other in ((source, "source", target), (target, "target", source)):
            if side is None:
                return IndexEntry(key, -1, problem=f"unpaired: {self.root / other.path} has no {kind} beside it "
                                                   f"(expected {kind}/{os.path.splitext(name)[0]}.<ext> or "
                                                   f"{kind}/{os.path.splitext(name)[0]}/*.png)")
            if side.problem is not None:
                problem = side.problem if side.problem != "missing" else f"unreadable: {self.root / side.path}: gone"
                return IndexEntry(key, -1, problem=problem)
        s, t = source.meta, target.meta
        if (s.width, s.height) != (t.width, t.height):
            return IndexEntry(key, -1, problem=f"mismatched: {self.root / source.path} is {s.width}x{s.height} "
                                               f"pixels, {self.root / target.path} {t.width}x{t.height}")
        if s.frames != t.frames:
            return IndexEntry(key, -1, problem=f"mismatched: {self.root / source.path} has {s.frames} frames, "
                                               f"{self.root / target.path} {t.frames}; pairs must be frame-aligned")
        if key in self.flow_paths:
            problem = self._flow_problem(key, t)
            if problem is not None:
                return IndexEntry(key, -1, problem=problem)
        return IndexEntry(key, -1, meta=t)

    def _flow_problem(self, key: str, meta: VideoMeta) -> str | None:
        """Why pair `key`'s flow file cannot serve it (one line), or None; the first good file sets the arrays
        every other must hold (batches stack the same keys)."""
        path = self.root / self.flow_paths[key]
        if not path.is_file():
            return (f"no flow: {path} is missing for {self.root / key} (with a flow/ folder, every pair needs "
                    "flow/<name>.npz)")
        try:
            arrays = check_flow_file(path, meta.frames, meta.width, meta.height)
        except DecodeError as e:
            return f"unreadable: {e}"
        if self.flow_arrays is None:
            self.flow_arrays = arrays
        elif arrays != self.flow_arrays:
            return (f"mismatched: {path} holds {', '.join(arrays)}, the first flow file {', '.join(self.flow_arrays)}; "
                    "every flow file holds the same arrays")
        return None

    # ------------------------------------------------------------------------------------------------- reading
    def read_clip(self, index: int, ids: list[int], crop_shift: float = 0.0) -> torch.Tensor:
        record = self.records[index]
        if record.meta is None:
            raise DecodeError(record.problem)
        return self._read_rgb(self.sides[record.path][1], ids, crop_shift)

    def read_item(self, index: int, ids: list[int], crop_shift: float = 0.0) -> dict[str, torch.Tensor]:
        item = super().read_item(index, ids, crop_shift)
        source = self.sides[self.records[index].path][0]
        if self.config.condition == "source":
            item["source_pixels"] = self._read_rgb(source, ids, crop_shift)
        elif self.config.condition == "segmentation":
            item["source_labels"] = self._read_labels(source, ids, crop_shift)
        if self.flow_paths:
            item.update(self._read_flows(self.records[index].path, ids, crop_shift))
        return item

    def _read_flows(self, key: str, ids: list[int], crop_shift: float) -> dict[str, torch.Tensor]:
        """`flow_files.clip_flows` of pair `key` at source frames `ids` (consecutive): flows k..k+T-2 for frames
        k..k+T-1, flows float `[2, T-1, R, R]`, masks bool `[T-1, R, R]`."""
        if ids != list(range(ids[0], ids[0] + len(ids))):
            raise ZooError(f"paired: flow files give flows between consecutive frames, not frames {ids}")
        arrays = read_flow_file(self.root / self.flow_paths[key], ids[0], len(ids) - 1)
        return clip_flows(arrays, self.config.resolution, self.config.resize, crop_shift)

    def condition_of(self, item: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.config.condition == "source":
            return from_uint8(item["source_pixels"])
        if self.config.condition == "segmentation":
            return one_hot(item["source_labels"], self.config.condition_classes)
        return super().condition_of(item)

    def raw_item(self, key) -> dict[str, torch.Tensor]:
        item = super().raw_item(key)
        item.pop("source_pixels", None)  # the source travels as `condition` only
        item.pop("source_labels", None)
        return item

    def decode_check(self, index: int) -> None:
        last = self.records[index].meta.frames - 1
        source, target = self.sides[self.records[index].path]
        for side in (source, target):
            if side.is_png:
                self._png_frame(side, 0, rgb=False)
                self._png_frame(side, last, rgb=False)
            else:
                read_frames(str(self.root / side.path), [0, last], side.meta, self.config.decoder)
        if self.flow_paths:
            read_flow_file(self.root / self.flow_paths[self.records[index].path], 0, last)

    def _read_rgb(self, side: Side, ids: list[int], crop_shift: float) -> torch.Tensor:
        """uint8 `[T, R, R, 3]` of one side at source frames `ids`, cropped and resized as every clip."""
        resize = functools.partial(self.resize_source, crop_shift=crop_shift)
        if not side.is_png:
            c = self.config
            return torch.from_numpy(read_frames(str(self.root / side.path), ids, side.meta, c.decoder,
                                                c.decode_threads, resize=resize))
        frames = [resize(self._png_frame(side, i, rgb=True)[None]) for i in ids]
        return torch.from_numpy(np.concatenate(frames))

    def _read_labels(self, side: Side, ids: list[int], crop_shift: float) -> torch.Tensor:
        """long `[T, R, R]` label ids of a PNG side at source frames `ids` (nearest-neighbour resize)."""
        c, out = self.config, []
        for i in ids:
            ids_ = self._png_frame(side, i, rgb=False)
            ids_ = (ids_[..., 0] if ids_.ndim == 3 else ids_).astype(np.int64)
            if ids_.min() < 0 or ids_.max() >= c.condition_classes:
                raise DecodeError(f"{self.root / side.path / side.frames[i]}: label id {int(ids_.max())} outside "
                                  f"[0, data.condition_classes={c.condition_classes})")
            out.append(resize_labels(ids_[None], c.resolution, c.resize, crop_shift))
        return torch.cat(out)

    def _png_frame(self, side: Side, i: int, rgb: bool) -> np.ndarray:
        """Frame `i` of a PNG side, checked against the folder's size: uint8 `[H, W, 3]` RGB with `rgb`, else the
        stored values as they are (`[H, W]`, or `[H, W, C]` for a colour image): label ids are never converted."""
        from PIL import Image

        path = self.root / side.path / side.frames[i]
        try:
            with Image.open(path) as image:
                if image.size != (side.meta.width, side.meta.height):
                    raise DecodeError(f"{path}: {image.size[0]}x{image.size[1]} pixels, the folder's first frame "
                                      f"{side.meta.width}x{side.meta.height}")
                return np.array(image.convert("RGB") if rgb else image)  # a writable copy, as decoders return
        except DecodeError:
            raise
        except Exception as e:  # a broken, truncated or vanished PNG
            raise DecodeError(f"{path}: {type(e).__name__}: {e}") from None


