"""Backward warping of frames by optical flow, shared by flow-based models (vid2vid) and the warping error.

Convention (the one `shapes` uses for `flow_back`): `flow[:, 0]` / `flow[:, 1]` hold x / y displacements in pixels,
and `warp(image, flow)` at pixel p reads `image` at p + flow(p), bilinearly, with border padding. So with the
backward flow of frame t (from t's pixels to where they were in frame t-1), `warp(x_{t-1}, flow)` predicts x_t.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample `image` `[B, C, H, W]` at each pixel plus `flow` `[B, 2, H, W]` (pixels; x, y); same shape out."""
    if image.ndim != 4 or flow.ndim != 4 or flow.shape[1] != 2 or image.shape[0] != flow.shape[0] \
            or image.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"warp takes image [B, C, H, W] and flow [B, 2, H, W], got {tuple(image.shape)} and "
                         f"{tuple(flow.shape)}")
    _, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype, device=flow.device),
                            torch.arange(w, dtype=flow.dtype, device=flow.device), indexing="ij")
    x = xs + flow[:, 0]
    y = ys + flow[:, 1]
    # align_corners=True: -1 and 1 are the centres of the first and last pixels, so pixel i sits at 2i/(n-1) - 1
    grid = torch.stack([2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1], dim=-1)
    return F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="border", align_corners=True)
