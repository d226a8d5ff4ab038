"""The on-disk index cache: reused while files are unchanged, refreshed when one changes."""

import json
import os
from pathlib import Path

from tests.datasets.media import write
from zoo.datasets.index import build_index


def test_cache_reused_then_invalidated_on_change(video_tree, cache):
    videos = [("walk/a.avi", 0), ("run/c.avi", 1)]
    first = build_index(video_tree, videos, index_cache=cache, progress=False)
    assert [e.meta.frames for e in first] == [40, 30]
    (cache_file,) = Path(cache).glob("index-*.json")
    data = json.loads(cache_file.read_text())
    data["files"]["walk/a.avi"]["meta"]["frames"] = 999  # a marker: only visible if the cache is used
    cache_file.write_text(json.dumps(data))
    assert build_index(video_tree, videos, index_cache=cache, progress=False)[0].meta.frames == 999
    write(video_tree / "walk" / "a.avi", n=33, height=60, width=80)  # the file changes (size and mtime)
    st = (video_tree / "walk" / "a.avi").stat()
    os.utime(video_tree / "walk" / "a.avi", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert [e.meta.frames for e in build_index(video_tree, videos, index_cache=cache, progress=False)] == [33, 30]


def test_missing_and_unreadable_entries(video_tree, cache):
    (video_tree / "zero.mp4").write_bytes(b"")
    entries = build_index(video_tree, [("zero.mp4", -1), ("gone.avi", -1)], index_cache=cache, progress=False)
    assert entries[0].problem.startswith("unreadable") and entries[1].problem == "missing"
