"""Clip lists and the protocol fingerprint: behaviours mutation testing showed unchecked (issue 19).

The clip-list logic is index arithmetic over a dataset's `registry_key`, `config`, `len`, `num_starts`, `item_name`
and `label_of`; `Listing` below provides exactly that interface with hand-chosen counts, so every expected list,
boundary and message is known here without decoding videos (the real datasets are exercised by test_cliplist.py).
"""

import dataclasses

import pytest
import torch

from zoo.config import DataConfig, stable_hash
from zoo.datasets.cliplist import (
    PIXEL_FIELDS,
    SELECTION_FIELDS,
    ClipList,
    ClipListDataset,
    make_clip_list,
    partition,
    protocol_fingerprint,
)
from zoo.errors import ZooError


class Listing:
    """A dataset of `len(starts)` videos; video i has `starts[i]` clip starts, name `v{i}.avi`, label `10 + i`."""

    registry_key = "folder"

    def __init__(self, starts, clips_per_video=1, names=None):
        self.starts = list(starts)
        self.config = DataConfig(name="folder", clips_per_video=clips_per_video)
        self.names = names or [f"v{i}.avi" for i in range(len(self.starts))]

    def __len__(self):
        return len(self.starts)

    def num_starts(self, i):
        return self.starts[i]

    def item_name(self, i):
        return self.names[i]

    def label_of(self, i):
        return 10 + i

    def pixels_at(self, i, s):
        return torch.full((1, 1, 1, 3), 10 * i + s, dtype=torch.uint8)


def test_fingerprint_is_the_documented_hash_of_fields_and_clips():
    config = DataConfig(name="folder", clips_per_video=3)
    d = dataclasses.asdict(config)
    fields = {k: d[k] for k in PIXEL_FIELDS}
    clip_list = ClipList("folder", "", [(0, 4), (2, 1)], names=["v0.avi", "v2.avi"])
    expected = stable_hash({"protocol": fields, "clips": {"dataset": "folder", "clips": [[0, 4], [2, 1]],
                                                          "names": ["v0.avi", "v2.avi"]}})
    assert protocol_fingerprint(config, clip_list) == expected
    assert protocol_fingerprint(config) == stable_hash({"protocol": {**fields, "clips_per_video": 3}})


def test_fingerprint_changes_with_every_clip_field():
    config = DataConfig(name="folder")
    base = ClipList("folder", "", [(0, 4), (2, 1)], names=["v0.avi", "v2.avi"])
    variants = [
        dataclasses.replace(base, clips=[(0, 4), (2, 2)]),
        dataclasses.replace(base, clips=[(1, 4), (2, 1)]),
        dataclasses.replace(base, names=["v0.avi", "w2.avi"]),
        dataclasses.replace(base, dataset="kinetics"),
    ]
    prints = {protocol_fingerprint(config, c) for c in [base, *variants]} | {protocol_fingerprint(config)}
    assert len(prints) == 6
    # with a list, clips_per_video no longer decides the clips; without one it does
    assert protocol_fingerprint(dataclasses.replace(config, clips_per_video=4), base) == protocol_fingerprint(config,
                                                                                                           base)
    assert protocol_fingerprint(dataclasses.replace(config, clips_per_video=4)) != protocol_fingerprint(config)


def test_make_clip_list_defaults_counts_and_records():
    listing = Listing([3, 2, 5], clips_per_video=2)
    full = make_clip_list(listing, None, seed=4)  # None: n x clips_per_video
    assert len(full) == 3 * 2
    assert sorted(i for i, _ in full.clips) == [0, 0, 1, 1, 2, 2]
    assert len(set(full.clips)) == 6 and all(0 <= s < listing.starts[i] for i, s in full.clips)
    assert sorted(i for i, _ in full.clips[:3]) == [0, 1, 2]  # the first round takes one clip of each video
    assert full.names == [f"v{i}.avi" for i, _ in full.clips]
    assert full.labels == [10 + i for i, _ in full.clips]
    assert full.seed == 4 and full.dataset == "folder"
    assert set(full.config) == set(PIXEL_FIELDS + SELECTION_FIELDS) and full.config["clips_per_video"] == 2
    assert full.fingerprint == protocol_fingerprint(listing.config, full)
    short = Listing([3, 1, 5], clips_per_video=2)  # video 1 has a single start: 5 clips in all
    assert sorted(i for i, _ in make_clip_list(short, 5, seed=4).clips) == [0, 0, 1, 2, 2]
    with pytest.raises(ZooError, match="only 5 distinct clips available from 3 videos with clips_per_video=2"):
        make_clip_list(short, None, seed=4)
    one = make_clip_list(Listing([3, 1, 5], clips_per_video=1), None, seed=4)
    assert sorted(i for i, _ in one.clips) == [0, 1, 2]
    single = make_clip_list(Listing([2]), 1, seed=0)  # one video is enough
    assert single.clips[0][0] == 0
    with pytest.raises(ZooError, match="has no usable videos to draw evaluation clips from"):
        make_clip_list(Listing([]), None, seed=0)


