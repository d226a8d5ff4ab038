"""Per-step seeding, the rank-split training sampler and sparse frame times, checked in-process against independent
expectations (issue 19: mutation survivors). The end-to-end checks (tests/test_ddp.py, tests/test_resume.py) run
training in other processes, which a mutation run cannot trace; these pin the mechanisms themselves.
"""

from collections import Counter

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from zoo.datasets.datamodule import ResumableSampler
from zoo.frame_sampling import GAP_PALETTE, sparse_frame_times
from zoo.training import TrainingProgress, step_seed

# -- step_seed ------------------------------------------------------------------------------------------------------


def test_step_seed_is_the_first_seedsequence_word_halved_and_separates_every_part():
    # the documented derivation, computed here: first 64-bit word of SeedSequence(parts), shifted to 63 bits
    for parts in [(0, 0, 0), (7, 1, 3), (123456789, 3, 10**6)]:
        word = int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint64)[0])
        assert step_seed(*parts) == word >> 1
        assert 0 <= step_seed(*parts) < 2**63
    seeds = {step_seed(s, r, t) for s in range(3) for r in range(4) for t in range(50)}
    assert len(seeds) == 3 * 4 * 50, "seed, rank and step each change the seed"
    assert step_seed(1, 2, 3) != step_seed(1, 3, 2) and step_seed(np.int64(5), 0, 1) == step_seed(5, 0, 1)


# -- TrainingProgress in a real (tiny) Lightning run ----------------------------------------------------------------


