"""Video diffusion's prediction path (Sec. 3.1 reconstruction guidance): context as given, the future depends on it,
shape / range, seed determinism, horizons past one block, one-line refusals."""

from __future__ import annotations

import pytest
import torch

from tests.models.test_video_diffusion import randomize, tiny_model
from zoo.errors import ZooError

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see tests/conftest.py


@pytest.fixture(scope="module")
def model():
    m = tiny_model(frames=4, resolution=8, sampling_steps=2, sample_with_ema=False)
    randomize(m.unet)  # live paths, so that the guidance gradient reaches the future frames
    return m.eval()


def _context(seed: int = 0) -> torch.Tensor:
    return torch.rand(2, 3, 2, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_context_as_given_then_future_in_range_and_seeded(model):
    context = _context()
    out = model.predict(context, horizon=2, n=3, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 3, 4, 8, 8)
    assert torch.equal(out[:, :, :, :2], context.unsqueeze(1).expand(-1, 3, -1, -1, -1, -1))
    assert out.abs().max() <= 1
    again = model.predict(context, horizon=2, n=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert not torch.equal(out[:, 0, :, 2:], out[:, 1, :, 2:])  # the n samples differ


def test_future_depends_on_the_context(model):
    a = model.predict(_context(0), 2, 1, torch.Generator().manual_seed(4))
    b = model.predict(_context(1), 2, 1, torch.Generator().manual_seed(4))
    assert not torch.allclose(a[:, :, :, 2:], b[:, :, :, 2:])


def test_horizons_past_one_block_extend(model):
    out = model.predict(_context(), horizon=5, n=1, generator=torch.Generator().manual_seed(0))  # 2 + 5 > 4 frames
    assert out.shape == (2, 1, 3, 7, 8, 8) and torch.equal(out[:, 0, :, :2], _context())


def test_bad_context_is_one_line(model):
    with pytest.raises(ZooError, match="continues clips of"):
        model.predict(torch.zeros(1, 3, 2, 16, 16), 1)
