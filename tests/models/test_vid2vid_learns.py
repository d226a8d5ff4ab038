"""vid2vid's learning check on `shapes` (slow): a short run of a shrunken experiments/vid2vid/shapes.yaml must bring
the translations of held-out clips' segmentation maps, continued from their two real first frames, much closer to
the real clips (L1 over the generated frames) than the untrained network's."""

from __future__ import annotations

import time

import pytest
import torch

from zoo.models.vid2vid import Vid2VidConfig

SETS = ["model.ngf=16", "model.ndf=16", "model.n_frames_total=4", "model.max_frames_per_update=4", "data.frames=6",
        "train.max_steps=150", "train.sample_every=0", "train.checkpoint_every=100000", "train.log_every=50"]


def l1_to_real(model, batch) -> float:
    out = model.translate(batch["condition"], first_frames=batch["video"][:, :, :2])
    return float((out[:, :, 2:] - batch["video"][:, :, 2:]).abs().mean())


@pytest.mark.slow
def test_vid2vid_learns_shapes(tmp_path):
    from zoo.config import heldout_data_config, resolve_config
    from zoo.datasets.datamodule import VideoDataModule
    from zoo.training import build_model, fit

    config = resolve_config("vid2vid", "shapes", Vid2VidConfig, sets=SETS + [f"train.run_dir={tmp_path}"])
    datamodule = VideoDataModule(config.data, config.train.batch_size, config.train.seed)
    torch.manual_seed(config.train.seed)
    initial = build_model(config, datamodule)
    start = time.time()
    trained = fit(config).model.cpu()
    minutes = (time.time() - start) / 60
    held = VideoDataModule(heldout_data_config(config.data), 16, config.train.seed).dataset
    items = [held[i] for i in range(16)]
    batch = {k: torch.stack([it[k] for it in items]) for k in ("video", "condition")}
    before, after = l1_to_real(initial, batch), l1_to_real(trained, batch)
    print(f"vid2vid shapes L1 of generated frames: untrained {before:.3f}, trained {after:.3f} ({minutes:.1f} min)")
    assert after < 0.5 * before, (before, after)
