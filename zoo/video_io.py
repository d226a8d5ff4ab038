"""The only place that converts between model tensors and pixels, and writes GIF / MP4 grids.

Model side: float `[B, C, T, H, W]` in [-1, 1]. Pixel side: uint8 `[T, H, W, C]` (one video) or `[B, T, H, W, C]`.
Generated videos are quantized with `to_uint8` before any detector sees them, so that real clips (decoded as uint8)
and generated clips take one path.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from zoo.errors import ZooError


def to_uint8(videos: torch.Tensor) -> torch.Tensor:
    """Quantize float videos to uint8 pixels.

    Uses StyleGAN-V's convention `clamp(x * 127.5 + 128, 0, 255)` truncated to an integer, i.e. round-half-up of
    `(x + 1) * 127.5`, so that `from_uint8` followed by `to_uint8` is the identity on every pixel value.

    Args:
        videos: float `[B, C, T, H, W]` in [-1, 1] (values outside are clamped).

    Returns:
        uint8 `[B, T, H, W, C]`.
    """
    assert_video(videos, "videos")
    pixels = (videos.detach().float() * 127.5 + 128.0).clamp(0, 255).to(torch.uint8)
    return rearrange(pixels, "b c t h w -> b t h w c")


def from_uint8(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 `[B, T, H, W, C]` (or `[T, H, W, C]`) -> float `[B, C, T, H, W]` (or `[C, T, H, W]`) in [-1, 1]."""
    if pixels.dtype != torch.uint8:
        raise ValueError(f"expected uint8 pixels, got {pixels.dtype}")
    channels_first = pixels.movedim(-1, -4)  # [..., T, H, W, C] -> [..., C, T, H, W], a view
    videos = torch.empty(channels_first.shape, dtype=torch.float32, device=pixels.device)
    videos.copy_(channels_first)  # one contiguous allocation, then in place: the values of `x.float() / 127.5 - 1`
    return videos.div_(127.5).sub_(1.0)


def assert_video(videos: torch.Tensor, name: str = "video", channels: int | None = None) -> None:
    """Raise a clear error unless `videos` is a float `[B, C, T, H, W]` tensor (with `channels` channels)."""
    if not isinstance(videos, torch.Tensor) or videos.ndim != 5 or not videos.is_floating_point():
        shape = tuple(videos.shape) if isinstance(videos, torch.Tensor) else type(videos).__name__
        raise ValueError(f"{name} must be a float tensor [B, C, T, H, W], got {shape}")
    if channels is not None and videos.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels in dim 1 ([B, C, T, H, W]), got {tuple(videos.shape)}")


DEFAULT_TILE = 96  # pixels: a 16-32 pixel video is enlarged 6x-3x so that shapes and motion are readable on screen


def enlarge_factor(size: int, tile: int | None) -> int:
    """The integer nearest-neighbour factor bringing a `size`-pixel video to about `tile` pixels (1: never shrink)."""
    return 1 if not tile else max(1, round(tile / max(1, size)))


def default_columns(count: int) -> int:
    """Videos per row of a grid of `count` videos: about sqrt(count), so the grid is about square."""
    return max(1, math.ceil(math.sqrt(count)))


def grid_shape(count: int, frames: int, size: int, tile: int | None, padding: int = 2) -> tuple[int, int, int, int]:
    """The `[T, H, W, 3]` shape `make_grid` returns for `count` videos of `size` x `size` pixels, without making it
    (what `zoo sample` checks its memory estimate with before sampling)."""
    side = size * enlarge_factor(size, tile)
    ncol = default_columns(count)
    nrow = math.ceil(count / ncol)
    return frames, nrow * (side + padding) + padding, ncol * (side + padding) + padding, 3


def make_grid(videos: torch.Tensor, ncol: int | None = None, padding: int = 2, tile: int | None = None) -> np.ndarray:
    """Tile a batch of videos into one video, for viewing.

    Quantizes with `to_uint8` first, so the enlarged pixels are exactly the ones a detector scores; enlarging
    repeats pixels (nearest neighbour) and never blurs. Metrics read the videos, never a grid.

    Args:
        videos: float `[B, C, T, H, W]` in [-1, 1]; C is 1 or 3.
        ncol: videos per row (default: about sqrt(B)).
        padding: white pixels between tiles (a thin separator; not enlarged).
        tile: enlarge each video by an integer factor to about this many pixels (None or 0: original size).

    Returns:
        uint8 `[T, H', W', 3]` numpy array.
    """
    pixels = to_uint8(videos)  # b t h w c
    if pixels.shape[-1] == 1:
        pixels = pixels.expand(-1, -1, -1, -1, 3)
    factor = enlarge_factor(max(pixels.shape[2], pixels.shape[3]), tile)
    if factor > 1:
        pixels = pixels.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)  # b t (h f) (w f) c
    b, t, h, w, c = pixels.shape
    ncol = ncol or default_columns(b)
    nrow = math.ceil(b / ncol)
    grid = torch.full((t, nrow * (h + padding) + padding, ncol * (w + padding) + padding, c), 255, dtype=torch.uint8)
    for i in range(b):
        r, col = divmod(i, ncol)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, y : y + h, x : x + w] = pixels[i]
    return grid.numpy()


def side_by_side(*blocks: torch.Tensor, padding: int = 2, tile: int | None = DEFAULT_TILE) -> np.ndarray:
    """Grids of video batches next to each other, left to right (real | generated; condition | output | target);
    each block `[B, C, T, H, W]` in [-1, 1], each video enlarged to about `tile` pixels (see `make_grid`), all cut
    to the shortest clip."""
    t = min(block.shape[2] for block in blocks)
    grids = [make_grid(block[:, :, :t], padding=padding, tile=tile) for block in blocks]
    height = max(grid.shape[1] for grid in grids)
    grids = [np.pad(grid, ((0, 0), (0, height - grid.shape[1]), (0, 0), (0, 0)), constant_values=255) for grid in grids]
    gap = np.full((t, height, 4 * padding, 3), 128, dtype=np.uint8)
    parts = [grids[0]]
    for grid in grids[1:]:
        parts += [gap, grid]
    return np.concatenate(parts, axis=2)


def write_video(frames: np.ndarray, path: str | Path, fps: float = 8.0) -> Path:
    """Write uint8 `[T, H, W, 3]` frames as `.gif` (Pillow, adaptive palette) or `.mp4` (PyAV, H.264).

    The file is written beside `path` under a temporary name and renamed over it when complete, so an existing
    file is either kept or replaced whole, never left half-written.

    Returns:
        The path written.
    """
    path = Path(path)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    suffix = path.suffix.lower()
    writers = {".gif": _write_gif, ".mp4": _write_mp4}
    if suffix not in writers:
        raise ZooError(f"cannot write {path}: the output must end in .gif or .mp4")
    partial = path.with_name(f".{path.stem}.partial-{os.getpid()}{suffix}")  # the suffix picks the container
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        writers[suffix](frames, partial, fps)
        os.replace(partial, path)
    except OSError as e:
        raise ZooError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if partial.exists():  # the writer failed midway
            partial.unlink()
    return path


def _write_gif(frames: np.ndarray, path: Path, fps: float) -> None:
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0, optimize=False)


def _write_mp4(frames: np.ndarray, path: Path, fps: float) -> None:
    import av  # decord only reads; PyAV is the writer

    # H.264 with yuv420p needs even sizes; pad with white rather than resample the grid.
    t, h, w, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), constant_values=255)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))  # 2.5 fps stays 2.5
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "17"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
