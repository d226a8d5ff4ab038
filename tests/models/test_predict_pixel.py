"""The pixel family's video-prediction path (issue 32): the context comes back as given, the future depends on it,
shape / range, seed determinism, one-line refusals of bad contexts."""

from __future__ import annotations

import pytest
import torch

from tests.models.test_pixel import SPEC, randomize, tiny
from zoo.errors import ZooError

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see tests/conftest.py


@pytest.fixture(scope="module")
def model():
    return randomize(tiny("pixelcnn")).eval()


def _context(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, SPEC.channels, 2, SPEC.resolution, SPEC.resolution, generator=g) * 2 - 1  # [B, C, T_c, H, W]


def test_predict_returns_the_context_then_a_continuation_in_range(model):
    context = _context()
    out = model.predict(context, horizon=1, n=3, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, SPEC.channels, 3, SPEC.resolution, SPEC.resolution)
    assert torch.equal(out[:, :, :, :2], context.unsqueeze(1).expand(-1, 3, -1, -1, -1, -1))  # exactly as given
    assert out.min() >= -1 and out.max() <= 1
    levels = (out[:, :, :, 2:] + 1) * 127.5  # the future is 8-bit levels
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    assert not torch.equal(out[:, 0, :, 2:], out[:, 1, :, 2:])  # n samples differ


def test_predict_is_seeded_and_depends_on_the_context(model):
    context = _context()
    a = model.predict(context, 1, 2, torch.Generator().manual_seed(5))
    b = model.predict(context, 1, 2, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    other = model.predict(_context(1), 1, 2, torch.Generator().manual_seed(5))
    assert not torch.equal(a[:, :, :, 2:], other[:, :, :, 2:])  # same noise, another past: another future


def test_predict_future_is_the_sampler_given_the_same_past(model):
    """Frame t >= T_c is drawn as `sample` draws it: with the real past in place of sampled frames (one context,
    n = 1, so the generator is consumed in the same order)."""
    g = torch.Generator().manual_seed(3)
    full = model.sample(1, generator=g, frames=2)  # frame 0 sampled, frame 1 given frame 0
    g = torch.Generator().manual_seed(3)
    model.sample(1, generator=g, frames=1)  # consume frame 0's draws
    out = model.predict(full[:, :, :1], horizon=1, n=1, generator=g)
    assert torch.equal(out[0, 0], full[0])


def test_bad_contexts_are_one_line(model):
    with pytest.raises(ZooError, match="continues clips of"):
        model.predict(torch.zeros(1, 1, 2, 6, 6), 1)
    with pytest.raises(ZooError, match="horizon >= 1"):
        model.predict(_context(), 0)
