"""`ucf101`: UCF101 action videos with the official train/test splits.

Soomro, Zamir & Shah, "UCF101: A Dataset of 101 Human Actions Classes From Videos in The Wild", CRCV-TR-12-01, 2012,
https://www.crcv.ucf.edu/data/UCF101.php. Layout `<root>/<Class>/v_<Class>_gXX_cYY.avi` plus `ucfTrainTestlist/`
(`classInd.txt`, `trainlist0{1,2,3}.txt`, `testlist0{1,2,3}.txt`). Labels are classInd's order, 0..100.
`split` is train | test | all (train + test of the fold, i.e. all 13,320 videos; papers mix these, so it is explicit).

The official lists disagree with the archive in letter case (`HandStandPushups` in the lists and file names,
`HandstandPushups` as the folder), so list entries are matched to files on disk case-insensitively.
"""

from __future__ import annotations

import os
from pathlib import Path

from zoo.datasets.clips import ClipDataset
from zoo.errors import ZooError
from zoo.registry import register_dataset

SPLITS = ("train", "test", "all")
SPLIT_DIR = "ucfTrainTestlist"


def read_lines(path: Path) -> list[str]:
    """Non-empty lines without CR/LF (the official lists use CRLF)."""
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def parse_split(split_dir: Path, split: str, fold: int) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names and the split's `(relative path, label)` pairs, as the official lists give them.

    Args:
        split_dir: folder with classInd.txt, trainlist0N.txt, testlist0N.txt.
        split: train | test | all.
        fold: 1..3.

    Returns:
        `(class names in classInd order, [(path as listed, label 0..100)])`.
    """
    classes = [line.split()[1] for line in read_lines(split_dir / "classInd.txt")]
    by_lower = {name.lower(): i for i, name in enumerate(classes)}
    parts = {"train": ["train"], "test": ["test"], "all": ["train", "test"]}[split]
    videos = []
    for part in parts:
        for line in read_lines(split_dir / f"{part}list0{fold}.txt"):
            rel = line.split()[0]
            videos.append((rel, by_lower[rel.split("/")[0].lower()]))
    return classes, videos


def has_split_lists(folder: Path) -> bool:
    """Whether `folder` holds `ucfTrainTestlist/classInd.txt` (the split lists a root finds in or beside it)."""
    return (folder / SPLIT_DIR / "classInd.txt").is_file()


def match_case(root: Path, videos: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Replace each listed `Class/file` by the spelling found on disk (case-insensitive); unknown ones stay."""
    try:
        folders = {d.name.lower(): d.name for d in os.scandir(root) if d.is_dir()}
    except OSError:
        return videos
    listings: dict[str, dict[str, str]] = {}
    out = []
    for rel, label in videos:
        folder, _, name = rel.partition("/")
        actual = folders.get(folder.lower())
        if actual is None:
            out.append((rel, label))
            continue
        if actual not in listings:
            listings[actual] = {f.lower(): f for f in os.listdir(root / actual)}
        out.append((f"{actual}/{listings[actual].get(name.lower(), name)}", label))
    return out


@register_dataset(
    "ucf101",
    description="UCF-101 actions (101 classes, 13,320 AVI clips); official splits, split=train|test|all, fold=1..3",
    paper="Soomro et al., UCF101, CRCV-TR-12-01 2012, https://www.crcv.ucf.edu/data/UCF101.php",
)
class UCF101(ClipDataset):
    """UCF-101 clips; see the module docstring."""

    layout = (f"<root>/<Class>/v_<Class>_gXX_cYY.avi and the split lists {SPLIT_DIR}/{{classInd.txt, "
              "trainlist0{1,2,3}.txt, testlist0{1,2,3}.txt} in <root>, beside <root>, or at data.split_dir")
    download = ("UCF101.rar and UCF101TrainTestSplits-RecognitionTask.zip from "
                "https://www.crcv.ucf.edu/data/UCF101.php")

    def split_dir(self) -> Path:
        """Where the split lists are: data.split_dir, else <root>/ucfTrainTestlist, else beside the root."""
        if self.config.split_dir:
            candidates = [Path(self.config.split_dir).expanduser()]
        else:
            candidates = [self.root / SPLIT_DIR, self.root.parent / SPLIT_DIR]
        for candidate in candidates:
            if (candidate / "classInd.txt").is_file():
                return candidate
        holds_lists = None if self.config.split_dir else self.nearby_folder(has_split_lists)
        raise self.layout_error(f"no UCF-101 split lists (classInd.txt) in {' or '.join(map(str, candidates))}",
                                self.did_you_mean(holds_lists))

    def root_flags(self, root: Path) -> str:
        """`--data-root root`, plus where the split lists are when they would not be found from `root`."""
        flags = super().root_flags(root)
        if self.config.split_dir or has_split_lists(root) or has_split_lists(root.parent):
            return flags
        return f"{flags} --set data.split_dir={self.split_dir()}"

    def discover(self) -> list[tuple[str, int]]:
        c = self.config
        if c.split not in SPLITS:
            raise ZooError(f"ucf101 data.split must be one of {', '.join(SPLITS)}, got {c.split!r}")
        if c.fold not in (1, 2, 3):
            raise ZooError(f"ucf101 data.fold must be 1, 2 or 3, got {c.fold}")
        split_dir = self.split_dir()
        needed = [split_dir / f"{p}list0{c.fold}.txt" for p in ("train", "test")]
        absent = [str(p) for p in needed if not p.is_file()]
        if absent:
            raise self.layout_error(f"missing split list(s) {', '.join(absent)}")
        self.class_names, videos = parse_split(split_dir, c.split, c.fold)
        return match_case(self.root, videos)
