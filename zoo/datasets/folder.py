"""`folder`: any directory of videos, searched recursively; optional class = parent folder name."""

from __future__ import annotations

import logging
import os

from zoo.datasets.clips import VIDEO_EXTENSIONS, ClipDataset
from zoo.datasets.index import is_regular_file
from zoo.registry import register_dataset


@register_dataset(
    "folder",
    description="any directory of videos (recursive); class = parent folder name unless data.folder_labels=false",
    paper="",
)
class VideoFolder(ClipDataset):
    """Every video file under `root` (sorted by relative path). With `folder_labels`, files directly in a class
    folder `<root>/.../<class>/<file>` get the index of `<class>` among the sorted folder names; files at the top
    level, or every file without `folder_labels`, are unlabelled (-1). `split` is ignored."""

    layout = f"a directory of video files ({', '.join(VIDEO_EXTENSIONS)}), optionally in class sub-folders"

    def discover(self) -> list[tuple[str, int]]:
        paths, special = [], []
        for directory, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in files:
                if name.lower().endswith(VIDEO_EXTENSIONS) and not name.startswith("."):
                    full = os.path.join(directory, name)
                    # a FIFO, socket or device named like a video would block the indexer forever
                    (paths if is_regular_file(full) else special).append(
                        os.path.relpath(full, self.root).replace(os.sep, "/"))
        if special:
            logging.getLogger(__name__).warning("%s: skipped %d entries that are not regular files (FIFO, socket or "
                                                "device), e.g. %s", self.root, len(special), special[0])
        paths.sort()
        if not paths:
            raise self.layout_error(f"no video files under {self.root}")
        classes = sorted({p.rsplit("/", 2)[-2] for p in paths if "/" in p}) if self.config.folder_labels else []
        self.class_names = classes
        lookup = {name: i for i, name in enumerate(classes)}
        return [(p, lookup.get(p.rsplit("/", 2)[-2], -1) if "/" in p else -1) for p in paths]
