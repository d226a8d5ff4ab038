"""Named input conventions of the detectors: uint8 pixels -> the float tensor a detector expects.

Resize modes (each frame, independently):
* `tf_legacy_bilinear`: TF1 `tf.image.resize_bilinear` defaults (TF FVD): source coordinate `dst * in / out`, no
  half-pixel offset, no antialiasing.
* `torch_bilinear`: `F.interpolate(mode="bilinear", align_corners=False, antialias=False)` (VideoGPT, CDFVD, LVDM).
* `chainer_bilinear`: corner-aligned bilinear (`align_corners=True`), Chainer's `resize_images` (TGANv2's C3D).

Aspect policies: `stretch` (resize both sides to the target; TF, StyleGAN-V, CDFVD) or `short_side_crop` (scale the
short side to the target, long side `ceil`, centre crop; VideoGPT, CMQ). Both names go into the protocol record.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange

RESIZE_MODES = ("tf_legacy_bilinear", "torch_bilinear", "chainer_bilinear")
ASPECT_POLICIES = ("stretch", "short_side_crop")


def _tf_legacy_matrix(size_in: int, size_out: int, device: torch.device) -> torch.Tensor:
    """`[out, in]` interpolation weights of TF1's legacy bilinear grid (scale computed in float32, as TF does)."""
    scale = torch.tensor(size_in, dtype=torch.float32) / torch.tensor(size_out, dtype=torch.float32)
    src = torch.arange(size_out, dtype=torch.float32) * scale
    low = src.floor().long().clamp(max=size_in - 1)
    high = (low + 1).clamp(max=size_in - 1)
    frac = (src - low.float()).double()
    matrix = torch.zeros(size_out, size_in, dtype=torch.float64)
    rows = torch.arange(size_out)
    matrix.index_put_((rows, low), 1.0 - frac, accumulate=True)
    matrix.index_put_((rows, high), frac, accumulate=True)
    return matrix.to(device)


def resize_frames(frames: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Resize images with a named mode.

    Args:
        frames: float `[N, C, H, W]` (any value range; resizing is linear).
        size: `(out_h, out_w)`.
        mode: one of `RESIZE_MODES`.

    Returns:
        float `[N, C, out_h, out_w]`, same dtype as `frames`.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; valid: {', '.join(RESIZE_MODES)}")
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    if mode == "tf_legacy_bilinear":
        rows = _tf_legacy_matrix(frames.shape[-2], size[0], frames.device).to(frames.dtype)
        cols = _tf_legacy_matrix(frames.shape[-1], size[1], frames.device).to(frames.dtype)
        return torch.einsum("oh,nchw,pw->ncop", rows, frames, cols)
    align = mode == "chainer_bilinear"
    return F.interpolate(frames, size=size, mode="bilinear", align_corners=align, antialias=False)


def fit_frames(frames: torch.Tensor, size: int, mode: str, aspect: str) -> torch.Tensor:
    """Resize `[N, C, H, W]` frames to `size x size` under an aspect policy (`stretch` or `short_side_crop`)."""
    if aspect not in ASPECT_POLICIES:
        raise ValueError(f"unknown aspect policy {aspect!r}; valid: {', '.join(ASPECT_POLICIES)}")
    h, w = frames.shape[-2:]
    if aspect == "stretch" or h == w:
        return resize_frames(frames, (size, size), mode)
    new_h, new_w = (size, math.ceil(w * size / h)) if h < w else (math.ceil(h * size / w), size)
    frames = resize_frames(frames, (new_h, new_w), mode)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return frames[..., top : top + size, left : left + size]


def pixels_to_i3d_input(pixels: torch.Tensor, size: int = 224, mode: str = "torch_bilinear",
                        aspect: str = "stretch") -> torch.Tensor:
    """uint8 videos -> I3D input, as the TF FVD does it: resize in [0, 255], then `x / 255 * 2 - 1`.

    Args:
        pixels: uint8 `[B, T, H, W, C]`, C = 1 or 3 (grayscale is repeated to RGB).
        size: detector resolution (224 for I3D).
        mode, aspect: see the module docstring.

    Returns:
        float32 `[B, 3, T, size, size]` in [-1, 1].
    """
    if pixels.dtype != torch.uint8 or pixels.ndim != 5:
        raise ValueError(f"pixels must be uint8 [B, T, H, W, C], got {pixels.dtype} {tuple(pixels.shape)}")
    b = pixels.shape[0]
    frames = rearrange(pixels, "b t h w c -> (b t) c h w").float()
    if frames.shape[1] == 1:
        frames = frames.expand(-1, 3, -1, -1)
    frames = fit_frames(frames, size, mode, aspect)
    frames = frames / 255.0 * 2.0 - 1.0
    return rearrange(frames, "(b t) c h w -> b c t h w", b=b).contiguous()
