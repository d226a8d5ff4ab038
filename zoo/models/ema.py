"""Exponential moving average of weights, shared by every model that samples from averaged weights."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class EMA(nn.Module):
    """EMA copy of a network, built on `torch.optim.swa_utils.AveragedModel`.

    The copy is a submodule of the LightningModule, so it lives in checkpoints (resume restores it exactly) and moves
    with the model between devices; its parameters take no gradient, so DDP ignores them. Buffers (BatchNorm
    statistics) are averaged too. The first `update` copies the weights; later ones do
    `ema = decay * ema + (1 - decay) * weights`.

    Args:
        network: the module to average.
        decay: EMA decay per update, e.g. 0.9999 (Ho et al. 2022) or 0.999.
    """

    def __init__(self, network: nn.Module, decay: float):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.averaged = AveragedModel(network, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self.averaged.requires_grad_(False)

    @torch.no_grad()
    def update(self, network: nn.Module, decay: float | None = None) -> None:
        """Average `network` in; `decay` replaces the constructor's for this update (warm-up schedules)."""
        if decay is None:
            self.averaged.update_parameters(network)
            return
        default = self.averaged.multi_avg_fn
        self.averaged.multi_avg_fn = get_ema_multi_avg_fn(decay)
        try:
            self.averaged.update_parameters(network)
        finally:
            self.averaged.multi_avg_fn = default

    @property
    def module(self) -> nn.Module:
        """The averaged network, to call like the original one."""
        return self.averaged.module

    def forward(self, *args, **kwargs):
        return self.averaged.module(*args, **kwargs)