class Recorder(pl.LightningModule):
    """Records the first draw of the global torch RNG at each step (what a model's noise would be)."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(1, 1)
        self.iteration = 0
        self.draws: list[float] = []
        self.iterations: list[int] = []

    def training_step(self, batch, batch_idx):
        self.iterations.append(self.iteration)
        self.draws.append(float(torch.rand(1)))
        return self.layer(batch).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _fit(tmp_path, seed: int, max_steps: int, every: int, start: int = 0) -> Recorder:
    model = Recorder()
    model.iteration = start
    trainer = pl.Trainer(max_steps=100, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[TrainingProgress(seed, max_steps, every, tmp_path)])
    trainer.fit(model, DataLoader(torch.zeros(40, 1), batch_size=1))
    return model


def test_each_step_is_seeded_from_seed_rank_and_step_and_stops_at_max_steps(tmp_path):
    model = _fit(tmp_path, seed=11, max_steps=5, every=2)
    expected = [float(torch.rand(1, generator=torch.Generator().manual_seed(step_seed(11, 0, i)))) for i in range(5)]
    assert model.iterations == [0, 1, 2, 3, 4] and model.iteration == 5, "stops at max_steps, not Trainer's 100"
    assert model.draws == expected
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["last.ckpt", "step=0000002.ckpt", "step=0000004.ckpt", "step=0000005.ckpt"], names
    assert (tmp_path / "last.ckpt").read_bytes() == (tmp_path / "step=0000005.ckpt").read_bytes()
    full = torch.load(tmp_path / "step=0000004.ckpt", weights_only=False)
    assert full["global_step"] == 4 and full["optimizer_states"] and "loops" in full, "everything resuming needs"


def test_a_resumed_iteration_draws_what_the_straight_run_drew(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    resumed = _fit(tmp_path / "a", seed=3, max_steps=6, every=10, start=4)
    expected = [float(torch.rand(1, generator=torch.Generator().manual_seed(step_seed(3, 0, i)))) for i in (4, 5)]
    assert resumed.iterations == [4, 5] and resumed.draws == expected
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["last.ckpt", "step=0000006.ckpt"]
    at_max = _fit(tmp_path / "b", seed=3, max_steps=3, every=3)
    assert at_max.iterations == [0, 1, 2]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["last.ckpt", "step=0000003.ckpt"]


# -- ResumableSampler -------------------------------------------------------------------------------------------------


def _epoch(length, batch, seed, world, epoch=0, consumed=0):
    return [list(ResumableSampler(length, batch, seed, r, world, lambda: (epoch, consumed))) for r in range(world)]


def test_ranks_split_one_seeded_permutation_without_overlap_and_drop_the_tail():
    order = np.random.default_rng([5, 0]).permutation(11)  # the documented epoch permutation, drawn here
    ranks = _epoch(11, 2, 5, world=2)  # 11 // (2 * 2) = 2 batches per rank: 8 items used, 3 dropped
    assert [i for i, _ in ranks[0]] == [int(order[p]) for p in (0, 2, 4, 6)]
    assert [i for i, _ in ranks[1]] == [int(order[p]) for p in (1, 3, 5, 7)]
    assert [d for _, d in ranks[0]] == [0, 2, 4, 6] and [d for _, d in ranks[1]] == [1, 3, 5, 7]
    assert len(ResumableSampler(11, 2, 5, 0, 2)) == 4
    one = _epoch(7, 3, 5, world=1)[0]  # one rank: 2 batches of 3, the 7th item dropped
    assert [i for i, _ in one] == [int(x) for x in np.random.default_rng([5, 0]).permutation(7)[:6]]
    assert len(ResumableSampler(7, 3, 5)) == 6


def test_later_epochs_reshuffle_and_draw_seeds_never_repeat():
    order = np.random.default_rng([5, 2]).permutation(11)
    ranks = _epoch(11, 2, 5, world=2, epoch=2)
    assert [i for i, _ in ranks[1]] == [int(order[p]) for p in (1, 3, 5, 7)]
    assert [d for _, d in ranks[1]] == [2 * 8 + p for p in (1, 3, 5, 7)]  # base = epoch * 4 per rank * 2 ranks
    draws = [d for e in range(4) for rank in _epoch(11, 2, 5, world=2, epoch=e) for _, d in rank]
    assert len(draws) == len(set(draws)) == 4 * 8
    assert [i for i, _ in _epoch(11, 2, 6, world=2)[0]] != [i for i, _ in _epoch(11, 2, 5, world=2)[0]]


def test_resuming_mid_epoch_skips_exactly_the_consumed_batches():
    full = _epoch(12, 2, 9, world=2, epoch=1)
    later = _epoch(12, 2, 9, world=2, epoch=1, consumed=2)
    for rank in range(2):
        assert later[rank] == full[rank][4:]  # 2 batches of 2 already seen by each rank
    assert list(ResumableSampler(12, 2, 9)) == list(ResumableSampler(12, 2, 9, progress=lambda: (0, 0)))


def test_a_dataset_smaller_than_one_global_batch_is_refused():
    with pytest.raises(ValueError, match=r"^dataset of 7 items is smaller than one global batch \(4 x 2 ranks\)$"):
        ResumableSampler(7, 4, 0, 0, 2)
    assert len(ResumableSampler(8, 4, 0, 1, 2)) == 4


# -- sparse frame times ------------------------------------------------------------------------------------------------


def test_sparse_offsets_cover_every_start_and_gaps_every_allowed_palette_entry():
    rng = np.random.default_rng(1)
    draws = [sparse_frame_times(3, 4, 6, rng) for _ in range(600)]  # gaps 2 or 4; room 3 or 1
    gaps = Counter(t[-1] - t[0] for t in draws)
    assert set(gaps) == {2, 4} and min(gaps.values()) > 200, gaps
    starts = Counter(t[0] for t in draws if t[-1] - t[0] == 2)
    assert set(starts) == {0, 1, 2, 3}, "offsets 0 .. length - gap - 1, each possible"
    inner = Counter(t[1] - t[0] for t in draws if t[-1] - t[0] == 4)
    assert set(inner) == {1, 2, 3}, "the middle frame anywhere strictly inside the gap"
    for t in draws:
        assert all(isinstance(x, int) for x in t) and t[0] < t[1] < t[2] <= 5


def test_sparse_times_edge_cases():
    rng = np.random.default_rng(2)
    fallback = [sparse_frame_times(6, 7, 50, rng) for _ in range(30)]  # no palette entry in [5, 7]: the gap is 7
    assert all(t[-1] - t[0] == 7 and len(t) == 6 and len(set(t)) == 6 for t in fallback)
    exact = sparse_frame_times(3, 32, 3, rng)  # a 3-frame video: gap 2, offset 0
    assert exact == [0, 1, 2]
    two = [sparse_frame_times(2, 1, 10, rng) for _ in range(40)]
    assert all(len(t) == 2 and t[1] - t[0] == 1 for t in two) and {t[0] for t in two} == set(range(9))
    assert [len(sparse_frame_times(1, 5, 10, rng)) for _ in range(3)] == [1, 1, 1]
    frac = [sparse_frame_times(3, 2, 4.0, rng, fractional=True) for _ in range(200)]
    offsets = [t[0] for t in frac]
    assert all(isinstance(o, float) and 0 <= o <= 1 for o in offsets) and max(offsets) > 0.9 and min(offsets) < 0.1
    assert all(t[1:] == [t[0] + 1, t[0] + 2] for t in frac)
    long = [sparse_frame_times(3, 2, 10, rng, fractional=True)[0] for _ in range(300)]  # room 7
    assert 0 <= min(long) < 0.5 and 6.5 < max(long) <= 7
    with pytest.raises(ValueError, match=r"^a video of 2 frames cannot hold 3 distinct frames$"):
        sparse_frame_times(3, 32, 2, rng)
    assert GAP_PALETTE == tuple(2**i for i in range(12))  # the official `total_dists`: 1 .. 2048
