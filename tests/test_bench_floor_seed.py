"""The bench's real-vs-real floor compares two *disjoint* sets of real clips: data seeds 0 and 1 of the same
split, the same clip length and resolution; one set against itself would give a floor of 0."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import zoo.datasets
from zoo.bench import FLOOR_SEEDS, BenchRequest, real_floor
from zoo.datasets import build_dataset


@pytest.fixture
def built_data_configs(monkeypatch) -> list:
    """The data configs `real_floor` builds its sets from (the real builder runs; its arguments are recorded)."""
    seen = []

    def recording(name, config=None, **kwargs):
        seen.append(config)
        return build_dataset(name, config, **kwargs)

    monkeypatch.setattr(zoo.datasets, "build_dataset", recording)
    return seen


def test_real_floor_compares_data_seeds_0_and_1_of_the_same_split(built_data_configs):
    assert FLOOR_SEEDS == (0, 1)
    floor = real_floor(BenchRequest(num_samples=10, bootstrap=0, batch_size=5), frames=8, resolution=16)
    first, second = built_data_configs
    assert (first.seed, second.seed) == (0, 1)
    assert first.split == second.split and dataclasses.replace(second, seed=0) == first, \
        "the two sets may differ only in their seed"
    assert (first.name, first.frames, first.resolution, first.num_videos) == ("shapes", 8, 16, 10)
    clips = [torch.stack([build_dataset("shapes", c).pixels_at(i, 0) for i in range(10)]) for c in (first, second)]
    shared = sum(torch.equal(a, b) for a in clips[0] for b in clips[1])
    assert shared == 0, "the two real sets share clips"
    fvd = {r.preset.name: r.values for r in floor}["fvd_shapes"]["fvd"]
    assert fvd > 1.0, "a set compared with itself has FVD 0"