def test_resolve_boundaries():
    listing = Listing([2, 3, 1])
    ok = ClipList("folder", "", [(0, 0), (1, 2), (2, 0)], names=["v0.avi", "v1.avi", "v2.avi"])
    assert ok.resolve(listing) == [(0, 0), (1, 2), (2, 0)]  # index 0, start 0 and the last start are valid
    no_names = ClipList("folder", "", [(0, 1), (1, 3)])
    with pytest.raises(ZooError, match=r"1 clip\(s\) of the clip list cannot be read .*first: 1\);"
                                       " evaluate on a complete copy or draw a new list with `zoo data cliplist`"):
        no_names.resolve(listing)  # start 3 of a 3-start video is one past the end
    # drawn on a bigger copy: index 3 does not exist here, so names remap it
    bigger = ClipList("folder", "", [(3, 0), (0, 1)], names=["v1.avi", "v0.avi"])
    assert bigger.resolve(listing) == [(1, 0), (0, 1)]
    missing = ClipList("folder", "", [(0, 0), (1, 0)], names=["v0.avi", "gone.avi"])
    with pytest.raises(ZooError, match="first: gone.avi"):
        missing.resolve(listing)
    with pytest.raises(ZooError, match="clip list is for dataset 'kinetics', not 'folder'"):
        ClipList("kinetics", "", [(0, 0)]).resolve(listing)


def test_save_creates_folders_and_load_errors_are_actionable(tmp_path):
    clip_list = ClipList("folder", "abc", [(0, 1)], names=["v0.avi"], labels=[3], seed=2)
    path = clip_list.save(tmp_path / "a" / "b" / "list.json")
    assert ClipList.load(path) == clip_list
    with pytest.raises(ZooError, match=r"nope.json does not exist; write one with `zoo data cliplist --out"):
        ClipList.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"dataset": "folder"}')
    with pytest.raises(ZooError, match=r"bad.json is not a clip list written by `zoo data cliplist` \("):
        ClipList.load(bad)


def test_partition_refuses_ranks_outside_the_world():
    assert list(partition(5, 1, 2)) == [1, 3]
    for rank in (2, -1):
        with pytest.raises(ValueError, match=f"rank {rank} outside world of size 2"):
            partition(5, rank, 2)


def test_clip_list_dataset_serves_this_ranks_clips_in_list_order():
    """Rank 1 of 2 gets positions 1, 3 (of the first 4 clips with num=4): the pixels, label and position of each."""
    listing = Listing([3, 2, 5])
    clip_list = ClipList("folder", "", [(2, 4), (0, 1), (1, 0), (2, 2), (0, 0)],
                         names=["v2.avi", "v0.avi", "v1.avi", "v2.avi", "v0.avi"])
    ds = ClipListDataset(listing, clip_list, rank=1, world_size=2, num=4)
    assert len(ds) == 2
    items = [ds[0], ds[1]]
    assert [int(it["pixels"].flatten()[0]) for it in items] == [10 * 0 + 1, 10 * 2 + 2]
    assert [int(it["label"]) for it in items] == [10, 12]
    assert [int(it["position"]) for it in items] == [1, 3]
    assert all(it["label"].dtype == torch.long and it["position"].dtype == torch.long for it in items)
    assert len(ClipListDataset(listing, clip_list)) == 5
