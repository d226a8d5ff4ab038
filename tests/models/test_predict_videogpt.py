"""VideoGPT's prediction path: a frame-conditioned prior continues its `cond_frames` to its clip length (context as
given, the future depends on it, seeded); an unconditional prior and other lengths refuse in one line."""

from __future__ import annotations

import pytest
import torch

from tests.models.test_videogpt import TINY_SPEC, tiny_prior, vqvae_ckpt  # noqa: F401 (fixture)
from zoo.errors import ZooError

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see tests/conftest.py

K = 2  # conditioning frames


@pytest.fixture(scope="module")
def prior(vqvae_ckpt):  # noqa: F811
    model = tiny_prior(vqvae_ckpt, cond_frames=K).eval()
    for p in model.frame_encoder.parameters():  # a live frame path, so that the context moves the codes
        torch.nn.init.normal_(p, std=0.5)
    return model


def _context(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, K, TINY_SPEC.resolution, TINY_SPEC.resolution, generator=g) * 2 - 1


def test_prediction_of_a_frame_conditioned_prior(prior):
    horizon = TINY_SPEC.frames - K
    out = prior.predict(_context(0), horizon, n=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 2, 3, TINY_SPEC.frames, TINY_SPEC.resolution, TINY_SPEC.resolution)
    assert torch.equal(out[:, :, :, :K], _context(0).unsqueeze(1).expand(-1, 2, -1, -1, -1, -1))
    assert out.abs().max() <= 1
    again = prior.predict(_context(0), horizon, n=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    other = prior.predict(_context(1), horizon, n=2, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(out[:, :, :, K:], other[:, :, :, K:])  # same noise, another context: another future


def test_refusals(prior, vqvae_ckpt):  # noqa: F811
    with pytest.raises(ZooError, match="continues 2 frames to its 8-frame clip"):
        prior.predict(_context(0), 3)
    with pytest.raises(ZooError, match="unconditional"):
        tiny_prior(vqvae_ckpt).predict(_context(0), TINY_SPEC.frames - K)
