"""Index start-up time on a full-size UCF-101 tree: the first start (probe every file) against later starts (cache).

Builds the official layout for all 13,320 videos of the real split lists (`$ZOO_SHARED/data/ucfTrainTestlist`), each
a hard link to one of 100 copies of a generated UCF-like AVI (320x240, 25 fps, MPEG-4), so every file is opened for
real. Then times `build_dataset("ucf101", split="all")`:

* `index_cold`: empty cache, every file probed (container metadata only, in threads);
* `index_warm`: the second start, every file unchanged (one `stat` each, then the cached JSON);
* `index_touched`: a later start after 1% of the files changed (one of the 100 copies: its links get a new mtime),
  so only those are probed again.

Prints CSV rows `what,config,value,unit`. Issue 3 asks that a second start on UCF-101 takes seconds.
Usage: `python benchmarks/data_index.py [--videos 13320]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.datasets.media import write  # noqa: E402
from zoo.datasets import build_dataset  # noqa: E402
from zoo.datasets.ucf101 import parse_split  # noqa: E402


def timed(what: str, config: str, run) -> float:
    start = time.perf_counter()
    dataset = run()
    seconds = time.perf_counter() - start
    print(f"{what},{config},{seconds:.2f},s")
    print(f"{what},{config},{1e6 * seconds / len(dataset):.0f},us/video")
    sys.stdout.flush()
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=13320, help="how many of the split's videos to lay out")
    args = p.parse_args()
    splits = Path(os.environ.get("ZOO_SHARED", "../shared")) / "data" / "ucfTrainTestlist"
    if not splits.is_dir():
        sys.exit(f"needs the real UCF-101 split lists at {splits} (set ZOO_SHARED)")
    work = Path(tempfile.mkdtemp(prefix="zoo-bench-index-"))
    source = write(work / "source.avi", n=75, height=240, width=320, fps=25, seed=0, gop=12)
    copies = [shutil.copy(source, work / f"copy{k}.avi") for k in range(100)]
    _, videos = parse_split(splits, "all", 1)
    videos = videos[: args.videos]
    root = work / "UCF-101"
    for k, (rel, _) in enumerate(videos):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.link(copies[k % len(copies)], root / rel)
    config = f"ucf101 all; {len(videos)} AVI 320x240"
    fields = dict(root=str(root), split="all", split_dir=str(splits), index_cache=str(work / "cache"),
                  num_workers=0, frames=16)

    def start():
        return build_dataset("ucf101", **fields)

    timed("index_cold", config, start)
    timed("index_warm", config, start)
    now = time.time()
    os.utime(copies[0], (now + 10, now + 10))  # 1% of the paths: new mtimes, so their cache entries no longer match
    timed("index_touched", config, start)


if __name__ == "__main__":
    main()
