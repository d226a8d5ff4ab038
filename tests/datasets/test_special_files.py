"""FIFOs, sockets and devices inside a dataset root are never opened (opening a FIFO blocks until a writer comes)."""

import os
import socket

import pytest

from zoo.datasets import build_dataset
from zoo.datasets.index import build_index


@pytest.fixture
def special_tree(video_tree):
    os.mkfifo(video_tree / "walk" / "pipe.mp4")  # named like a video: listing by extension would pick it up
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(video_tree / "run" / "sock.avi"))
    yield video_tree
    sock.close()


@pytest.mark.timeout(120)  # before the fix, indexing blocked forever on the FIFO
def test_folder_listing_skips_special_files(special_tree, cache, caplog):
    d = build_dataset("folder", root=str(special_tree), frames=8, resolution=16, index_cache=cache)
    names = sorted(d.item_name(i) for i in range(len(d)))
    assert names == ["run/c.avi", "run/d.mp4", "walk/a.avi", "walk/b.mp4"]
    assert d.counts["unreadable"] == 0, "skipped, not counted against max_bad_fraction"
    assert any("not regular files" in r.getMessage() for r in caplog.records)
    assert d[(0, 0)]["video"].shape[1] == 8


@pytest.mark.timeout(120)
def test_a_listed_special_file_is_a_bad_entry_never_opened(special_tree, cache):
    """Split-list datasets (UCF-101, Kinetics) name their files; a listed FIFO must not be probed."""
    entries = build_index(special_tree, [("walk/pipe.mp4", 0), ("run/sock.avi", 1), ("walk/a.avi", 0),
                                         ("walk/gone.avi", 0)], index_cache=cache, progress=False)
    problems = [e.problem for e in entries]
    assert problems[0] == f"not a regular file: {special_tree / 'walk/pipe.mp4'} is a FIFO; skipped"
    assert problems[1] == f"not a regular file: {special_tree / 'run/sock.avi'} is a socket; skipped"
    assert problems[2] is None and entries[2].meta.frames == 40
    assert problems[3] == "missing"
