"""Shared checks of the video-prediction contract (`VideoGenerativeModel.predict`, issue 32).

The task (SVG, Denton & Fergus, ICML 2018, Sec. 4; SAVP, Lee et al. 2018): given the first T_c frames of a real clip,
sample futures of `horizon` frames; docs/evaluation-prediction.md says which models do it and how.
"""

from __future__ import annotations

import torch

from zoo.errors import ZooError


def check_context(model, context: torch.Tensor, horizon: int, n: int) -> tuple[int, ...]:
    """The shape `(B, C, T_c, H, W)` of a `predict` context, or a one-line `ZooError` saying what is wrong."""
    spec = model.spec
    if not isinstance(context, torch.Tensor) or context.dim() != 5:
        raise ZooError(f"predict takes a context [B, C, T_c, H, W], got {getattr(context, 'shape', type(context))}")
    b, c, t_c, h, w = context.shape
    if (c, h, w) != (spec.channels, spec.resolution, spec.resolution) or b < 1 or t_c < 1:
        raise ZooError(f"predict context {list(context.shape)}: {model.registry_key} continues clips of "
                       f"[B >= 1, {spec.channels}, T_c >= 1, {spec.resolution}, {spec.resolution}]")
    if int(horizon) < 1 or int(n) < 1:
        raise ZooError(f"predict needs horizon >= 1 and n >= 1, got horizon={horizon}, n={n}")
    return b, c, t_c, h, w


