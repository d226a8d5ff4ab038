"""Bits/dim: a likelihood model scored on real held-out clips, no detector."""

from __future__ import annotations

import dataclasses

import torch

from zoo.errors import ZooError
from zoo.evaluation.protocol import group_data_config
from zoo.evaluation.request import EvalRequest, EvalResult
from zoo.evaluation.sources import progress, real_clips, real_loader
from zoo.metrics.presets import Preset


def score_bpd(request: EvalRequest, preset: Preset, model, run: dict, rank: int, world: int,
             device: torch.device) -> EvalResult:
    """Bits/dim of real test-split clips under a model's `bits_per_dim(videos, labels) -> [B]` (its likelihood)."""
    if model is None:
        raise ZooError("--metric bpd scores a checkpoint's likelihood: pass --ckpt (a folder of videos has none)")
    if not callable(getattr(model, "bits_per_dim", None)):
        raise ZooError(f"{run.get('model_name')} defines no log-likelihood, so it has no bits/dim; --metric bpd "
                       "needs a likelihood model (pixelcnn, gated_pixelcnn, row_lstm, diagonal_bilstm)")
    from zoo.video_io import from_uint8

    preset = dataclasses.replace(preset, frames=model.spec.frames)
    config = group_data_config(request, run, preset)
    dataset, clip_list, fingerprint = real_clips(config, request, preset.num_real)
    total = torch.zeros(2, dtype=torch.float64, device=device)  # (sum of per-clip bits/dim, clips)
    loader = real_loader(dataset, clip_list, preset.num_real, rank, world, request.batch_size, config.num_workers)
    with torch.no_grad(), progress(preset.num_real, "real bpd", rank) as bar:
        for batch in loader:
            bpd = model.bits_per_dim(from_uint8(batch["pixels"]).to(device), batch["label"].to(device))
            total += torch.stack([bpd.double().sum(), total.new_tensor(float(len(bpd)))])
            bar.update(len(bpd) * world)
    if world > 1:
        torch.distributed.all_reduce(total)
    info = {"detector": "none", "weights": "", "sha256": "", "verified": True}  # no detector: nothing to verify
    return EvalResult("bpd", preset, {"bpd": float(total[0] / total[1])}, None, int(total[1]), 0, fingerprint, info,
                      "none")
