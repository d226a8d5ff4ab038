"""Clip lists: determinism, export, fingerprint, and the DDP partition across two real gloo processes."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from zoo.config import DataConfig
from zoo.datasets import build_dataset
from zoo.datasets.cliplist import ClipList, ClipListDataset, make_clip_list, partition, protocol_fingerprint
from zoo.errors import ZooError


def test_clip_list_is_deterministic_and_round_trips(video_tree, cache, tmp_path):
    d = build_dataset("folder", root=str(video_tree), frames=8, resolution=16, clips_per_video=3, index_cache=cache)
    a, b = make_clip_list(d, 10, seed=0), make_clip_list(d, 10, seed=0)
    assert a == b and a.clips != make_clip_list(d, 10, seed=1).clips
    assert len(set(a.clips)) == 10 and len({i for i, _ in a.clips[:4]}) == 4  # distinct videos first
    assert all(0 <= s < d.num_starts(i) for i, s in a.clips)
    loaded = ClipList.load(a.save(tmp_path / "clips.json"))
    assert loaded == a and loaded.fingerprint == protocol_fingerprint(d.config, loaded)
    assert torch.equal(d.pixels_at(*a.clips[0]), d.pixels_at(*loaded.clips[0]))
    with pytest.raises(ZooError, match="clips_per_video"):
        make_clip_list(d, 13, seed=0)


def test_fingerprint_tracks_pixels_not_machinery():
    base = DataConfig(name="ucf101")
    fp = protocol_fingerprint(base)
    for change in ({"resolution": 128}, {"frames": 8}, {"frame_stride": 2}, {"resize": "stretch"}, {"split": "all"}):
        assert protocol_fingerprint(DataConfig(name="ucf101", **change)) != fp
    for change in ({"root": "/x"}, {"num_workers": 8}, {"decode_threads": 4}, {"prepared": "/p"}):
        assert protocol_fingerprint(DataConfig(name="ucf101", **change)) == fp


def test_clip_list_remaps_by_name(video_tree, cache):
    d = build_dataset("folder", root=str(video_tree), frames=8, resolution=16, index_cache=cache)
    clips = make_clip_list(d, 4, seed=3)
    (video_tree / "aaa").mkdir()
    (video_tree / "aaa" / "x.avi").write_bytes((video_tree / "walk" / "a.avi").read_bytes())
    bigger = build_dataset("folder", root=str(video_tree), frames=8, resolution=16, index_cache=cache)
    remapped = clips.resolve(bigger)
    assert [bigger.item_name(i) for i, _ in remapped] == clips.names


@pytest.mark.parametrize("damage", ["delete", "empty"])
def test_a_clip_list_naming_a_video_this_copy_cannot_read_is_refused(video_tree, cache, damage):
    d = build_dataset("folder", root=str(video_tree), frames=8, resolution=16, index_cache=cache)
    clips = make_clip_list(d, 4, seed=3)
    victim = video_tree / clips.names[0]
    victim.unlink() if damage == "delete" else victim.write_bytes(b"")
    damaged = build_dataset("folder", root=str(video_tree), frames=8, resolution=16, index_cache=cache,
                            max_bad_fraction=0.5)
    with pytest.raises(ZooError, match=f"cannot be read from this copy.*{clips.names[0]}"):
        clips.resolve(damaged)  # replacing that clip would silently change the evaluation protocol


def test_partition_has_no_duplicates_or_losses():
    for n in (0, 1, 7, 2048):
        for world in (1, 2, 3, 8):
            parts = [list(partition(n, r, world)) for r in range(world)]
            assert sorted(sum(parts, [])) == list(range(n))


def _ddp_worker(rank, world, port, root, cache, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    d = build_dataset("folder", root=root, frames=4, resolution=8, clips_per_video=2, index_cache=cache)
    clips = make_clip_list(d, 7, seed=0)  # each rank draws the list itself: it must be the same list
    share = ClipListDataset(d, clips, rank, world)
    mine = [(int(share[i]["position"]), clips.fingerprint) for i in range(len(share))]
    gathered = [None] * world
    dist.all_gather_object(gathered, mine)
    if rank == 0:
        torch.save(gathered, out)
    dist.destroy_process_group()


def test_ddp_ranks_split_the_clip_list(video_tree, cache, tmp_path):
    build_dataset("folder", root=str(video_tree), frames=4, resolution=8, index_cache=cache)  # warm the cache
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "gathered.pt"
    mp.spawn(_ddp_worker, args=(2, port, str(video_tree), cache, str(out)), nprocs=2, join=True)
    gathered = torch.load(out, weights_only=True)
    positions = [p for rank in gathered for p, _ in rank]
    assert sorted(positions) == list(range(7)) and len({fp for rank in gathered for _, fp in rank}) == 1
    assert [len(r) for r in gathered] == [4, 3]
