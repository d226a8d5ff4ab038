"""`shapes` with a known change point (`data.change_frame`): the motion before and after the scripted frame by hand,
the frame recorded per item, determinism, and fingerprints that change only when it is on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from zoo.config import DataConfig, update_dataclass
from zoo.datasets.cliplist import protocol_fingerprint
from zoo.datasets.shapes import MOTIONS, Shapes, _Trajectory, render_clip
from zoo.errors import ZooError

K, FRAMES, RES = 3, 8, 32


def _index_with(motion: int, seed: int = 0) -> int:
    return next(i for i in range(100) if _Trajectory(np.random.default_rng([seed, i]), RES).motion == motion)


def test_off_is_the_dataset_as_it_was():
    config = DataConfig(frames=FRAMES, resolution=RES, num_videos=8)
    item = Shapes(config).raw_item(0)
    assert "change_frame" not in item
    assert torch.equal(item["pixels"], render_clip(0, 0, FRAMES, RES)["pixels"])


def test_bounce_then_rotate_by_hand():
    i = _index_with(MOTIONS.index("bounce"))
    item = Shapes(DataConfig(frames=FRAMES, resolution=RES, num_videos=100, change_frame=K)).raw_item(i)
    plain = render_clip(0, i, FRAMES, RES)
    assert int(item["change_frame"]) == K and item["change_frame"].dtype == torch.long
    assert MOTIONS[int(item["motion_after"])] == "rotate"
    assert torch.equal(item["pixels"][: K + 1], plain["pixels"][: K + 1])  # frames 0..K: the first motion, exactly
    assert not torch.equal(item["pixels"][K + 1], plain["pixels"][K + 1])
    centre = item["keypoints"][:, 0]  # [T, 2], the shape's centre
    assert (centre[:K + 1, 0].diff().abs() > 0).all()  # moving until the change
    torch.testing.assert_close(centre[K + 1 :], centre[K : K + 1].expand(FRAMES - K - 1, -1))  # then in place ...
    rim = item["keypoints"][:, 1] - centre  # ... turning by omega per frame
    angles = torch.atan2(rim[:, 1], rim[:, 0])
    omega = _Trajectory(np.random.default_rng([0, i]), RES).omega
    turn = torch.remainder(angles[K + 1 :] - angles[K:-1] + np.pi, 2 * np.pi) - np.pi
    torch.testing.assert_close(turn, torch.full_like(turn, float(omega)), atol=1e-4, rtol=0)


def test_rotate_then_scale_and_scale_then_bounce():
    for first, second in (("rotate", "scale"), ("scale", "bounce")):
        i = _index_with(MOTIONS.index(first))
        item = render_clip(0, i, FRAMES, RES, change_frame=K)
        assert MOTIONS[int(item["motion_after"])] == second
        centre = item["keypoints"][:, 0]
        if second == "scale":  # in place, angle frozen, size pulsing from the drawn size
            torch.testing.assert_close(centre, centre[:1].expand(FRAMES, -1))
        else:  # bounce starts from where the shape is
            assert (centre[: K + 1].diff(dim=0).abs() < 1e-5).all() and (centre[K + 1 :] != centre[K]).any()


def test_deterministic_recorded_and_checked():
    config = DataConfig(frames=FRAMES, resolution=RES, num_videos=8, change_frame=K)
    a, b = Shapes(config).raw_item(2), Shapes(config).raw_item(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ZooError, match="must lie inside the clip"):
        Shapes(dataclasses.replace(config, change_frame=FRAMES - 1))  # frame T-1 has no frame after it
    with pytest.raises((ZooError, ValueError), match="change_frame"):
        update_dataclass(DataConfig(), {"change_frame": -1}, "data")


def test_fingerprint_changes_only_when_on():
    config = DataConfig(frames=FRAMES, resolution=RES)
    fields = {k: v for k, v in dataclasses.asdict(config).items() if k != "change_frame"}
    from zoo.config import stable_hash
    from zoo.datasets.cliplist import PIXEL_FIELDS, SELECTION_FIELDS

    before = stable_hash({"protocol": {k: fields[k] for k in (*PIXEL_FIELDS, *SELECTION_FIELDS)}})
    assert protocol_fingerprint(config) == before  # the formula of fingerprints written before change points
    assert protocol_fingerprint(dataclasses.replace(config, change_frame=K)) != before
