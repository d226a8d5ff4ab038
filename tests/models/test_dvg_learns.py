"""DVG's learning check on `shapes` (slow): a short run of a shrunken experiments/dvg/shapes.yaml must raise the
best-of-N PSNR of the predicted frames of held-out clips, from their real first frames, well above the untrained
model's. The numbers (and the copy-the-last-context-frame baseline) are printed (-s)."""

from __future__ import annotations

import time

import pytest
import torch

from tests.models.vid2vid_synthetic import one_thread
from zoo.metrics.conditional import VideoPSNR
from zoo.models.dvg import DVGConfig

SETS = ["model.g_dim=32", "model.nf=16", "model.rnn_size=64", "model.n_past=2", "model.n_future=4",
        "data.frames=6", "data.resolution=32", "data.num_workers=0", "train.batch_size=16", "train.max_steps=120",
        "train.sample_every=0", "train.checkpoint_every=100000", "train.log_every=50"]
N = 5  # futures per clip (best-of-N)


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    yield from one_thread()


def psnr_per_clip(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """`(B,)` mean over frames of 10 log10(1 / MSE) on [0, 1] pixels, as `VideoPSNR`; inputs `(B, C, T, H, W)`."""
    mse = (((fake + 1) / 2 - (real + 1) / 2) ** 2).mean(dim=(1, 3, 4))  # (B, T)
    return (10 * torch.log10(1 / mse)).mean(1)


def best_of_n(model, video: torch.Tensor, n_past: int) -> float:
    out = model.predict(video[:, :, :n_past], video.shape[2] - n_past, n=N, generator=torch.Generator().manual_seed(0))
    real = video[:, :, n_past:]
    scores = torch.stack([psnr_per_clip(out[:, s, :, n_past:], real) for s in range(N)], dim=1)  # (B, N)
    return float(scores.max(dim=1).values.mean())


@pytest.mark.slow
def test_dvg_learns_shapes(tmp_path):
    from zoo.config import heldout_data_config, resolve_config
    from zoo.datasets.datamodule import VideoDataModule
    from zoo.training import build_model, fit

    config = resolve_config("dvg", "shapes", DVGConfig, sets=SETS + [f"train.run_dir={tmp_path}"])
    datamodule = VideoDataModule(config.data, config.train.batch_size, config.train.seed)
    torch.manual_seed(config.train.seed)
    initial = build_model(config, datamodule)
    start = time.time()
    trained = fit(config).model.cpu()
    minutes = (time.time() - start) / 60
    held = VideoDataModule(heldout_data_config(config.data), 16, config.train.seed).dataset
    video = torch.stack([held[i]["video"] for i in range(16)])  # (16, 3, 6, 32, 32)
    metric = VideoPSNR()
    metric.update(video[:, :, 2:], video[:, :, 1:2].expand(-1, -1, 4, -1, -1))
    copy = float(metric.compute())
    torch.testing.assert_close(copy, float(psnr_per_clip(video[:, :, 1:2].expand(-1, -1, 4, -1, -1),
                                                         video[:, :, 2:]).mean()), rtol=1e-4, atol=1e-4)
    before, after = best_of_n(initial, video, 2), best_of_n(trained, video, 2)
    print(f"dvg shapes ({minutes:.1f} min, 120 steps): best-of-{N} PSNR of 4 predicted frames from 2 real ones, "
          f"untrained {before:.2f} dB, trained {after:.2f} dB (copying the last context frame: {copy:.2f} dB)")
    assert after > before + 5.0, (before, after)
