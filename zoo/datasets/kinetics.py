"""`kinetics600`: Kinetics-600 clips found on disk, listed by the official annotation CSV.

Carreira et al., "A Short Note about Kinetics-600", arXiv:1808.01340, 2018. CSV columns
`label,youtube_id,time_start,time_end,split`; clips named `<youtube_id>_<start:06d>_<end:06d>.<ext>` under
`<root>/<split>/<label>/` (any folder names, or a flat folder: clips are found by file name). Every copy misses some
YouTube clips, so missing clips are indexed as missing, reported, and never an error by themselves.
Labels index the 600 sorted class names (`label_map_600.txt` when found, else the CSV's classes).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from zoo.datasets.clips import VIDEO_EXTENSIONS, ClipDataset
from zoo.datasets.index import is_regular_file
from zoo.errors import ZooError
from zoo.registry import register_dataset

SPLITS = {"train": ("train",), "val": ("validate", "val"), "validate": ("validate", "val"), "test": ("test",)}


def clip_stem(youtube_id: str, start: float, end: float) -> str:
    return f"{youtube_id}_{int(float(start)):06d}_{int(float(end)):06d}"


def read_annotations(path: Path) -> list[dict[str, str]]:
    """Rows of a Kinetics annotation CSV (needs at least label, youtube_id, time_start, time_end)."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    needed = {"label", "youtube_id", "time_start", "time_end"}
    if rows and not needed <= set(rows[0]):
        raise ZooError(f"{path} is not a Kinetics annotation CSV (columns {sorted(rows[0])}, need {sorted(needed)})")
    return rows


@register_dataset(
    "kinetics600",
    description="Kinetics-600 (600 classes, 10 s YouTube clips) found on disk; missing clips are counted, not errors",
    paper="Carreira et al., A Short Note about Kinetics-600, arXiv:1808.01340 2018",
)
class Kinetics600(ClipDataset):
    """Kinetics-600 clips; see the module docstring. `split` is train | val (= validate) | test."""

    layout = ("clips <youtube_id>_<start:06d>_<end:06d>.mp4 under <root>/<split>/<label>/ (or flat) and the "
              "annotation CSV <split>.csv in <root>, <root>/annotations, beside <root>, or at data.annotations")
    download = "the annotation CSVs and the clip lists from https://github.com/cvdfoundation/kinetics-dataset"
    missing_is_bad = False

    def annotations(self) -> Path:
        if self.config.annotations:
            path = Path(self.config.annotations).expanduser()
            if not path.is_file():
                raise self.layout_error(f"annotation CSV {path} does not exist")
            return path
        aliases = SPLITS[self.config.split]
        names = [f"{n}.csv" for n in aliases] + [f"kinetics_{n}.csv" for n in aliases]
        folders = [self.root, self.root / "annotations", self.root.parent, self.root.parent / "annotations"]
        for folder in folders:
            for name in names:
                for candidate in (folder / name, folder / "release2018" / name):
                    if candidate.is_file():
                        return candidate
        holds_csv = self.nearby_folder(lambda d: any((d / sub / name).is_file() for name in names
                                                     for sub in ("", "annotations", "release2018")))
        raise self.layout_error(f"no annotation CSV ({' / '.join(names)}) in {self.root} or beside it",
                                self.did_you_mean(holds_csv))

    def discover(self) -> list[tuple[str, int]]:
        if self.config.split not in SPLITS:
            raise ZooError(f"kinetics600 data.split must be one of {', '.join(SPLITS)}, got {self.config.split!r}")
        csv_path = self.annotations()
        rows = read_annotations(csv_path)
        label_map = next((p for p in (csv_path.parent / "label_map_600.txt", csv_path.parent.parent /
                                      "label_map_600.txt", self.root / "label_map_600.txt") if p.is_file()), None)
        if label_map is not None:
            names = [line.strip() for line in label_map.read_text().splitlines() if line.strip()]
        else:
            names = [row["label"] for row in rows]
        self.class_names = sorted(set(names))
        lookup = {name: i for i, name in enumerate(self.class_names)}
        on_disk = self._files_by_stem()
        videos = []
        for row in rows:
            stem = clip_stem(row["youtube_id"], row["time_start"], row["time_end"])
            label = lookup.get(row["label"], -1)
            videos.append((on_disk.get(stem, f"{self._split_folder()}/{row['label']}/{stem}.mp4"), label))
        return videos

    def _split_folder(self) -> str:
        for name in SPLITS[self.config.split]:
            if (self.root / name).is_dir():
                return name
        return SPLITS[self.config.split][0]

    def _files_by_stem(self) -> dict[str, str]:
        """Clip stem -> path relative to root, searching `<root>/<split>/` when it exists, else all of root."""
        top = self.root / self._split_folder()
        top = top if top.is_dir() else self.root
        found = {}
        for directory, dirs, files in os.walk(top):
            dirs.sort()
            for name in files:
                stem, ext = os.path.splitext(name)
                if ext.lower() in VIDEO_EXTENSIONS and is_regular_file(os.path.join(directory, name)):
                    rel = os.path.relpath(os.path.join(directory, name), self.root)
                    found.setdefault(stem, rel.replace(os.sep, "/"))
        return found
