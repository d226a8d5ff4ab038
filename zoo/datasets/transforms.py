"""Frame resizing: the one place decoded frames become `resolution x resolution` pixels.

Policies: `short_side_crop` (centre square crop of side min(H, W), then scale; same result as scaling the short side
and centre-cropping, as TGAN / MoCoGAN / StyleGAN-V prepare UCF-101, but cheaper) and `stretch` (scale both sides).
Scaling is antialiased bilinear computed by torch's uint8 kernel on channels-last frames (the kernel torchvision's
uint8 resize uses; about 5x faster on CPU than converting to float, within one grey level of the float result), so
real frames are quantized exactly once. Every path (streaming, prepared, evaluation clips) goes through this function.

Training-clip augmentation (TGANv2 / StyleGAN-V): `crop_shift` moves the short-side square off centre (TGANv2's random
horizontal crop, `crop_left`), and `flip_clip` mirrors a clip left-right; each clip takes one draw for all its frames,
from `augment_rng` (the data seed and the sampler's draw seed, like the clip start), so runs and resumes repeat them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

RESIZE_POLICIES = ("short_side_crop", "stretch")


# streams of `augment_rng`, apart from the datasets' own draws (clip start, sparse times)
FLIP_STREAM, CROP_STREAM = 101, 102


def augment_rng(seed: int, stream: int, draw: int) -> np.random.Generator:
    """The generator of one training-clip augmentation draw: data seed, augmentation stream, sampler draw seed."""
    return np.random.default_rng([seed, stream, draw])


def draw_flip(seed: int, draw: int) -> bool:
    """Whether the training clip of draw seed `draw` is mirrored (p = 0.5)."""
    return bool(augment_rng(seed, FLIP_STREAM, draw).random() < 0.5)


def draw_crop_shift(seed: int, draw: int, jitter: float) -> float:
    """Offset of the training clip's crop from the centre, in [-jitter, jitter] (uniform; `crop_left`)."""
    return float(augment_rng(seed, CROP_STREAM, draw).uniform(-jitter, jitter)) if jitter > 0 else 0.0


def flip_clip(frames: torch.Tensor) -> torch.Tensor:
    """uint8 `[T, H, W, C]` mirrored left-right, every frame alike."""
    return frames.flip(2).contiguous()


# item keys whose last axis is the image width (maps `[..., H, W]`)
WIDTH_LAST_KEYS = ("segmentation", "flow_valid", "flow_back_valid", "condition")
FLOW_KEYS = ("flow", "flow_back")  # `[2, T-1, H, W]`, channel 0 = x displacement


def flip_item(item: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A raw item mirrored left-right: `pixels` (`flip_clip`) and every spatial key alike, so the maps stay the
    clip's: label maps, masks and `condition` `[..., H, W]` mirror, flows mirror and negate x, `keypoints` `[T, K, 2]`
    take x -> W - 1 - x (pixel-index convention). Other keys are kept as they are."""
    out = dict(item)
    width = item["pixels"].shape[2]
    out["pixels"] = flip_clip(item["pixels"])
    for key in WIDTH_LAST_KEYS:
        if key in item:
            out[key] = item[key].flip(-1).contiguous()
    for key in FLOW_KEYS:
        if key in item:
            flow = item[key].flip(-1)
            out[key] = torch.stack([-flow[0], flow[1]])
    if "keypoints" in item:
        keypoints = item["keypoints"].clone()
        keypoints[..., 0] = width - 1 - keypoints[..., 0]
        out["keypoints"] = keypoints
    return out


def crop_left(width: int, side: int, shift: float) -> int:
    """Left edge of a `side`-wide crop of a `width`-wide frame, `shift` in [-1, 1] of the half slack off centre.

    TGANv2 (`tgan2/datasets/h5video.py`, `_crop_center`) crops 192 of 256 columns at x0 ~ U{4, ..., 60}: the centre
    32 +- 28, i.e. shift uniform in [-28/32, 28/32] = `crop_jitter` 0.875."""
    slack = width - side
    return min(slack, max(0, round(slack / 2 * (1 + shift))))


def resize_frames(frames: np.ndarray | torch.Tensor, resolution: int, policy: str = "short_side_crop",
                  crop_shift: float = 0.0) -> torch.Tensor:
    """Resize a clip to a square.

    Args:
        frames: uint8 `[T, H, W, C]`.
        resolution: output height = width.
        policy: `short_side_crop` | `stretch`.
        crop_shift: `short_side_crop` of a wide frame: the square's horizontal offset from the centre, in [-1, 1]
            of the half slack (`crop_left`); 0 = centre. Tall frames are cropped at the vertical centre always.

    Returns:
        uint8 `[T, resolution, resolution, C]` (contiguous).
    """
    if policy not in RESIZE_POLICIES:
        raise ValueError(f"resize policy must be one of {RESIZE_POLICIES}, got {policy!r}")
    x = torch.as_tensor(frames)
    _, h, w, _ = x.shape
    if policy == "short_side_crop" and h != w:
        side = min(h, w)
        top, left = (h - side) // 2, crop_left(w, side, crop_shift) if crop_shift else (w - side) // 2
        x = x[:, top : top + side, left : left + side]
        h = w = side
    if (h, w) == (resolution, resolution):
        return x.contiguous()
    if x.dtype != torch.uint8:
        raise ValueError(f"expected uint8 frames, got {x.dtype}")
    x = rearrange(x, "t h w c -> t c h w")  # a channels-last view: the fast uint8 path needs exactly this layout
    x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
    return rearrange(x, "t c h w -> t h w c").contiguous()
