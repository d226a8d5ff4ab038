"""I3D architecture parity with shared/reference/i3d_seeded_bn_gamma1.npz (README section A) and load_i3d sources."""

import json

import numpy as np
import pytest
import torch

from zoo.errors import ZooError
from zoo.metrics.detectors import load_i3d
from zoo.metrics.detectors.i3d import InceptionI3d, same_padding, split_padding
from zoo.metrics.detectors.seeded import seeded_i3d_state_dict


@pytest.fixture(scope="module")
def reference(shared_dir):
    return np.load(shared_dir / "reference" / "i3d_seeded_bn_gamma1.npz")


def _input():
    return torch.rand((2, 3, 16, 224, 224), generator=torch.Generator().manual_seed(0)) * 2.0 - 1.0


def test_state_dict_naming_matches_pytorch_i3d(shared_dir):
    entries = json.loads((shared_dir / "reference" / "i3d_state_dict_keys.json").read_text())["entries"]
    ours = InceptionI3d().state_dict()
    assert {e["name"]: e["shape"] for e in entries} == {k: list(v.shape) for k, v in ours.items()}


def test_tf_same_padding_puts_the_extra_pixel_at_the_end():
    assert same_padding((16, 224, 224), (7, 7, 7), (2, 2, 2)) == [2, 3, 2, 3, 2, 3]
    assert same_padding((8, 56, 56), (3, 3, 3), (1, 1, 1)) == [1, 1, 1, 1, 1, 1]


@pytest.mark.parametrize("exact", [False, True], ids=["fast", "exact"])
def test_float32_logits_and_pool_match_reference(reference, tmp_path, exact):
    path = tmp_path / "seeded.pt"
    torch.save(seeded_i3d_state_dict("bn_gamma1"), path)
    model = load_i3d(path)  # through the file path, as --detector-weights does
    model.exact = exact
    x = _input()
    with torch.inference_mode():
        logits, pooled = model(x), model.features(x)
    np.testing.assert_allclose(logits.numpy(), reference["logits_f64"], atol=1e-3)
    np.testing.assert_allclose(pooled.numpy(), reference["pooled_features_f64"], atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("exact", [False, True], ids=["fast", "exact"])
def test_float64_logits_match_reference(reference, exact):
    model = load_i3d(seeded_i3d_state_dict("bn_gamma1")).double()
    model.exact = exact
    with torch.inference_mode():
        logits = model(_input().double())
    np.testing.assert_allclose(logits.numpy(), reference["logits_f64"], atol=1e-6)


def test_fast_path_is_the_default_and_follows_weight_changes():
    """The default eval path folds BatchNorm into cached weights; changing a BatchNorm statistic must change the
    output just as it changes the reference path's (the cache may not go stale)."""
    model = load_i3d(seeded_i3d_state_dict("bn_gamma1"))
    assert model._use_fast()
    x = torch.rand((1, 3, 9, 224, 224), generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.inference_mode():
        before = model(x)
        model.Mixed_5c.b0.bn.running_mean += 0.5
        fast = model(x)
        model.exact = True
        exact = model(x)
    assert (fast - before).abs().max() > 1e-3
    torch.testing.assert_close(fast, exact, atol=1e-4, rtol=0)


def test_split_padding_is_symmetric_native_plus_the_end_remainder():
    symmetric, extra = split_padding((16, 224, 224), (7, 7, 7), (2, 2, 2))
    assert symmetric == [2, 2, 2] and extra == [0, 1, 0, 1, 0, 1]
    assert split_padding((8, 56, 56), (3, 3, 3), (1, 1, 1)) == ([1, 1, 1], [0, 0, 0, 0, 0, 0])


def test_wrong_naming_is_an_error():
    state = seeded_i3d_state_dict()
    state["Mixed_5b.b2a.conv3d.weight_typo"] = state.pop("Mixed_5b.b2a.conv3d.weight")
    with pytest.raises(ZooError, match="pytorch-i3d naming"):
        load_i3d(state)
