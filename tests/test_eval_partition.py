"""How `zoo eval` shares the generated side among DDP ranks, checked in one process (the DDP test in test_evaluate.py
runs real gloo ranks, which mutation testing cannot see into): batch b of the preset's videos goes to rank b % world,
its noise seeded by the evaluation seed and b alone, so any number of ranks draws exactly the one-process videos."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.conftest import REPO
from zoo.config import resolve_config
from zoo.datasets.shapes import MOTIONS, SHAPES
from zoo.evaluate import EvalRequest, fake_videos
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


def draws(model, p, rank: int, world: int, seed: int = 0, batch_size: int = 3) -> list[torch.Tensor]:
    request = EvalRequest(metrics=["fvd_shapes"], seed=seed, batch_size=batch_size)
    return list(fake_videos(request, model, p, None, rank, world))


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
