"""How `zoo eval` shares the generated side among DDP ranks, checked in one process (the DDP test in test_evaluate.py
runs real gloo ranks, which mutation testing cannot see into): batch b of the preset's videos goes to rank b % world,
its noise seeded by the evaluation seed and b alone (or, for a `--fake-dir`, the folder's good files b), so any
number of ranks draws exactly the one-process videos."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.conftest import REPO
from zoo.cli import main
from zoo.config import DataConfig, resolve_config
from zoo.datasets.shapes import MOTIONS, SHAPES
from zoo.errors import ZooError
from zoo.evaluation import EvalRequest
from zoo.evaluation.sources import GeneratedFolder, fake_videos
from zoo.metrics.feature_metric import as_pixels
from zoo.metrics.presets import PRESETS
from zoo.models.base import VideoSpec
from zoo.registry import MODELS, load_all

load_all()
FRAMES = 8  # the tiny MoCoGAN's clip length


@pytest.fixture(scope="module")
def model():
    config = resolve_config("mocogan", "shapes", MODELS.get("mocogan").config_class,
                            [REPO / "experiments/mocogan/tiny.yaml"], ["data.resolution=16"])
    torch.manual_seed(0)
    num_classes = len(SHAPES) * len(MOTIONS)  # MoCoGAN is class-conditional on shapes' labels
    return MODELS.get("mocogan")(config.model, VideoSpec(3, FRAMES, 16, num_classes)).eval()


def preset(num_fake: int, frames: int = FRAMES, stride: int = 1):
    return dataclasses.replace(PRESETS["fvd_shapes"], num_fake=num_fake, frames=frames, frame_stride=stride)


def draws(model, p, rank: int, world: int, seed: int = 0, batch_size: int = 3, folder=None) -> list[torch.Tensor]:
    request = EvalRequest(metrics=["fvd_shapes"], seed=seed, batch_size=batch_size)
    return list(fake_videos(request, model, p, folder, rank, world))


def by_hand(model, count: int, seed: int, b: int, frames=None) -> torch.Tensor:
    """Batch b as the protocol defines it: `count` videos from a generator seeded with seed * 1_000_003 + b."""
    with torch.no_grad():
        videos = model.sample(count, generator=torch.Generator().manual_seed(seed * 1_000_003 + b), frames=frames)
    return videos.float()


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_together_draw_exactly_the_one_process_batches(model, world):
    p = preset(num_fake=10)  # batches of 3: [3, 3, 3, 1]
    alone = draws(model, p, 0, 1)
    assert [len(b) for b in alone] == [3, 3, 3, 1]
    shares = [draws(model, p, rank, world) for rank in range(world)]
    for rank, share in enumerate(shares):
        mine = list(range(rank, 4, world))  # rank r: batches r, r + world, ...
        assert len(share) == len(mine), (rank, world)
        for b, batch in zip(mine, share):
            assert torch.equal(batch, alone[b]), f"rank {rank} of {world}: batch {b} differs from one process's"
    assert sum(len(b) for s in shares for b in s) == 10


@pytest.mark.parametrize("seed", [0, 7])
def test_batch_b_is_seeded_by_the_eval_seed_and_b(model, seed):
    p = preset(num_fake=7)  # batches [3, 3, 1]
    second_rank = draws(model, p, 1, 2, seed=seed)  # batch 1 only
    assert len(second_rank) == 1 and len(second_rank[0]) == 3
    assert torch.equal(second_rank[0], as_pixels(by_hand(model, 3, seed, 1)))
    last = draws(model, p, 0, 2, seed=seed)[1]  # rank 0: batches 0 and 2
    assert torch.equal(last, as_pixels(by_hand(model, 1, seed, 2)))
    assert not torch.equal(draws(model, p, 0, 1, seed=seed)[0], draws(model, p, 0, 1, seed=seed + 1)[0])


def test_a_strided_preset_samples_its_span_and_keeps_every_stride_th_frame(model):
    p = preset(num_fake=2, frames=4, stride=2)  # span 4 x 2 = the model's 8 frames: sampled at its own length
    (batch,) = draws(model, p, 0, 1, batch_size=2)
    full = by_hand(model, 2, 0, 0)
    assert full.shape[2] == FRAMES and batch.shape[:2] == (2, 4)
    assert torch.equal(batch, as_pixels(full[:, :, ::2]))
    longer = preset(num_fake=2, frames=6, stride=2)  # span 12: the model is asked for 12 frames
    (batch,) = draws(model, longer, 0, 1, batch_size=2)
    assert torch.equal(batch, as_pixels(by_hand(model, 2, 0, 0, frames=12)[:, :, ::2]))


@pytest.fixture(scope="module")
def generated_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("generated")
    assert main(["data", "synth", "--out", str(root), "--num", "5", "--frames", "8", "--resolution", "16"]) == 0
    return root


def test_a_generated_folder_is_shared_the_same_way_batch_by_batch(generated_folder):
    config = DataConfig(frames=FRAMES, resolution=16, num_workers=0)
    p = preset(num_fake=5)
    alone = draws(None, p, 0, 1, batch_size=2, folder=GeneratedFolder(str(generated_folder), config))
    assert [b.shape for b in alone] == [(2, FRAMES, 16, 16, 3)] * 2 + [(1, FRAMES, 16, 16, 3)]
    folder = GeneratedFolder(str(generated_folder), config)
    videos = [folder.dataset.pixels_at(i, 0) for i in folder.good]
    assert torch.equal(torch.cat(alone), torch.stack(videos)), "every good file once, in the folder's order"
    shares = [draws(None, p, rank, 2, batch_size=2, folder=GeneratedFolder(str(generated_folder), config))
              for rank in (0, 1)]
    assert [len(s) for s in shares] == [2, 1]
    assert torch.equal(shares[0][0], alone[0]) and torch.equal(shares[0][1], alone[2])
    assert torch.equal(shares[1][0], alone[1])


def test_too_few_generated_files_or_no_generated_side_is_one_line(generated_folder):
    folder = GeneratedFolder(str(generated_folder), DataConfig(frames=FRAMES, resolution=16, num_workers=0))
    with pytest.raises(ZooError, match=rf"^--fake-dir {generated_folder} holds 5 usable videos but fvd_shapes needs "
                                       r"6; generate more or pass --num-samples 5$"):
        draws(None, preset(num_fake=6), 0, 1, folder=folder)
    with pytest.raises(ZooError, match=r"^give the generated videos: --ckpt PATH or --fake-dir DIR$"):
        draws(None, preset(num_fake=2), 0, 1)
