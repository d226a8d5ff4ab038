"""Small files that claim to be huge (issue 28, items 4-5): a header claiming 2e9 frames, a cache entry claiming more
frames than its file holds, a source whose frames are too large. Each is a bad file like any other; nothing sized by
the claim is ever allocated, and decord never sees a header it would abort on.

Where a regression would try to allocate gigabytes, the check runs under an address-space limit (`memory_limit`),
so it fails here with MemoryError instead of taking a shared machine's memory; decord, whose abort would end the
test process, is run in a child process.
"""

import contextlib
import json
import resource
import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.commands import ZOO
from tests.datasets.media import claim_frames, write
from zoo.config import DataConfig
from zoo.datasets import build_dataset
from zoo.datasets.cliplist import distinct_starts, make_clip_list
from zoo.datasets.decode import DecodeError, chunk_frames, probe, read_frames
from zoo.datasets.index import build_index
from zoo.datasets.transforms import resize_frames
from zoo.errors import ZooError

CLAIM = 2_000_000_000
HEADROOM = 4 * 2**30  # address space beyond what is mapped: ample for decoding tiny files, far below 2e9 x 8 bytes


@contextlib.contextmanager
def memory_limit():
    """Cap this process's address space at what it maps now plus `HEADROOM` (the soft limit, restored after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    try:
        mapped = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    except OSError:  # not Linux: no cap (RLIMIT_AS is not enforced on macOS anyway)
        mapped = None
    if mapped is not None:
        cap = mapped + HEADROOM
        resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _limit_child_memory():
    resource.setrlimit(resource.RLIMIT_AS, (2 * HEADROOM, 2 * HEADROOM))  # a fresh `zoo` maps under 1 GiB


@pytest.fixture
def hostile_tree(video_tree) -> Path:
    """The four good files plus `walk/huge.avi`: 12 real frames (about 12 KB) whose headers claim 2e9 frames."""
    claim_frames(write(video_tree / "walk" / "huge.avi", n=12, height=32, width=32), CLAIM)
    return video_tree


def test_a_header_claiming_more_frames_than_the_file_holds_is_refused_by_probe(hostile_tree):
    path = hostile_tree / "walk" / "huge.avi"
    size = path.stat().st_size
    assert size < 20_000
    with pytest.raises(DecodeError, match=f"header claims {CLAIM} frames in a {size}-byte file"):
        probe(str(path))
    assert probe(str(hostile_tree / "walk" / "a.avi")).frames == 40, "real files keep their count"


def test_a_crafted_header_is_a_bad_file_counted_replaced_or_refused(hostile_tree, cache):
    cfg = dict(root=str(hostile_tree), frames=8, resolution=16, index_cache=cache, decoder="pyav")
    with pytest.raises(ZooError, match=r"1 of 5 folder videos .* --set data.max_bad_fraction=0.2$"):
        build_dataset("folder", **cfg)  # the default tolerance (1%) refuses it
    d = build_dataset("folder", **cfg, max_bad_fraction=0.5)
    assert d.counts["unreadable"] == 1 and d.counts["usable"] == 4
    huge = next(i for i in range(len(d)) if d.item_name(i) == "walk/huge.avi")
    assert "header claims 2000000000 frames" in d.records[huge].problem and d.num_starts(huge) == 0
    with memory_limit():  # before the fix: drawing its start allocated a permutation of 2e9 positions
        clip = d[(huge, 3)]["video"]  # replaced by a real clip of another video
        clips = make_clip_list(d, 4, seed=0).clips  # the evaluation list never names it
    assert clip.shape == (3, 8, 16, 16) and clip.std() > 0.02 and "walk/huge.avi" in d.failures
    assert sorted(d.item_name(i) for i, _ in clips) == ["run/c.avi", "run/d.mp4", "walk/a.avi", "walk/b.mp4"]


def test_decord_never_sees_a_crafted_header(hostile_tree, cache, reader):
    """Before the fix `zoo data check --decode` (like `zoo fit`) with decord died inside decord (std::bad_alloc,
    rc 134). Now the file is refused when probed: exit 1, naming it. (A child process: an abort would end this one.)"""
    if reader != "decord":
        pytest.skip("decord is not importable in this variant")
    out = subprocess.run([*ZOO, "data", "check", "--data", "folder", "--data-root", str(hostile_tree), "--frames", "8",
                          "--decode", "--set", "data.decoder=decord", "--set", f"data.index_cache={cache}"],
                         capture_output=True, text=True, timeout=300, preexec_fn=_limit_child_memory)
    assert out.returncode == 1, out.stderr[-2000:]
    assert f"walk/huge.avi: unreadable: {hostile_tree / 'walk' / 'huge.avi'}: header claims {CLAIM}" in out.stdout
    assert "unreadable 1" in out.stdout and "undecodable 0" in out.stdout and "usable 4" in out.stdout


def test_a_cache_entry_claiming_more_frames_than_its_file_holds_is_probed_again(video_tree, cache):
    videos = [("walk/a.avi", 0), ("run/c.avi", 1)]
    assert [e.meta.frames for e in build_index(video_tree, videos, index_cache=cache, progress=False)] == [40, 30]
    (cache_file,) = Path(cache).glob("index-*.json")
    data = json.loads(cache_file.read_text())
    data["files"]["walk/a.avi"]["meta"]["frames"] = CLAIM  # size and mtime still match the file
    data["files"]["run/c.avi"]["meta"].pop("width")  # a damaged entry
    cache_file.write_text(json.dumps(data))
    assert [e.meta.frames for e in build_index(video_tree, videos, index_cache=cache, progress=False)] == [40, 30]
    assert json.loads(cache_file.read_text())["files"]["walk/a.avi"]["meta"]["frames"] == 40, "and rewritten"


@pytest.mark.parametrize("damage", [
    lambda f: f.update(meta="not a dict"),
    lambda f: f["meta"].update(frames="40"),
    lambda f: f["meta"].update(frames=-5),
    lambda f: f["meta"].update(width=0),
    lambda f: f["meta"].update(extra=1),
    lambda f: f.pop("meta"),
], ids=["meta-str", "frames-str", "frames-negative", "width-zero", "unknown-key", "no-meta"])
def test_malformed_cache_entries_are_probed_again_not_a_traceback(video_tree, cache, damage):
    videos = [("walk/a.avi", 0)]
    build_index(video_tree, videos, index_cache=cache, progress=False)
    (cache_file,) = Path(cache).glob("index-*.json")
    data = json.loads(cache_file.read_text())
    damage(data["files"]["walk/a.avi"])
    cache_file.write_text(json.dumps(data))
    (entry,) = build_index(video_tree, videos, index_cache=cache, progress=False)
    assert entry.meta is not None and (entry.meta.frames, entry.meta.width, entry.meta.height) == (40, 80, 60)


def test_distinct_starts_cost_memory_by_starts_wanted_not_by_claimed_length():
    tracemalloc.start()
    try:
        with memory_limit():
            starts = distinct_starts(10**12, 5, [0, 2, 7])  # a permutation of 10^12 positions would take 8 TB
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20 and len(set(starts.tolist())) == 5 and all(0 <= s < 10**12 for s in starts)
    assert np.array_equal(starts, distinct_starts(10**12, 5, [0, 2, 7])), "deterministic in the seed"
    assert sorted(distinct_starts(4, 10, [1]).tolist()) == [0, 1, 2, 3], "all of them when fewer exist"
    assert len(distinct_starts(0, 3, [1])) == 0


def test_frames_above_max_source_pixels_make_a_bad_file_with_a_reason(video_tree, cache):
    assert DataConfig().max_source_pixels == 4096 * 4096
    cfg = dict(root=str(video_tree), frames=8, resolution=16, index_cache=cache, max_bad_fraction=0.5)
    assert build_dataset("folder", **cfg).counts["too_large"] == 0
    d = build_dataset("folder", **cfg, max_source_pixels=4000)  # over: a.avi 80x60, d.mp4 64x64; not: 62x46, 54x72
    assert d.counts["too_large"] == 2 and d.counts["usable"] == 2 and len(d) == 4
    a = next(i for i in range(len(d)) if d.item_name(i) == "walk/a.avi")
    assert d.records[a].problem == (f"too large: {video_tree / 'walk' / 'a.avi'}: 80x60 = 4800 pixels per frame, "
                                    "over data.max_source_pixels=4000; downscale the file or raise the limit "
                                    "(--set data.max_source_pixels=4800)")
    assert d[(a, 0)]["video"].std() > 0.02 and "walk/a.avi" in d.failures, "replaced like any bad file"
    with pytest.raises(ZooError, match=r"2 of 4 folder videos are missing, unreadable or too large"):
        build_dataset("folder", **{**cfg, "max_bad_fraction": 0.25}, max_source_pixels=4000)
    with pytest.raises(ZooError, match=r"data.max_source_pixels = 0 is out of range; valid: a number in \[1, inf\)"):
        build_dataset("folder", **cfg, max_source_pixels=0)


@pytest.fixture(scope="module")
def large_source(tmp_path_factory) -> Path:
    """20 frames of 1024 x 1024 MJPEG: 3 MiB per decoded frame, so a 16-frame clip spans two decoding chunks."""
    path = tmp_path_factory.mktemp("large") / "large.avi"
    write(path, n=20, height=1024, width=1024, codec="mjpeg")
    return path


def test_large_sources_are_resized_chunk_by_chunk_as_decoded(large_source, reader):
    meta = probe(str(large_source))
    ids = list(range(2, 18))
    assert chunk_frames(meta) < len(ids), "the clip spans more than one chunk"
    for decoder in ("pyav", "decord") if reader == "decord" else ("pyav",):
        seen = []

        def resize(chunk, seen=seen):
            seen.append(chunk.shape)
            return resize_frames(chunk, 32).numpy()

        clip = read_frames(str(large_source), ids, meta, decoder, resize=resize)
        full = read_frames(str(large_source), ids, meta, decoder)
        assert clip.shape == (16, 32, 32, 3) and np.array_equal(clip, resize_frames(full, 32).numpy())
        assert max(s[0] for s in seen) <= chunk_frames(meta) and sum(s[0] for s in seen) == 16, decoder
        assert all(s[1:] == (1024, 1024, 3) for s in seen), "resize sees source frames, one chunk at a time"


def test_a_dataset_clip_of_a_large_source_equals_resizing_the_whole_clip(large_source, cache):
    d = build_dataset("folder", root=str(large_source.parent), frames=16, resolution=32, index_cache=cache)
    full = read_frames(str(large_source), list(range(3, 19)), d.records[0].meta)
    assert torch.equal(d.pixels_at(0, 3), resize_frames(full, 32))
